"""Everyone their own run: a viewer starts a private run (a copy of the shared run's setup and,
if it wishes, its weights); its owner controls it without a token, anyone else with its link
watches it read-only; the shared run and its viewers see nothing of it."""
from __future__ import annotations

import time

import numpy as np
import pytest

from tests.support.helpers import socketio_client, wait_for

BLANK = {"pixels": [0.0] * 784}
ALICE = {"viewer": "alice-0123456789abcdef"}
BOB = {"viewer": "bob-0123456789abcdef00"}
RECORD = ("state", "metrics", "epoch", "run:closed", "run", "run:unavailable")


@pytest.fixture
def viewers(live_server):
    made = []

    def connect(auth=None):
        client = socketio_client(live_server.url, record=RECORD, auth=auth or {})
        made.append(client)
        return client

    yield connect
    for client in made:
        if client.connected:
            client.disconnect()


def test_a_private_run_trains_for_its_owner_and_the_shared_run_never_hears_of_it(viewers, live_server):
    teacher, alice = viewers(), viewers(ALICE)
    made = alice.call("run:create", {"config": {"lr": 0.2}}, timeout=30)
    assert made["ok"], made
    key = made["run"]
    assert made["owner"] == "you" and made["control"] and made["state"]["config"]["lr"] == 0.2

    started = alice.call("train:start", {}, timeout=10)
    assert started["ok"] and started["state"]["status"] == "running", started
    wait_for(lambda: any(m["step"] >= 5 for m in alice.received["metrics"]), what="alice's run trains")

    # Her predictions come from her run's weights, the shared run's from the shared run's.
    # (the replica is copied every 50 ms, stretched when a copy is slow: wait for a newer one)
    wait_for(lambda: time.sleep(0.1) or alice.call("predict", BLANK, timeout=10)["step"] > 0,
             what="alice's predictions come from her trained run")
    shared = teacher.call("predict", BLANK, timeout=10)
    assert shared["ok"] and shared["step"] == 0

    # The shared run is untouched; its viewer got no metrics at all (it was never started).
    state = teacher.call("run:watch", {"run": "shared"}, timeout=10)
    assert state["ok"] and state["state"]["status"] == "idle" and state["state"]["step"] == 0
    assert teacher.received["metrics"] == []
    assert all(s["config"]["lr"] != 0.2 for s in teacher.received["state"])


def test_someone_elses_run_is_watched_read_only_through_its_link(viewers):
    alice = viewers(ALICE)
    key = alice.call("run:create", {}, timeout=30)["run"]
    assert alice.call("train:step", {"batches": 3}, timeout=10)["ok"]

    bob = viewers({**BOB, "run": key})  # opened alice's link: ?run=<key>
    wait_for(lambda: bob.received["run"], what="bob is told whose run he watches")
    assert bob.received["run"][0]["owner"] == "someone" and bob.received["run"][0]["control"] is False
    assert bob.received["state"][-1]["run_id"] == alice.call("run:watch", {"run": key})["state"]["run_id"]

    for event, payload in [("train:start", {}), ("train:pause", None), ("train:reset", {}),
                           ("config:update", {"lr": 5.0}), ("pace:update", {"steps_per_second": None}),
                           ("train:step", {"batches": 1})]:
        answer = bob.call(event, payload, timeout=10)
        assert answer["ok"] is False and "someone else's" in answer["error"], (event, answer)
    state = alice.call("run:watch", {"run": key}, timeout=10)["state"]
    assert state["status"] != "running" and state["config"]["lr"] != 5.0

    # he sees what she does
    alice.call("train:step", {"batches": 2}, timeout=10)
    wait_for(lambda: any(s["step"] >= 5 for s in bob.received["state"]), what="bob sees alice's steps")

    # her ownership survives a reload (same viewer secret, a new connection)
    alice.disconnect()
    again = viewers({**ALICE, "run": key})
    wait_for(lambda: again.received["run"], what="the owner is told it is hers")
    assert again.received["run"][0]["owner"] == "you"
    assert again.call("train:pause", None, timeout=10)["ok"]


def test_a_copy_of_the_shared_weights_predicts_what_the_shared_run_predicts(viewers, live_server):
    teacher = viewers()
    assert teacher.call("train:step", {"batches": 15}, timeout=10)["ok"]
    wait_for(lambda: teacher.call("predict", BLANK)["step"] == 15, what="15 shared steps")
    alice = viewers(ALICE)
    made = alice.call("run:create", {"weights": "shared"}, timeout=30)
    assert made["ok"], made
    assert "step 15" in made["state"]["weights_origin"]
    mine, theirs = alice.call("predict", BLANK, timeout=10), teacher.call("predict", BLANK, timeout=10)
    assert np.allclose(mine["probabilities"], theirs["probabilities"], atol=1e-3)


def test_bad_run_requests_are_refused_in_words_and_change_nothing(viewers):
    alice = viewers(ALICE)
    for payload, words in [({"run": "p-nothere00000"}, "give"), ({"run": "p-000000000000"}, "there is no run"),
                           ({"run": 7}, "run"), ({}, "run")]:
        answer = alice.call("run:watch", payload, timeout=10)
        assert answer["ok"] is False and words in answer["error"], (payload, answer)
    for payload, words in [({"weights": "mine"}, "weights"), ({"config": {"lr": -1}}, "lr"),
                           ({"config": {"hidden_sizes": [8] * 9}}, "hidden"), ({"extra": 1}, "extra")]:
        answer = alice.call("run:create", payload, timeout=10)
        assert answer["ok"] is False and words in answer["error"], (payload, answer)
    assert alice.call("run:watch", {"run": "shared"}, timeout=10)["owner"] == "shared"
    unknown = viewers({**BOB, "run": "p-000000000000"})
    wait_for(lambda: unknown.received["run:unavailable"], what="a dead link is told in words")
    assert "showing the shared run" in unknown.received["run:unavailable"][0]["reason"]


def test_the_page_follows_its_run_back_to_the_shared_run(viewers):
    alice = viewers(ALICE)
    key = alice.call("run:create", {}, timeout=30)["run"]
    alice.call("train:step", {"batches": 2}, timeout=10)
    back = alice.call("run:watch", {"run": "shared"}, timeout=10)
    assert back["ok"] and back["owner"] == "shared" and back["state"]["step"] == 0
    n = len(alice.received["state"])
    teacher = viewers()
    teacher.call("train:step", {"batches": 1}, timeout=10)
    wait_for(lambda: any(s["step"] == 1 for s in alice.received["state"][n:]), what="the shared run's news again")
    assert alice.call("run:watch", {"run": key}, timeout=10)["owner"] == "you"


def test_a_run_put_away_moves_its_watchers_back_to_the_shared_run(viewers, live_server):
    alice = viewers(ALICE)
    key = alice.call("run:create", {}, timeout=30)["run"]
    assert alice.call("train:step", {"batches": 2}, timeout=10)["ok"]
    bob = viewers({**BOB, "run": key})
    wait_for(lambda: bob.received["run"], what="bob watches alice's run")
    n = len(bob.received["state"])
    live_server.playground.engine.host_of(key).handle.engine.runs[key].last_seen = float("-inf")  # her owner gone
    for client in (alice, bob):
        wait_for(lambda client=client: client.received["run:closed"], what="the watchers are told")
        closed = client.received["run:closed"][0]
        assert closed["run"] == key and "gone for 90 seconds" in closed["reason"] and isinstance(closed["record"], int)
    wait_for(lambda: bob.received["state"][n:], what="the shared run's state for bob")
    # He is on the shared run now: its news and its answers.
    assert bob.call("predict", BLANK, timeout=10)["step"] == 0
    assert bob.call("train:step", {"batches": 1}, timeout=10)["ok"]
    wait_for(lambda: any(s["step"] == 1 for s in bob.received["state"][n:]), what="the shared run's news for bob")
