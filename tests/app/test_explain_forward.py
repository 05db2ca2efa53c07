"""The forward pass of a drawing, step by step: a picked neuron's weighted sum written out term
by term equals what the model computed, and the softmax's three steps give its probabilities."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from server.experiment import TrainConfig
from server.engine.codegen import double_softmax_floor
from server.engine.explain import forward_steps, snapshot, softmax_steps
from server.engine.model import build_network
from server.engine.trainer import Trainer


@pytest.fixture(scope="module")
def trained(small_dataset):
    """The playground's network after a few real training steps on real digits."""
    trainer = Trainer(TrainConfig(), small_dataset.train.images, small_dataset.train.labels)
    trainer.train_batches(30)
    return trainer.model


@pytest.fixture
def digit(small_dataset):
    return small_dataset.validation.images[3].reshape(-1)


@pytest.mark.parametrize("neuron", [0, 17, 255])
def test_a_neurons_sum_plus_bias_equals_the_models_pre_activation(trained, digit, neuron):
    steps = forward_steps(trained, digit, neuron=neuron)
    arithmetic = steps["neuron"]

    with torch.no_grad():
        z = trained.hidden(digit.reshape(1, -1))[0, neuron]
    assert arithmetic["index"] == neuron
    assert arithmetic["result"] == pytest.approx(arithmetic["sum"] + arithmetic["bias"])
    assert arithmetic["result"] == pytest.approx(float(z), abs=1e-5)
    assert arithmetic["model_value"] == pytest.approx(float(z), abs=1e-7)
    assert arithmetic["activation"] == pytest.approx(float(torch.sigmoid(z)), abs=1e-6)
    assert arithmetic["bias"] == pytest.approx(trained.hidden.bias[neuron].item())


def test_the_largest_terms_come_first_and_the_rest_adds_up(trained, digit):
    arithmetic = forward_steps(trained, digit, neuron=5, top=8)["neuron"]
    terms = torch.tensor(arithmetic["terms"])
    top = arithmetic["top_terms"]

    assert len(top) == 8 and arithmetic["rest_count"] == 784 - 8
    sizes = [abs(t["term"]) for t in top]
    assert sizes == sorted(sizes, reverse=True)
    assert min(sizes) >= terms.abs().sort(descending=True).values[8].item()
    for t in top:
        assert t["term"] == pytest.approx(t["x"] * t["w"], rel=1e-6)
        assert t["w"] == pytest.approx(trained.hidden.weight[5, t["i"]].item())
        assert t["x"] == pytest.approx(float(digit[t["i"]]))
    assert sum(t["term"] for t in top) + arithmetic["rest_sum"] == pytest.approx(arithmetic["sum"])
    assert arithmetic["nonzero_inputs"] == int((digit != 0).sum())


def test_without_a_pick_the_most_excited_neuron_is_explained(trained, digit):
    steps = forward_steps(trained, digit)

    z = torch.tensor(steps["layers"][0]["z"])
    assert steps["neuron"]["index"] == int(z.argmax())


def test_steps_are_the_models_intermediates(trained, digit):
    steps = forward_steps(trained, digit)
    trace = trained.trace(digit.reshape(1, -1))

    torch.testing.assert_close(torch.tensor(steps["layers"][0]["z"]), trace.pre_activations[0][0])
    torch.testing.assert_close(torch.tensor(steps["layers"][0]["activation"]), trace.activations[0][0])
    torch.testing.assert_close(torch.tensor(steps["logits"]), trace.logits[0])
    torch.testing.assert_close(torch.tensor(steps["probabilities"]), trace.probabilities[0])
    assert steps["prediction"] == int(trace.probabilities.argmax())
    assert steps["input"]["nonzero"] == int((digit != 0).sum())


def test_an_output_neuron_is_a_logit_and_a_deeper_neuron_reads_the_previous_activations():
    network = build_network(TrainConfig(hidden_sizes=[20, 12], activation="tanh"))
    x = torch.rand(784, generator=torch.Generator().manual_seed(1))
    trace = network.trace(x.reshape(1, -1))

    output = forward_steps(network, x, layer="output", neuron=7)["neuron"]
    deeper = forward_steps(network, x, layer="hidden2", neuron=3)["neuron"]

    assert output["result"] == pytest.approx(float(trace.logits[0, 7]), abs=1e-5)
    assert output["in_features"] == 12 and "activation" not in output
    assert deeper["result"] == pytest.approx(float(trace.pre_activations[1][0, 3]), abs=1e-5)
    assert [t["x"] for t in deeper["top_terms"]] == pytest.approx(
        [float(trace.activations[0][0, t["i"]]) for t in deeper["top_terms"]])
    assert deeper["activation"] == pytest.approx(math.tanh(deeper["model_value"]), abs=1e-6)


def test_softmax_steps_subtract_the_max_exponentiate_and_divide_by_the_sum():
    logits = torch.tensor([2.0, -1.0, 0.5, 3.0, 0.0, 0.0, -2.0, 1.0, 0.25, -0.5])

    steps = softmax_steps(logits)

    assert steps["max"] == 3.0
    assert steps["shifted"][3] == 0.0 and max(steps["shifted"]) == 0.0
    assert steps["exp"] == pytest.approx([math.exp(v - 3.0) for v in logits.tolist()])
    assert steps["sum"] == pytest.approx(sum(steps["exp"]))
    torch.testing.assert_close(torch.tensor(steps["probabilities"], dtype=torch.float32), F.softmax(logits, dim=0))


def test_softmax_steps_do_not_overflow_on_huge_logits():
    steps = softmax_steps(torch.tensor([1000.0, 999.0, -1000.0]))

    assert all(math.isfinite(v) for v in steps["exp"])
    assert steps["probabilities"][0] == pytest.approx(1 / (1 + math.exp(-1)))


def test_the_double_softmax_floor_is_the_loss_of_a_perfect_answer_softmaxed_again():
    perfect = F.one_hot(torch.tensor([4]), 10).float()  # certain and right: probability 1 for digit 4

    loss = F.cross_entropy(perfect, torch.tensor([4]))  # what output="softmax" trains on

    assert double_softmax_floor(10) == pytest.approx(loss.item(), abs=1e-6)
    assert double_softmax_floor(10) == pytest.approx(1.4612, abs=1e-4)


def test_a_snapshot_is_frozen_while_the_live_model_trains(session, digit):
    frozen = snapshot(session.trainer.model)
    before = forward_steps(frozen, digit, neuron=1)["neuron"]["model_value"]

    session.step(5)

    assert forward_steps(frozen, digit, neuron=1)["neuron"]["model_value"] == before
    assert forward_steps(session.trainer.model, digit, neuron=1)["neuron"]["model_value"] != before


# ---- the explain:forward event ----------------------------------------------------------------
def test_explain_forward_answers_with_the_steps_of_the_drawing(sio_client, session, digit):
    pixels = digit.tolist()

    answer = sio_client.emit("explain:forward", {"pixels": pixels, "neuron": 42}, callback=True)
    predicted = sio_client.emit("predict", {"pixels": pixels}, callback=True)

    assert answer["ok"], answer
    assert answer["neuron"]["index"] == 42 and answer["neuron"]["layer"] == "hidden"
    assert answer["probabilities"] == pytest.approx(predicted["probabilities"], abs=1e-6)
    assert answer["layers"][0]["activation"] == pytest.approx(predicted["hidden"], abs=1e-6)
    assert answer["neuron"]["result"] == pytest.approx(answer["layers"][0]["z"][42], abs=1e-5)


@pytest.mark.parametrize("payload, words", [
    (None, "needs an object"),
    ([0.0] * 784, "needs an object"),
    ({}, "pixels: missing: send it"),
    ({"pixels": [0.0] * 783}, "784"),
    ({"pixels": [0.0] * 783 + ["a"]}, "pixels[783] must be a number"),
    ({"pixels": [0.0] * 783 + [2.0]}, "outside 0..1"),
    ({"pixels": [0.0] * 784, "neuron": 256}, "neuron must be from 0 to 255"),
    ({"pixels": [0.0] * 784, "neuron": -1}, "neuron: give a number of at least 0"),
    ({"pixels": [0.0] * 784, "neuron": "3"}, "neuron: give a whole number"),
    ({"pixels": [0.0] * 784, "layer": "hidden7"}, "layer must be one of hidden, output"),
    ({"pixels": [0.0] * 784, "top": 0}, "top: give a number of at least 1"),
    ({"pixels": [0.0] * 784, "colour": 1}, "colour: not something this request takes"),
])
def test_explain_forward_refuses_bad_requests_in_words(sio_client, payload, words):
    answer = sio_client.emit("explain:forward", payload, callback=True)

    assert answer["ok"] is False
    assert words in answer["error"]
