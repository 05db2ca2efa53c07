"""Predictions come from a replica of the live weights in shared memory: the engine copies them
between steps, the web tier reads a consistent copy and runs the forward pass itself, so a
drawing never waits for training. Its answers are the network's own, and after a pause exactly
the paused network's."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from server.engine.model import build_network
from server.experiment import TrainConfig
from server.link.replica import ReplicaReader, ReplicaWriter, forward
from tests.support.helpers import wait_for


def layer_arrays(model):
    arrays = []
    for name in model.layer_names + ["output"]:
        layer = getattr(model, name)
        arrays += [layer.weight.detach().numpy(), layer.bias.detach().numpy()]
    return arrays


@pytest.fixture
def writer_and_reader():
    made = []

    def make(sizes):
        writer, reader = ReplicaWriter(sizes), ReplicaReader()
        reader.attach(writer.name)
        made.append((writer, reader))
        return writer, reader

    yield make
    for writer, reader in made:
        reader.close()
        writer.close()


@pytest.mark.parametrize("config", [
    TrainConfig(),
    TrainConfig(hidden_sizes=[64, 32], activation="relu"),
    TrainConfig(hidden_sizes=[20, 20, 20, 20], activation="tanh"),
    TrainConfig(hidden_sizes=[48], activation="leaky_relu", seed=3),
])
def test_the_replica_answers_what_the_network_itself_answers(config, writer_and_reader, small_dataset):
    model = build_network(config)
    writer, reader = writer_and_reader(config.architecture.sizes)
    writer.write(run_id=4, step=17, status="paused", activation=config.activation, arrays=layer_arrays(model))

    weights = reader.latest()
    assert (weights.run_id, weights.step, weights.status, weights.sizes) == (4, 17, "paused", config.architecture.sizes)
    for digit in small_dataset.validation.images[:20]:
        trace = forward(weights, digit.numpy())
        with torch.no_grad():
            expected = model.trace(digit.reshape(1, -1))
        np.testing.assert_allclose(trace.probabilities, expected.probabilities[0].numpy(), atol=2e-6)
        np.testing.assert_allclose(trace.logits, expected.logits[0].numpy(), atol=2e-5)
        for ours, theirs in zip(trace.activations, expected.activations):
            np.testing.assert_allclose(ours, theirs[0].numpy(), atol=2e-6)


def test_a_reader_copies_again_only_when_the_engine_wrote(writer_and_reader):
    model = build_network(TrainConfig(hidden_sizes=[16]))
    writer, reader = writer_and_reader(model.architecture.sizes)
    writer.write(run_id=1, step=1, status="running", activation="sigmoid", arrays=layer_arrays(model))

    first = reader.latest()
    assert reader.latest() is first  # nothing new: the same copy, no copying
    before = model.hidden.weight.detach().numpy().copy()
    with torch.no_grad():
        model.hidden.weight.add_(1.0)
    writer.write(run_id=1, step=2, status="running", activation="sigmoid", arrays=layer_arrays(model))
    second = reader.latest()
    assert second.step == 2 and second is not first
    np.testing.assert_array_equal(second.layers[0][0], model.hidden.weight.detach().numpy())
    np.testing.assert_array_equal(first.layers[0][0], before)  # a copy, untouched by the later write


def test_no_replica_yet_means_no_weights():
    assert ReplicaReader().latest() is None


def test_after_a_pause_predictions_use_exactly_the_paused_weights_and_say_which_step(sio_client, session):
    assert sio_client.emit("train:start", {"config": {"steps_per_second": None}}, callback=True)["ok"]
    wait_for(lambda: session.step_count > 30, what="some training")
    paused = sio_client.emit("train:pause", callback=True)["state"]
    digit = session.dataset.validation.images[3]

    answer = sio_client.emit("predict", {"pixels": digit.tolist()}, callback=True)

    assert answer["ok"] and answer["step"] == paused["step"] == session.step_count
    assert answer["run_id"] == paused["run_id"]
    with torch.no_grad():
        expected = session.model(digit.reshape(1, -1))[0]
    assert answer["probabilities"] == pytest.approx(expected.tolist(), abs=2e-6)
    assert answer["prediction"] == int(expected.argmax())


def test_while_training_predictions_come_from_weights_at_most_a_moment_old(sio_client, session):
    assert sio_client.emit("train:start", {"config": {"steps_per_second": 50}}, callback=True)["ok"]
    wait_for(lambda: session.step_count > 20, what="some training")
    for _ in range(10):
        answer = sio_client.emit("predict", {"pixels": [0.0] * 784}, callback=True)
        # 50 steps/s and a copy every 50 ms: the weights are a few steps behind at most
        assert 0 <= session.step_count - answer["step"] <= 10
