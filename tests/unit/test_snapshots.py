"""The maths behind the live views, checked against plain torch and numpy."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from server.experiment import TrainConfig
from server.engine.model import build_network
from server.engine.snapshots import (
    HISTOGRAM_BINS, QUANT_LEVELS, QUANT_ZERO, TILE_SIDE, FixedBins, HistogramHistory, Snapshotter,
    activation_range, contributions, linear_histogram, log_count_codes,
    mosaic_columns, quantise_rows, saturation, top_exciting,
)
from server.engine.trainer import Trainer
from tests.support.helpers import seeded_tensor


# How a viewer reads the quantised tiles back (static/js does the same): value = (code - 128) * scale / 127.
def dequantise_rows(codes: np.ndarray, scales: np.ndarray) -> np.ndarray:
    return (codes.astype(np.float32) - QUANT_ZERO) * (scales[:, None] / QUANT_LEVELS)


def tile_images(quantised) -> np.ndarray:
    """(n, 28, 28): neuron j's weights as the picture it responds to (row-major like the input)."""
    return dequantise_rows(quantised.codes, quantised.scales).reshape(-1, TILE_SIDE, TILE_SIDE)


@pytest.fixture(scope="module")
def trained(small_dataset):
    """The default network after 30 real training steps (weights and gradients no longer at init)."""
    trainer = Trainer(TrainConfig(), small_dataset.train.images, small_dataset.train.labels)
    trainer.train_batches(30)
    return trainer.model


def test_tile_j_is_row_j_of_hidden_weight_as_28_by_28_within_half_a_quantisation_step(trained):
    weight = trained.hidden.weight.detach()
    quantised = quantise_rows(weight)
    tiles = tile_images(quantised)
    assert tiles.shape == (256, 28, 28)
    half_step = weight.abs().amax(dim=1).numpy() / (2 * QUANT_LEVELS)
    for j in (0, 1, 17, 128, 255):
        expected = weight[j].reshape(28, 28).numpy()
        assert np.all(np.abs(tiles[j] - expected) <= half_step[j] * (1 + 1e-5) + 1e-9), j
    # every tile, not only a few: the worst error is within half a step of its own row
    errors = np.abs(tiles.reshape(256, 784) - weight.numpy()).max(axis=1)
    assert np.all(errors <= half_step * (1 + 1e-5) + 1e-9)


def test_quantisation_keeps_zero_exact_and_uses_the_full_code_range():
    matrix = torch.tensor([[0.0, 0.5, -0.5, 1.0, -1.0], [0.0, 0.0, 0.0, 0.0, 0.0]])
    quantised = quantise_rows(matrix)
    assert quantised.codes[0].tolist() == [QUANT_ZERO, 192, 64, 255, 1]
    assert quantised.codes[1].tolist() == [QUANT_ZERO] * 5  # an all-zero row: no division by zero
    assert quantised.scales.tolist() == [1.0, 0.0]
    assert np.array_equal(dequantise_rows(quantised.codes, quantised.scales)[1], np.zeros(5, dtype=np.float32))


def test_mosaic_is_as_square_as_possible():
    assert [mosaic_columns(n) for n in (1, 2, 10, 100, 256, 257)] == [1, 2, 4, 10, 16, 17]


def test_fixed_bin_counts_sum_to_the_element_count_even_with_outliers():
    x = seeded_tensor(300, 784) - 0.5
    bins = FixedBins.for_tensor(x)
    grown = x * 200  # far beyond the bins chosen at the "first snapshot"
    for tensor in (x, grown):
        counts, outside, not_finite = bins.count(tensor)
        assert counts.sum() == tensor.numel()
        assert not_finite == 0
    assert bins.count(x)[1] == 0
    assert bins.count(grown)[1] > 0  # counted in the outer bins, and reported


def test_fixed_bins_agree_with_numpy_histogram_on_the_same_edges():
    x = (seeded_tensor(100_000, seed=3).double() - 0.5) * 3
    bins = FixedBins(scale=0.05, limit=2.0)
    counts, outside, _ = bins.count(x)
    edges = bins.edges()
    assert len(edges) == HISTOGRAM_BINS + 1 and np.all(np.diff(edges) > 0)
    inside = x.numpy()[np.abs(x.numpy()) < 2.0]
    expected, _ = np.histogram(inside, bins=edges)
    beyond = np.abs(x.numpy()) >= 2.0
    assert outside == int(beyond.sum())
    # values beyond the edges are added to the outermost bins
    expected[0] += int((x.numpy() <= -2.0).sum())
    expected[-1] += int((x.numpy() >= 2.0).sum())
    assert counts.tolist() == expected.tolist()


def test_fixed_bins_are_linear_near_zero_and_reach_64_times_the_first_largest_value():
    x = torch.linspace(-0.04, 0.04, 1001)
    bins = FixedBins.for_tensor(x)
    edges = bins.edges()
    assert edges[0] == pytest.approx(-0.04 * 64) and edges[-1] == pytest.approx(0.04 * 64)
    widths = np.diff(edges)
    middle = widths[len(widths) // 2 - 2: len(widths) // 2 + 2]
    assert middle.max() / middle.min() < 1.1  # near zero: nearly even
    assert widths[0] / widths[len(widths) // 2] > 20  # far out: much wider


def test_nan_is_reported_not_binned_and_infinity_counts_as_beyond_the_edges():
    x = torch.tensor([0.1, float("nan"), -0.2, float("inf"), 0.0])
    counts, outside, not_finite = FixedBins(scale=0.1, limit=1.0).count(x)
    assert counts.sum() == 4 and not_finite == 1 and outside == 1 and counts[-1] == 1


def test_linear_histogram_matches_numpy():
    values = seeded_tensor(256, 500, seed=5)
    edges, counts = linear_histogram(values, 0.0, 1.0, 40)
    expected, expected_edges = np.histogram(values.numpy(), bins=40, range=(0.0, 1.0))
    assert np.allclose(edges, expected_edges)
    assert counts.sum() == values.numel()
    assert np.abs(counts - expected).sum() <= 2  # float32 vs float64 at a bin edge, at most


def test_history_keeps_the_first_step_and_thins_old_records_when_full():
    history = HistogramHistory(FixedBins(0.1, 1.0), numel=10, capacity=20)
    x = torch.zeros(10)
    for step in range(0, 1000, 5):
        history.record(step, x)
    assert len(history.steps) <= 20
    assert history.steps[0] == 0  # the first record is never dropped
    assert history.steps[-1] == 995  # the newest is there
    assert history.steps == sorted(set(history.steps))
    gaps = np.diff(history.steps)
    assert gaps[1] >= gaps[-1]  # old steps are sparser than recent ones
    assert len(history.counts) == len(history.outside) == len(history.steps)


def test_history_replaces_a_step_seen_again_instead_of_duplicating_it():
    history = HistogramHistory(FixedBins(0.1, 1.0), numel=3)
    history.record(7, torch.tensor([0.0, 0.0, 0.0]))
    history.record(7, torch.tensor([0.5, 0.5, 0.5]))
    assert history.steps == [7]
    assert history.counts[0].sum() == 3 and history.counts[0].argmax() > HISTOGRAM_BINS // 2


def test_log_count_codes_round_trip_within_five_percent():
    numel = 200_704
    counts = np.array([0, 1, 10, 1234, 50_000, numel])
    codes = log_count_codes(counts, numel)
    assert codes[0] == 0 and codes[-1] == 255
    decoded = np.expm1(codes * np.log1p(numel) / 255)
    assert np.all(np.abs(decoded - counts) <= 0.05 * counts + 0.5)


def test_contributions_sum_to_the_pre_activation_minus_the_bias(trained, small_dataset):
    x = small_dataset.validation.images[3]
    pre_activation = trained.hidden(x.reshape(1, -1))[0].detach()
    for j in (0, 5, 200):
        parts = contributions(trained.hidden.weight[j].detach().numpy(), x.numpy())
        assert parts.shape == (784,)
        assert parts.sum() == pytest.approx(float(pre_activation[j] - trained.hidden.bias[j].detach()), abs=1e-5)


def test_snapshotter_neuron_detail_matches_the_model(trained, small_dataset):
    snapshotter = Snapshotter(small_dataset.validation.images, small_dataset.validation.labels)
    snapshotter.activations_frame(trained, step=30)
    x = small_dataset.validation.images[0]
    detail = snapshotter.neuron(trained, 42, x.numpy())
    z = trained.hidden(x.reshape(1, -1))[0, 42].item()
    assert detail["pre_activation"] == pytest.approx(z, abs=1e-5)
    assert detail["activation_value"] == pytest.approx(torch.sigmoid(torch.tensor(z)).item(), abs=1e-6)
    weights = np.frombuffer(detail["weights"], dtype="<f4")
    assert np.array_equal(weights, trained.hidden.weight[42].detach().numpy())
    assert sum(detail["histogram"]["counts"]) == 784
    parts = np.frombuffer(detail["contributions"], dtype="<f4")
    assert parts.sum() + detail["bias"] == pytest.approx(z, abs=1e-4)
    with pytest.raises(IndexError):
        snapshotter.neuron(trained, 256, None)


def test_top_exciting_digits_are_the_highest_activations_of_each_unit(trained, small_dataset):
    images = small_dataset.validation.images[:100]
    activations = torch.sigmoid(trained.hidden(images)).detach()
    values, indices = top_exciting(activations, k=5)
    assert values.shape == indices.shape == (5, 256)
    for j in (0, 99, 255):
        order = torch.argsort(activations[:, j], descending=True)[:5]
        assert set(indices[:, j].tolist()) == set(order.tolist())
        assert np.all(np.diff(values[:, j]) <= 0)


def test_saturation_shares_match_a_plain_count():
    values = torch.tensor([0.01, 0.5, 0.97, 0.99, 0.3, 0.04, 0.96, 0.6])
    share = saturation("sigmoid", values)
    assert share["low"] == pytest.approx(2 / 8) and share["high"] == pytest.approx(3 / 8)
    assert share["share"] == pytest.approx(5 / 8)
    assert saturation("relu", torch.tensor([0.0, 0.0, 1.0, 2.0]))["share"] == pytest.approx(0.5)
    assert activation_range("sigmoid", values) == (0.0, 1.0)
    assert activation_range("relu", torch.tensor([0.0, 3.2])) == (0.0, 5.0)


def test_weights_frame_carries_bytes_and_shapes_for_a_multi_layer_network():
    model = build_network(TrainConfig(hidden_sizes=[300, 40], activation="tanh"))
    images = seeded_tensor(20, 784)
    snapshotter = Snapshotter(images, torch.arange(20) % 10)
    frame = snapshotter.weights_frame(model)
    hidden, output = frame["hidden"], frame["output"]
    assert hidden["n_neurons"] == 300 and hidden["n_shown"] == 256 and hidden["columns"] == 16
    assert len(hidden["data"]) == 256 * 784 and len(hidden["row_scale"]) == 256 * 4
    assert output["shape"] == [10, 40] and output["from_layer"] == "hidden2"
    decoded = np.frombuffer(output["data"], dtype="<f2").reshape(10, 40)
    assert np.allclose(decoded, model.output.weight.detach().numpy(), atol=1e-3)
    stats = snapshotter.activations_frame(model, step=0)
    assert [layer["name"] for layer in stats["layers"]] == ["hidden", "hidden2"]
    trace = model.trace(images)
    for layer, values in zip(stats["layers"], trace.activations):
        assert sum(layer["counts"]) == values.numel()
        assert layer["edges"][0] == -1.0 and layer["edges"][-1] == 1.0


def test_distributions_record_weights_and_gradients_of_each_layer(trained):
    snapshotter = Snapshotter(seeded_tensor(10, 784), torch.arange(10))
    snapshotter.record_distributions(trained, step=30)
    frame = snapshotter.distributions_frame()
    names = {(t["name"], t["kind"]) for t in frame["tensors"]}
    assert names == {("hidden.weight", "weight"), ("hidden.weight", "gradient"),
                     ("output.weight", "weight"), ("output.weight", "gradient")}
    for tensor in frame["tensors"]:
        assert len(tensor["counts"]) == len(tensor["steps"]) * tensor["bins"]
        source = trained.hidden.weight if tensor["name"] == "hidden.weight" else trained.output.weight
        x = source if tensor["kind"] == "weight" else source.grad
        counts, _, _ = FixedBins(tensor["scale"], tensor["limit"]).count(x)
        assert counts.sum() == tensor["numel"] == x.numel()
    fresh = build_network(TrainConfig())  # before any step there is no gradient to record
    snapshotter.new_run()
    snapshotter.record_distributions(fresh, step=0)
    assert {t["kind"] for t in snapshotter.distributions_frame()["tensors"]} == {"weight"}


def test_gradient_histogram_is_of_the_real_gradient(small_dataset):
    model = build_network(TrainConfig())
    x, y = small_dataset.train.images[:64], small_dataset.train.labels[:64]
    F.cross_entropy(model.logits(x), y).backward()
    bins = FixedBins.for_tensor(model.hidden.weight.grad)
    counts, outside, _ = bins.count(model.hidden.weight.grad)
    expected, _ = np.histogram(model.hidden.weight.grad.numpy().astype(np.float64), bins=bins.edges())
    assert outside == 0 and counts.sum() == 200_704
    assert np.abs(counts - expected).sum() <= 4  # float32 rounding at a bin edge, at most
