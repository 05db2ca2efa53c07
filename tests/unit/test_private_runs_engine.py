"""Private runs in the engine, with no web: each viewer's own real run beside the shared one;
only its owner controls it; past max_runs a start waits in a queue; a run whose owner is gone
is paused, recorded and freed; the shared run is carried on by a new holder from its record."""
from __future__ import annotations

import os
import threading

import pytest

from server.cores import pin_this_thread
from server.engine import engine as engine_module
from server.engine.checkpoints import state_dict_bytes
from server.engine.engine import Engine
from server.link.names import SHARED
from server.errors import AccessError, LimitError, UserError
from tests.support.helpers import subset, wait_for


class Messages(list):
    def __call__(self, message):
        self.append(message)

    def of(self, topic, run=None):
        return [m for m in list(self) if m["topic"] == topic and (run is None or m["run"] == run)]


@pytest.fixture
def tiny(small_dataset):
    return subset(small_dataset, 400, 100)


@pytest.fixture
def make_engine(tiny, tmp_path):
    engines = []

    def make(**options):
        messages = Messages()
        engine = Engine(tiny, data_dir=options.pop("data_dir", tmp_path), publish=messages, pace=50.0, **options)
        engine.messages = messages
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.close()


def test_a_private_run_is_its_owners_own_and_leaves_the_shared_run_alone(make_engine):
    engine = make_engine()
    shared_before = engine.command("state")["state"]
    made = engine.command("run:create", {"owner": "alice", "config": {"lr": 0.05, "hidden_sizes": [32]}})
    key = made["run"]
    assert key.startswith("p-") and made["state"]["config"]["lr"] == 0.05
    assert made["state"]["config"]["hidden_sizes"] == [32]

    started = engine.command("train:start", {"run": key, "owner": "alice"})["state"]
    assert started["status"] == "running"
    wait_for(lambda: engine.command("state", {"run": key})["state"]["step"] >= 5, what="the private run trains")

    # someone else may watch it, never control it, and nothing changes
    for command, args in [("train:pause", {}), ("train:reset", {}), ("config:update", {"changes": {"lr": 1.0}}),
                          ("pace:set", {"pace": None}), ("train:step", {"batches": 1})]:
        with pytest.raises(AccessError, match="someone else's"):
            engine.command(command, {"run": key, "owner": "bob", **args})
    assert engine.command("state", {"run": key})["state"]["status"] == "running"
    assert engine.command("state", {"run": key})["state"]["config"]["lr"] == 0.05

    # the shared run went on untouched, and its messages never speak of the private run
    shared = engine.command("state")["state"]
    assert shared["status"] == shared_before["status"] == "idle" and shared["step"] == 0
    assert all(m["run"] in (SHARED, key) for m in engine.messages)
    assert engine.messages.of("metrics", key) and not engine.messages.of("metrics", SHARED)


def test_a_copy_of_the_shared_runs_weights_starts_where_the_shared_run_is(make_engine):
    engine = make_engine()
    engine.command("train:step", {"batches": 20})
    wait_for(lambda: engine.command("state")["state"]["step"] == 20, what="20 shared steps")
    data = engine.command("checkpoint:get")["data"]
    config = engine.command("state")["state"]["config"]
    made = engine.command("run:create", {"owner": "alice", "config": config, "weights": data,
                                         "origin": "a copy of the shared run at step 20"})
    key = made["run"]
    assert made["state"]["weights_origin"] == "a copy of the shared run at step 20"
    shared_model = engine.part(SHARED).run.model
    private_model = engine.part(key).run.model
    assert private_model is not shared_model
    assert state_dict_bytes(private_model) == state_dict_bytes(shared_model)

    with pytest.raises(UserError, match="weights to copy cannot be used"):
        engine.command("run:create", {"owner": "alice", "config": {**config, "hidden_sizes": [16]}, "weights": data})


def test_past_max_runs_a_start_waits_in_the_queue_and_goes_when_a_place_frees(make_engine):
    engine = make_engine(max_runs=2)
    keys = [engine.command("run:create", {"owner": f"o{i}"})["run"] for i in range(4)]
    states = [engine.command("train:start", {"run": k, "owner": f"o{i}"})["state"] for i, k in enumerate(keys)]
    assert [s["status"] for s in states] == ["running", "running", "idle", "idle"]
    assert [s["queue_position"] for s in states] == [None, None, 1, 2]

    # the second waiting gives up: the third moves up and says so
    engine.command("train:pause", {"run": keys[2], "owner": "o2"})
    assert engine.command("state", {"run": keys[3]})["state"]["queue_position"] == 1

    engine.command("train:pause", {"run": keys[0], "owner": "o0"})
    engine.housekeeping()
    wait_for(lambda: engine.command("state", {"run": keys[3]})["state"]["status"] == "running",
             what="the queued run starts once a place is free")
    assert engine.command("state", {"run": keys[3]})["state"]["queue_position"] is None
    assert engine.command("state", {"run": keys[2]})["state"]["status"] == "idle"


def test_an_engine_holds_a_bounded_number_of_private_runs(make_engine):
    engine = make_engine(max_runs=1)
    for i in range(engine_module.RUNS_PER_PLACE):
        engine.command("run:create", {"owner": f"o{i}"})
    with pytest.raises(LimitError, match="the most it can"):
        engine.command("run:create", {"owner": "one too many"})


def test_a_run_whose_owner_is_gone_is_paused_recorded_and_freed(make_engine, monkeypatch):
    now = [1000.0]
    engine = make_engine(clock=lambda: now[0])
    key = engine.command("run:create", {"owner": "alice"})["run"]
    engine.command("train:step", {"run": key, "owner": "alice", "batches": 3})
    wait_for(lambda: engine.command("state", {"run": key})["state"]["step"] == 3, what="3 steps")

    now[0] += engine_module.OWNER_GONE_S - 1
    engine.command("runs:present", {"owners": ["alice"]})  # still here: stays
    now[0] += engine_module.OWNER_GONE_S - 1
    engine.housekeeping()
    assert key in engine.runs

    now[0] += 2
    engine.housekeeping()
    assert key not in engine.runs
    closed = engine.messages.of("run:closed", key)
    assert closed and "gone for 90 seconds" in closed[0]["payload"]["reason"]
    record = engine.store.get(closed[0]["payload"]["record"], curves=False)
    assert record["status"] == "paused" and record["steps"] == 3 and record["run_key"] == key
    with pytest.raises(UserError, match="no run"):
        engine.command("state", {"run": key})


def test_a_new_holder_carries_the_shared_run_on_from_its_last_record(make_engine, tmp_path):
    first = make_engine(engine_id="engine-a")
    first.command("train:step", {"batches": 12})
    wait_for(lambda: first.command("state")["state"]["step"] == 12, what="12 steps")
    weights = state_dict_bytes(first.part(SHARED).run.model)
    first.close()

    second = make_engine(engine_id="engine-b", holds_shared=False)
    assert SHARED not in second.runs
    second.hold_shared(restore=True, words="The engine that trained the shared run stopped. ")
    state = second.command("state")["state"]
    assert state["step"] == 12 and state["status"] == "paused"
    assert "Carried on from its last record" in state["notice"]
    assert state_dict_bytes(second.part(SHARED).run.model) == weights


def test_streams_watched_through_several_web_processes_add_up(make_engine):
    now = [1000.0]
    engine = make_engine(clock=lambda: now[0])
    engine.command("views:watch", {"streams": ["weights-delta"], "watcher": "web-a"})
    engine.command("views:watch", {"streams": [], "watcher": "web-b"})  # web b's viewers watch nothing
    assert engine.part(SHARED).views.watched == {"weights-delta"}
    engine.command("views:watch", {"streams": ["activations"], "watcher": "web-b"})
    assert engine.part(SHARED).views.watched == {"weights-delta", "activations"}

    # web a stops telling (it died): after a while its streams are no longer made
    now[0] += engine_module.WATCHER_TTL_S - 10
    engine.command("views:watch", {"streams": ["activations"], "watcher": "web-b"})
    now[0] += 20
    engine.housekeeping()
    assert engine.part(SHARED).views.watched == {"activations"}


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs Linux and two cores to pin")
def test_only_the_shared_run_trains_on_the_training_cores_private_runs_on_every_core(make_engine):
    every_core = sorted(os.sched_getaffinity(0))
    training, serving = every_core[-1:], every_core[:-1]
    made = {}

    def as_the_engine_process_does():  # its threads serve on the serving cores
        pin_this_thread(serving)
        engine = made["engine"] = make_engine(training_cores=training, private_run_cores=every_core)
        made["key"] = engine.command("run:create", {"owner": "alice"})["run"]
        engine.command("train:start", {})
        engine.command("train:start", {"run": made["key"], "owner": "alice"})

    thread = threading.Thread(target=as_the_engine_process_does)
    thread.start()
    thread.join()
    engine = made["engine"]

    def cores_of(run_key):
        wait_for(lambda: engine.runs[run_key].run.step_count > 0, what="the run trains")
        return sorted(os.sched_getaffinity(engine.runs[run_key].run._thread.native_id))

    assert cores_of(SHARED) == training
    assert cores_of(made["key"]) == every_core
