"""A training run in the engine, with no web at all: a state machine (idle -> running ->
paused -> done) driven by anyone's controls, training in a background thread and publishing
state, metrics and epochs; engine features called between steps."""
from __future__ import annotations

import itertools
import threading
import time

import numpy as np
import pytest
import torch

from server.experiment import ConfigError, TrainConfig
from server.engine.model import build_network
from server.engine.history import HISTORY_LIMIT, thin_history
from server.errors import RunError
from server.engine.run import METRICS_INTERVAL_S, RunFeature, TrainingRun
from tests.support.helpers import subset, wait_for

VOLATILE = ("eta_seconds", "samples_per_second")


class Recorder:
    """Takes what a run publishes and keeps every (time, event, payload)."""

    def __init__(self, run):
        self.events = []
        self.lock = threading.Lock()
        run.publish = self

    def __call__(self, event, payload):
        with self.lock:
            self.events.append((time.monotonic(), event, payload))

    def payloads(self, name):
        with self.lock:
            return [payload for _, event, payload in self.events if event == name]


@pytest.fixture
def tiny_dataset(small_dataset):
    return subset(small_dataset, 400, 100)


@pytest.fixture
def new_run():
    """Makes runs on real digits and closes their training threads afterwards."""
    runs = []

    def make(dataset, steps_per_second=50.0, **config):
        run = TrainingRun(dataset, device="cpu", config=TrainConfig(**config), pace=steps_per_second)
        runs.append(run)
        return run

    yield make
    for run in runs:
        run.close()



def wait_for_status(session, status, timeout=20.0):
    wait_for(lambda: session.status == status, timeout, f"status {status!r} (it is {session.status!r})")


def stable(state: dict) -> dict:
    return {k: v for k, v in state.items() if k not in VOLATILE}


# ---- the state machine -------------------------------------------------------------------------

def test_a_run_goes_idle_running_paused_running_done(new_run, tiny_dataset):
    session = new_run(tiny_dataset, epochs=1, batch_size=10, steps_per_second=10)  # 40 steps, ~4 s
    recorder = Recorder(session)
    assert session.state()["status"] == "idle" and session.state()["step"] == 0

    assert session.start()["status"] == "running"
    wait_for(lambda: session.trainer.global_step >= 2, what="two steps")
    paused = session.pause()
    assert paused["status"] == "paused"
    steps_at_pause = paused["step"]
    time.sleep(0.2)
    assert session.state()["step"] == steps_at_pause  # a paused run does not train
    assert 0 < steps_at_pause < 40

    session.update_config({"steps_per_second": None})
    assert session.start()["status"] == "running"
    wait_for_status(session, "done")

    state = session.state()
    assert state["step"] == state["total_steps"] == 40
    assert state["progress"] == 1.0 and state["epoch"] == 1
    assert state["history"][-1]["step"] == 40
    statuses = [p["status"] for p in recorder.payloads("state")]
    assert statuses[:2] == ["running", "paused"] and statuses[-1] == "done"
    assert "running" in statuses[2:]


def test_start_while_running_changes_nothing(new_run, tiny_dataset):
    session = new_run(tiny_dataset, epochs=1, batch_size=10, steps_per_second=10)
    first = session.start()
    again = session.start()
    assert again["status"] == "running" and again["run_id"] == first["run_id"]


def test_step_at_idle_trains_exactly_that_many_batches_and_pauses(new_run, tiny_dataset):
    session = new_run(tiny_dataset, batch_size=10)

    state = session.step(5)

    assert state["status"] == "paused" and state["step"] == 5
    assert [p["step"] for p in state["history"]] == [5]
    assert session.step(1)["step"] == 6


def test_step_pauses_a_running_run(new_run, tiny_dataset):
    session = new_run(tiny_dataset, epochs=1, batch_size=10, steps_per_second=10)
    session.start()
    wait_for(lambda: session.trainer.global_step >= 1, what="a step")

    state = session.step(3)

    assert state["status"] == "paused"
    time.sleep(0.2)
    assert session.state()["step"] == state["step"]  # nothing runs after the step


def test_step_to_the_end_finishes_the_run_and_further_steps_are_refused(new_run, tiny_dataset):
    session = new_run(tiny_dataset, epochs=1, batch_size=100)  # 4 steps

    assert session.step(10)["status"] == "done"
    assert session.state()["step"] == 4

    with pytest.raises(RunError, match="the run is finished"):
        session.step(1)
    assert session.state()["status"] == "done"


def test_start_after_done_begins_a_new_run_with_fresh_weights(new_run, tiny_dataset):
    session = new_run(tiny_dataset, epochs=1, batch_size=100, steps_per_second=None)
    session.step(4)
    done = session.state()
    assert done["status"] == "done"

    restarted = session.start()

    assert restarted["run_id"] == done["run_id"] + 1
    assert restarted["epochs"] == []
    wait_for_status(session, "done")


def test_reset_at_any_time_gives_idle_an_empty_history_fresh_weights_and_a_new_run_id(new_run, tiny_dataset):
    session = new_run(tiny_dataset, epochs=1, batch_size=10, steps_per_second=10)
    fresh = build_network(session.config).state_dict()
    for prepare in (lambda: None, session.start, lambda: session.step(3)):
        prepare()
        time.sleep(0.1)
        before = session.state()

        state = session.reset()

        assert state["status"] == "idle" and state["step"] == 0
        assert state["history"] == [] and state["epochs"] == []
        assert state["run_id"] == before["run_id"] + 1
        for name, tensor in session.trainer.model.state_dict().items():
            assert torch.equal(tensor, fresh[name]), name
    time.sleep(0.1)
    assert session.state()["step"] == 0  # the training thread does not carry on after a reset


def test_reset_with_a_new_setup_applies_it(new_run, tiny_dataset):
    session = new_run(tiny_dataset)
    state = session.reset({"hidden_sizes": [32], "activation": "relu"})
    assert state["model"]["shape"] == [784, 32, 10] and state["config"]["activation"] == "relu"


def test_reset_with_a_bad_setup_changes_nothing(new_run, tiny_dataset):
    session = new_run(tiny_dataset)
    session.step(2)
    before = stable(session.state())
    with pytest.raises(ConfigError, match="lr: give a number above 0"):
        session.reset({"lr": -1})
    assert stable(session.state()) == before


# ---- changing the setup ------------------------------------------------------------------------

def test_live_fields_change_the_running_network(new_run, tiny_dataset):
    session = new_run(tiny_dataset, epochs=2, batch_size=10, steps_per_second=10)
    session.start()
    wait_for(lambda: session.trainer.global_step >= 1, what="a step")
    model = session.trainer.model

    state = session.update_config({"lr": 0.005, "batch_size": 20})

    assert state["status"] == "running"
    assert state["config"]["lr"] == 0.005 and state["config"]["batch_size"] == 20
    assert [g["lr"] for g in session.trainer.optimizer.param_groups] == [0.005]
    assert session.trainer.model is model  # the same network goes on learning
    steps = session.trainer.global_step
    position = session.trainer.position
    wait_for(lambda: session.trainer.global_step >= steps + 1, what="another step")
    session.pause()
    assert session.trainer.position - position == 20 * (session.trainer.global_step - steps)


def test_model_fields_are_refused_while_a_run_is_under_way_and_nothing_changes(new_run, tiny_dataset):
    session = new_run(tiny_dataset, epochs=1, batch_size=10, steps_per_second=10)
    session.start()
    wait_for(lambda: session.trainer.global_step >= 1, what="a step")
    session.pause()
    before = stable(session.state())
    model = session.trainer.model

    with pytest.raises(RunError, match="hidden_sizes can only change with a new model"):
        session.update_config({"hidden_sizes": [32], "lr": 0.01})

    assert stable(session.state()) == before  # not even the live lr that came with it
    assert session.trainer.model is model


def test_model_fields_at_idle_rebuild_the_network(new_run, tiny_dataset):
    session = new_run(tiny_dataset)

    state = session.update_config({"hidden_sizes": [64, 32], "seed": 9})

    assert state["status"] == "idle"
    assert state["model"]["shape"] == [784, 64, 32, 10]
    expected = build_network(TrainConfig(hidden_sizes=[64, 32], seed=9))
    assert torch.equal(session.trainer.model.hidden.weight, expected.hidden.weight)


def test_raising_epochs_after_done_pauses_the_run_so_it_can_carry_on(new_run, tiny_dataset):
    session = new_run(tiny_dataset, epochs=1, batch_size=100, steps_per_second=None)
    session.start()
    wait_for_status(session, "done")
    run_id = session.run_id

    state = session.update_config({"epochs": 2})
    assert state["status"] == "paused" and state["progress"] == 0.5

    session.start()
    wait_for_status(session, "done")
    state = session.state()
    assert state["run_id"] == run_id  # the same run went on
    assert state["epoch"] == 2 and state["step"] == 8
    assert [record["epoch"] for record in state["epochs"]] == [1, 2]


def test_lowering_epochs_below_the_progress_finishes_the_run(new_run, tiny_dataset):
    session = new_run(tiny_dataset, epochs=3, batch_size=100)
    session.step(5)  # into the second epoch
    assert session.update_config({"epochs": 1})["status"] == "done"


def test_a_bad_config_update_changes_nothing(new_run, tiny_dataset):
    session = new_run(tiny_dataset)
    before = stable(session.state())
    with pytest.raises(ConfigError, match="lr: give a number"):
        session.update_config({"lr": "fast"})
    assert stable(session.state()) == before


def test_a_diverging_run_pauses_with_a_notice_suggesting_a_smaller_learning_rate(new_run, tiny_dataset):
    session = new_run(tiny_dataset, optimizer="sgd", lr=10.0, activation="leaky_relu",
                          hidden_sizes=[256, 256], steps_per_second=None)
    recorder = Recorder(session)
    session.start()
    wait_for_status(session, "paused")

    state = session.state()
    assert "diverged" in state["notice"]
    assert "Try a smaller learning rate (for example 1)" in state["notice"]
    assert recorder.payloads("state")[-1]["notice"] == state["notice"]
    session.reset({"lr": 0.01})
    assert session.state()["notice"] is None


# ---- what the session publishes ----------------------------------------------------------------

def test_every_change_is_broadcast_as_state(new_run, tiny_dataset):
    session = new_run(tiny_dataset, batch_size=10, steps_per_second=10)
    recorder = Recorder(session)
    session.step(1)
    session.update_config({"lr": 0.01})
    session.reset()
    statuses = [(p["status"], p["config"]["lr"]) for p in recorder.payloads("state")]
    assert statuses == [("paused", 0.001), ("paused", 0.01), ("idle", 0.01)]


def test_metrics_are_published_at_most_about_ten_times_a_second(new_run, small_dataset):
    session = new_run(small_dataset, epochs=4, batch_size=8, steps_per_second=None)  # 500 steps
    recorder = Recorder(session)
    started = time.monotonic()
    session.start()
    wait_for_status(session, "done", timeout=60)
    elapsed = time.monotonic() - started

    metrics = recorder.payloads("metrics")
    assert len(metrics) >= 2
    # One message per 0.1 s, plus the forced one at the end and slack for a slow machine.
    assert len(metrics) <= elapsed / METRICS_INTERVAL_S + 3, (len(metrics), elapsed)
    assert len(metrics) < 500 / 5  # far fewer than one per step
    steps = [m["step"] for m in metrics]
    assert steps == sorted(steps) and steps[-1] == 500
    assert all(m["run_id"] == session.run_id for m in metrics)
    assert {"loss", "accuracy", "lr", "batch_size", "samples_per_second", "progress",
            "eta_seconds", "total_steps", "epoch"} <= set(metrics[0])


def test_epoch_records_have_train_and_validation_metrics(new_run, tiny_dataset):
    session = new_run(tiny_dataset, epochs=2, batch_size=50, steps_per_second=None)
    recorder = Recorder(session)
    session.start()
    wait_for_status(session, "done")

    records = session.state()["epochs"]
    assert records == recorder.payloads("epoch")
    assert [(r["epoch"], r["step"]) for r in records] == [(1, 8), (2, 16)]
    validation = tiny_dataset.validation
    val_loss, val_accuracy, _ = session.trainer.evaluate(validation.images, validation.labels)
    assert records[-1]["val_loss"] == pytest.approx(val_loss)
    assert records[-1]["val_accuracy"] == pytest.approx(val_accuracy)
    for record in records:
        assert 0 < record["train_loss"] < 3 and 0 <= record["train_accuracy"] <= 1
        assert 0 < record["val_loss"] < 3 and 0 <= record["val_accuracy"] <= 1


def test_a_long_runs_history_stays_within_the_limit_and_covers_the_run_evenly(monkeypatch, tiny_dataset):
    """A long run's curve, as a late joiner gets it: the first point, the newest, and the whole
    run in between at an even resolution (not a jump from the start to the recent part).
    The limit is lowered from 2,000 to 100 so that a short run overflows it several times."""
    limit, steps_wanted = 100, 900
    monkeypatch.setattr("server.engine.history.HISTORY_LIMIT", limit)
    ticks = itertools.count()
    # A clock that moves 1 s per reading: every training step publishes one metrics point.
    session = TrainingRun(tiny_dataset, config=TrainConfig(batch_size=4, epochs=50, hidden_sizes=[8]),
                          pace=None, clock=lambda: float(next(ticks)))
    try:
        session.start()
        wait_for(lambda: session.trainer.global_step >= steps_wanted or session.status != "running",
                 timeout=60, what=f"{steps_wanted} steps")
        state = session.pause()
    finally:
        session.close()

    steps = [p["step"] for p in state["history"]]
    assert state["status"] == "paused" and steps[-1] == state["step"] >= steps_wanted
    assert len(steps) <= limit
    assert steps[0] == 1
    assert steps == sorted(steps) and len(set(steps)) == len(steps)
    assert len(steps) > limit / 4  # thinned, not emptied
    gaps = np.diff(steps)
    assert gaps.max() <= 4 * np.median(gaps), (gaps.max(), np.median(gaps))
    first_half = sum(1 for step in steps if step <= steps[-1] / 2)
    assert 0.3 < first_half / len(steps) < 0.7, first_half


def test_thinning_halves_the_points_keeping_the_first_and_the_newest():
    assert HISTORY_LIMIT == 2000
    points = list(range(1, 2002))
    thinned = thin_history(points)
    assert thinned[0] == 1 and thinned[-1] == 2001 and len(thinned) == 1001
    assert thin_history(list(range(2001)), limit=3000) == list(range(2001))


def test_state_describes_the_run_the_model_and_the_data(new_run, tiny_dataset):
    session = new_run(tiny_dataset, batch_size=100, epochs=2)

    state = session.state()

    assert state["config"] == {**TrainConfig(batch_size=100, epochs=2).model_dump(), "steps_per_second": 50.0}
    assert state["pace"] == 50.0
    assert state["total_steps"] == 8 and state["eta_seconds"] == pytest.approx(8 / 50)
    assert state["model"]["parameters"] == 203_530
    assert [layer["name"] for layer in state["model"]["layers"]] == ["hidden", "output"]
    assert state["dataset"]["splits"] == {"train": 400, "validation": 100, "test": 0}
    assert state["device"] == "cpu" and state["notice"] is None
    assert "lr" in state["live_fields"] and "hidden_sizes" not in state["live_fields"]


# ---- failures elsewhere do not stop the run --------------------------------------------------------

def test_a_failing_feature_does_not_stop_training_or_what_the_run_publishes(new_run, tiny_dataset):
    session = new_run(tiny_dataset, epochs=2, batch_size=50, steps_per_second=None)

    def broken_view(event, payload):
        raise ValueError(f"a feature failed on {event}")

    class BrokenFeature(RunFeature):
        def on_state(self, run, state):
            broken_view("state", state)

    session.features.append(BrokenFeature())
    recorder = Recorder(session)
    session.start()
    # The status turns "done" under the session's lock just before the broadcast goes out:
    # wait for the broadcast itself, not only the status.
    wait_for(lambda: recorder.payloads("state") and recorder.payloads("state")[-1]["status"] == "done",
             what="the 'done' state broadcast")

    assert [record["epoch"] for record in recorder.payloads("epoch")] == [1, 2]
    assert recorder.payloads("state")[-1]["status"] == "done"


def test_features_failing_between_steps_and_at_epoch_ends_do_not_stop_training(new_run, tiny_dataset):
    session = new_run(tiny_dataset, epochs=2, batch_size=50, steps_per_second=None)
    calls = []

    def broken_hook(*args):
        calls.append(len(args))
        raise RuntimeError("a feature's hook failed")

    class BrokenFeature(RunFeature):
        def on_step(self, run):
            broken_hook(run)

        def on_epoch(self, run, record, predictions):
            broken_hook(run, record, predictions)

    session.features.append(BrokenFeature())
    session.start()
    wait_for_status(session, "done")

    assert session.state()["epoch"] == 2
    assert 1 in calls and 3 in calls  # both kinds of hook were called, and failed, every time


def test_an_error_in_a_training_step_pauses_the_run_with_a_notice(new_run, tiny_dataset):
    """Not a run that says "running" forever with no thread behind it."""
    session = new_run(tiny_dataset, epochs=1, batch_size=400, steps_per_second=None)
    labels = session.trainer.labels.clone()  # a copy: the digits are shared by every test
    labels[7] = 10  # no such class: cross_entropy raises inside the step
    session.trainer.labels = labels
    recorder = Recorder(session)

    session.start()
    wait_for_status(session, "paused")

    state = session.state()
    assert state["notice"].startswith("Training stopped by an error in the server")
    assert "IndexError" in state["notice"] or "RuntimeError" in state["notice"]
    assert recorder.payloads("state")[-1]["status"] == "paused"
    session.reset()
    session.step(1)  # the run still works
