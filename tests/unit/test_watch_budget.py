"""A watching script's bytes budget (client/linear_playground/watch.py): every message's bytes,
the steps' too, are spent from a token bucket that holds at most one snapshot; a snapshot is taken
only when the bucket holds one. So a 784-256-10 network at the default 200 kB/s gets a snapshot
about every second, later when its steps take part of the budget, and never a burst after a pause."""
from __future__ import annotations

import logging
import sys

import pytest
from torch import nn

from tests.support.helpers import REPO, free_port

sys.path.insert(0, str(REPO / "client"))  # the client as the user's script has it
from linear_playground.watch import WatchedRun, _message_bytes  # noqa: E402

BUDGET = 200_000


@pytest.fixture
def run():
    logging.getLogger("linear_playground").setLevel(logging.ERROR)  # nobody there: on purpose
    model = nn.Sequential(nn.Linear(784, 256), nn.Sigmoid(), nn.Linear(256, 10))
    watched = WatchedRun(model, f"http://127.0.0.1:{free_port()}", wait=0, max_bytes_per_second=BUDGET)
    yield watched
    watched.close()


def test_a_message_counts_its_json_text_and_its_binary_attachments():
    payload = {"run": "p-0123456789ab", "data": b"\x00" * 1000, "steps": [1, 2, 3]}
    assert _message_bytes(payload) == len('{"run":"p-0123456789ab","data":null,"steps":[1,2,3]}') + 1000


def test_a_snapshot_spent_leaves_the_next_one_a_snapshots_worth_of_seconds_later(run):
    cost = run._snapshot_cost
    assert 204_602 < cost < 210_000  # the int8 weights and scales, and each layer's histograms
    start = run._tokens_at + 10.0  # long idle: the bucket is full, but holds one snapshot only
    assert run._budget_allows(start)
    run._spent(cost)
    assert not run._budget_allows(start + 0.5)
    assert run._next_snapshot_at == pytest.approx(start + cost / BUDGET)  # no check before then
    assert not run._budget_allows(start + cost / BUDGET - 0.01)
    assert run._budget_allows(start + cost / BUDGET + 0.001)


def test_the_steps_bytes_come_out_of_the_same_budget(run):
    cost = run._snapshot_cost
    start = run._tokens_at + 10.0
    assert run._budget_allows(start)
    run._spent(cost)
    run._spent(20_000)  # a second of steps' numbers
    assert not run._budget_allows(start + cost / BUDGET + 0.001)
    assert run._budget_allows(start + (cost + 20_000) / BUDGET + 0.001)
    assert run.bytes_sent == cost + 20_000
