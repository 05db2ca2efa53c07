"""A watching script's weights on the wire (client/linear_playground/wire.py): int8 rows with a
scale per row, deltas from the server's copy with error feedback. The server (server/watch_frames.py)
rebuilds the very numbers the client holds; errors do not pile up; once training stops the server's
copy comes to the true weights; a 784-256-10 snapshot is half float16's bytes."""
from __future__ import annotations

import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from server.watch_frames import LinearLayer, SnapshotRequest, row_lengths, snapshot_values
from tests.support.helpers import REPO

sys.path.insert(0, str(REPO / "client"))  # the client as the user's script has it
from linear_playground.wire import WeightsEncoder  # noqa: E402

QUESTION = [LinearLayer(path="hidden", in_features=784, out_features=256),
            LinearLayer(path="output", in_features=256, out_features=10)]


def flat(model) -> np.ndarray:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()]).numpy().copy()


def servers_copy(encoded, base) -> np.ndarray:
    frame = SnapshotRequest(run="p-0123456789ab", step=1, layers=[{}, {}], **encoded.fields)
    return snapshot_values(frame, QUESTION, base)


def test_the_server_rebuilds_bit_for_bit_what_the_client_holds_and_each_weight_is_within_half_a_step():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 256), nn.Sigmoid(), nn.Linear(256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    wire = WeightsEncoder(row_lengths(QUESTION).tolist())
    held = None
    for step in range(1, 13):
        for _ in range(10):  # training between snapshots
            x = torch.rand(64, 784)
            opt.zero_grad(); F.cross_entropy(model(x), (x[:, :10]).argmax(1)).backward(); opt.step()  # noqa: E702
        weights = flat(model)
        encoded = wire.encode(weights, exact=False)
        assert encoded.fields["dtype"] == "int8" and encoded.fields.get("delta", False) is (held is not None)
        held = servers_copy(encoded, held)
        wire.taken(encoded, step)
        assert np.array_equal(held, wire.held)
        half_step = np.repeat(np.frombuffer(encoded.fields["scales"], "<f4"), wire.lengths) / 2
        # within half a step, and the float32 rounding of the sum (one unit in the last place)
        assert (np.abs(held - weights) <= half_step * (1 + 1e-6) + np.spacing(np.abs(weights))).all()
    # A delta's step is its row's change since the server's copy: far finer than a whole int8 row's.
    whole = np.frombuffer(WeightsEncoder(row_lengths(QUESTION).tolist()).encode(weights, exact=False).fields["scales"], "<f4")
    assert np.median(np.frombuffer(encoded.fields["scales"], "<f4") / whole) < 0.5


def test_once_training_stops_the_servers_copy_comes_to_the_true_weights():
    torch.manual_seed(1)
    weights = flat(nn.Sequential(nn.Linear(784, 256), nn.Linear(256, 10)))
    wire = WeightsEncoder(row_lengths(QUESTION).tolist())
    held, errors = None, []
    for step in range(1, 5):
        encoded = wire.encode(weights, exact=False)
        held = servers_copy(encoded, held)
        wire.taken(encoded, step)
        errors.append(float(np.abs(held - weights).max()))
    assert errors[0] > 1e-5  # the whole int8 snapshot's rounding
    assert all(later <= earlier / 100 for earlier, later in zip(errors[:2], errors[1:3]))  # /254 a snapshot
    assert errors[-1] < 1e-8 * np.abs(weights).max() + 1e-12 or errors[-1] == 0


def test_the_questions_network_sends_half_float16s_bytes_and_the_last_snapshot_exact():
    wire = WeightsEncoder(row_lengths(QUESTION).tolist())
    parameters = 784 * 256 + 256 + 256 * 10 + 10
    assert wire.int8_bytes == parameters + 4 * (256 + 1 + 10 + 1) == 204_602  # float16: 407,060
    weights = np.random.default_rng(0).normal(size=parameters).astype(np.float32)
    exact = wire.encode(weights, exact=True)
    assert exact.fields["dtype"] == "float32" and np.array_equal(servers_copy(exact, None), weights)
    diverged = weights.copy()
    diverged[5] = np.nan
    assert wire.encode(diverged, exact=False).fields["dtype"] == "float16"  # the server says why, in words
