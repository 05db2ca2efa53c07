"""The heatmaps, sent small: a key frame, then only the codes that moved. What a viewer
rebuilds from them stays within 1.5 steps of the live weights while training and within half a
step once the run stands still, and a frame is a fraction of a whole one."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from server.engine.deltas import LEVELS, RowDeltas
from tests.support.row_deltas_reader import RowDeltasReader
from server.engine.trainer import Trainer
from server.experiment import TrainConfig


def step_size(weights: np.ndarray, reader: RowDeltasReader) -> np.ndarray:
    return (np.exp2(reader.exponents.astype(np.float64)) / LEVELS)[:, None]


def test_a_viewer_following_the_deltas_holds_the_live_weights_within_a_step_and_a_half(small_dataset):
    trainer = Trainer(TrainConfig(), small_dataset.train.images, small_dataset.train.labels)
    chain, reader = RowDeltas(), RowDeltasReader(256, 784)
    weights = lambda: trainer.model.hidden.weight.detach().numpy().astype(np.float64)  # noqa: E731
    reader.apply(chain.key(weights()))
    sizes = []
    for _ in range(40):
        trainer.train_batches(10)
        part = chain.delta(weights())
        sizes.append(len(part["changes"]) + len(part["shifts"]))
        reader.apply(part)
        error = np.abs(reader.values() - weights()) / step_size(weights(), reader)
        assert error.max() <= 1.5 + 1e-6
        np.testing.assert_array_equal(reader.codes, chain.shown)
    reader.apply(chain.delta(weights(), exact=True))  # the run stands still: exact to the code
    assert (np.abs(reader.values() - weights()) / step_size(weights(), reader)).max() <= 0.5 + 1e-6
    assert np.mean(sizes[-10:]) < 256 * 784 / 4  # deltas are a fraction of the 200 kB of codes


def test_a_row_that_outgrows_its_scale_is_halved_on_both_sides_not_resent():
    rows = np.array([[0.1, -0.2, 0.05], [0.5, 0.4, -0.3]])
    chain, reader = RowDeltas(), RowDeltasReader(2, 3)
    reader.apply(chain.key(rows))
    grown = rows * np.array([[5.0], [1.0]])  # row 0 grows past its power of two
    part = chain.delta(grown)
    assert list(np.frombuffer(part["shifts"], np.uint8)) == [2, 0]  # 0.25 -> 1.0: two doublings
    reader.apply(part)
    np.testing.assert_array_equal(reader.codes, chain.shown)
    assert np.abs(reader.values() - grown).max() <= 1.5 * 2.0 ** reader.exponents.max() / LEVELS


def test_a_delta_before_any_key_frame_is_refused():
    with pytest.raises(ValueError, match="key frame first"):
        RowDeltas().delta(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="key frame first"):
        RowDeltasReader(2, 2).apply({"shifts": b"\0\0", "changes": b""})


def test_zero_and_non_finite_weights_do_not_break_the_codes():
    chain, reader = RowDeltas(), RowDeltasReader(2, 2)
    reader.apply(chain.key(np.array([[0.0, 0.0], [np.nan, 1.0]])))
    assert np.isfinite(reader.values()).all()
    assert torch.equal(torch.from_numpy(reader.codes[0]), torch.zeros(2, dtype=torch.int8))
