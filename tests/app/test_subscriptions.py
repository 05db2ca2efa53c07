"""Only what a viewer looks at: a viewer says which live views and which broadcasts it takes
(when connecting, and again whenever its panels come into or go out of view); one that says
nothing gets everything, as the first protocol did."""
from __future__ import annotations

import time

from tests.support.helpers import socketio_client, wait_for

EVERYTHING = ("state", "metrics", "epoch", "evaluation", "runs", "inside:weights", "inside:activations",
              "inside:distributions", "inside:weights-delta", "inside:distributions-delta")


def train_a_little(controller, session, steps=40):
    assert controller.call("train:start", {"config": {"steps_per_second": 100, "batch_size": 100}}, timeout=10)["ok"]
    wait_for(lambda: session.step_count >= steps, what="training")


def test_a_viewer_that_takes_nothing_gets_only_the_runs_progress(live_server):
    session = live_server.session
    quiet = socketio_client(live_server.url, record=EVERYTHING, auth={"streams": [], "broadcasts": []})
    try:
        train_a_little(quiet, session)
        wait_for(lambda: len(quiet.received["epoch"]) >= 2, what="two epochs")
        quiet.call("train:pause", timeout=10)
        time.sleep(0.5)
        got = {event for event, items in quiet.received.items() if items}
        assert got == {"state", "metrics", "epoch"}, got

        # Its evaluation panel comes into view: it takes evaluations again from the next one on.
        assert quiet.call("broadcasts:subscribe", {"topics": ["evaluation"]}, timeout=10) == \
            {"ok": True, "topics": ["evaluation"]}
        assert quiet.call("train:step", {"batches": 10}, timeout=10)["ok"]  # an epoch ends: evaluated
        wait_for(lambda: quiet.received["evaluation"], what="an evaluation")
        assert quiet.received["runs"] == [] and quiet.received["inside:weights"] == []
    finally:
        quiet.disconnect()


def test_a_viewer_that_says_nothing_gets_everything_as_before(live_server):
    session = live_server.session
    old = socketio_client(live_server.url, record=EVERYTHING)
    try:
        train_a_little(old, session)
        wait_for(lambda: len(old.received["epoch"]) >= 2 and old.received["evaluation"] and old.received["runs"]
                 and all(old.received[f"inside:{s}"] for s in ("weights", "activations", "distributions")),
                 what="every stream and broadcast of the first protocol")
        assert old.received["inside:weights-delta"] == []  # the small streams are asked for by name
    finally:
        old.call("train:pause", timeout=10)
        old.disconnect()
