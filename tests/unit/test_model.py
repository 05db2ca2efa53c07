"""The network is the question's: nn.Linear(784, 256) -> sigmoid -> nn.Linear(256, 10) -> softmax,
with the question's names, shapes and parameter count; other setups extend it without renaming it."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from server.experiment import TrainConfig
from server.engine.model import Network, build_network
from tests.support.helpers import seeded_tensor


def test_the_default_network_has_the_questions_layers_and_shapes():
    network = Network()

    assert isinstance(network.hidden, torch.nn.Linear)
    assert isinstance(network.output, torch.nn.Linear)
    assert network.hidden.weight.shape == (256, 784)  # nn.Linear stores W as (out, in)
    assert network.hidden.bias.shape == (256,)
    assert network.output.weight.shape == (10, 256)
    assert network.output.bias.shape == (10,)


def test_the_default_network_has_203530_parameters():
    network = Network()

    assert sum(p.numel() for p in network.parameters()) == 784 * 256 + 256 + 256 * 10 + 10 == 203_530
    assert network.summary()["parameters"] == 203_530
    assert network.summary()["shape"] == [784, 256, 10]


def test_the_default_state_dict_keys_are_exactly_the_questions_names():
    assert list(Network().state_dict().keys()) == [
        "hidden.weight", "hidden.bias", "output.weight", "output.bias"]


def test_hidden_layer_computes_x_times_W_transposed_plus_b():
    network = Network()
    x = seeded_tensor(5, 784)

    by_hand = x @ network.hidden.weight.T + network.hidden.bias

    torch.testing.assert_close(by_hand, network.hidden(x))


def test_forward_is_sigmoid_then_softmax_with_rows_summing_to_one():
    network = Network()
    x = seeded_tensor(8, 784, seed=1)

    probabilities = network(x)

    assert probabilities.shape == (8, 10)
    assert (probabilities >= 0).all()
    torch.testing.assert_close(probabilities.sum(dim=1), torch.ones(8))
    as_written = F.softmax(network.output(torch.sigmoid(network.hidden(x))), dim=1)
    torch.testing.assert_close(probabilities, as_written)


def test_trace_intermediates_are_consistent_with_each_other_and_forward():
    network = Network()
    x = seeded_tensor(3, 784, seed=2)

    trace = network.trace(x)

    assert len(trace.pre_activations) == len(trace.activations) == 1
    z, a = trace.pre_activations[0], trace.activations[0]
    assert z.shape == a.shape == (3, 256)
    torch.testing.assert_close(z, x @ network.hidden.weight.T + network.hidden.bias)
    torch.testing.assert_close(a, torch.sigmoid(z))
    torch.testing.assert_close(trace.logits, a @ network.output.weight.T + network.output.bias)
    torch.testing.assert_close(trace.probabilities, F.softmax(trace.logits, dim=1))
    torch.testing.assert_close(trace.probabilities, network(x))


def test_build_network_is_seeded():
    same_a = build_network(TrainConfig(seed=7))
    same_b = build_network(TrainConfig(seed=7))
    other = build_network(TrainConfig(seed=8))

    for name, tensor in same_a.state_dict().items():
        torch.testing.assert_close(tensor, same_b.state_dict()[name])
    assert not torch.equal(same_a.hidden.weight, other.hidden.weight)


def test_build_network_leaves_the_global_random_stream_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    build_network(TrainConfig(seed=5))
    assert torch.equal(torch.rand(3), expected)


def test_initial_weights_follow_nn_linear_uniform_bound():
    network = build_network(TrainConfig())
    bound = 1 / 784 ** 0.5
    assert network.hidden.weight.abs().max() <= bound
    assert network.hidden.weight.abs().max() > 0.9 * bound  # 200k draws fill the range


@pytest.mark.parametrize("activation, function", [
    ("sigmoid", torch.sigmoid), ("relu", F.relu), ("tanh", torch.tanh), ("leaky_relu", F.leaky_relu)])
def test_other_activations_are_applied_between_the_layers(activation, function):
    network = build_network(TrainConfig(activation=activation))
    x = seeded_tensor(4, 784, seed=3) - 0.5  # negative inputs too, so relu and leaky relu differ

    trace = network.trace(x)

    torch.testing.assert_close(trace.activations[0], function(trace.pre_activations[0]))
    assert network.summary()["activation"] == activation


@pytest.mark.parametrize("hidden_sizes, names", [
    ([32], ["hidden"]),
    ([32, 16], ["hidden", "hidden2"]),
    ([32, 16, 8], ["hidden", "hidden2", "hidden3"]),
    ([32, 16, 8, 4], ["hidden", "hidden2", "hidden3", "hidden4"]),
])
def test_one_to_four_hidden_layers_are_named_hidden_hidden2_and_so_on(hidden_sizes, names):
    network = build_network(TrainConfig(hidden_sizes=hidden_sizes))
    x = seeded_tensor(2, 784, seed=4)

    expected_keys = [f"{name}.{p}" for name in names + ["output"] for p in ("weight", "bias")]
    assert list(network.state_dict().keys()) == expected_keys
    sizes = [784] + hidden_sizes + [10]
    for name, n_in, n_out in zip(names + ["output"], sizes[:-1], sizes[1:]):
        assert getattr(network, name).weight.shape == (n_out, n_in)
    assert sum(p.numel() for p in network.parameters()) == sum(i * o + o for i, o in zip(sizes[:-1], sizes[1:]))
    assert [layer["name"] for layer in network.summary()["layers"]] == names + ["output"]

    trace = network.trace(x)
    assert [a.shape[1] for a in trace.activations] == hidden_sizes
    torch.testing.assert_close(network(x).sum(dim=1), torch.ones(2))
