"""Shapes and counts: every nn.Linear holds weight (out_features, in_features) and bias
(out_features,); the question's network has 200,704 + 256 and 2,560 + 10 = 203,530 parameters."""
from __future__ import annotations

import pytest

from server.experiment import TrainConfig
from server.engine.codegen import layer_shapes
from server.engine.model import build_network


def test_the_questions_network_shapes_and_counts():
    shapes = layer_shapes(TrainConfig())
    hidden, output = shapes["layers"]

    assert (hidden["name"], hidden["weight_shape"], hidden["bias_shape"]) == ("hidden", [256, 784], [256])
    assert (hidden["weight_count"], hidden["bias_count"]) == (200_704, 256)
    assert (output["name"], output["weight_shape"], output["bias_shape"]) == ("output", [10, 256], [10])
    assert (output["weight_count"], output["bias_count"]) == (2_560, 10)
    assert shapes["parameters"] == 203_530
    assert shapes["batch_shapes_text"] == "(batch_size, 784) -> (batch_size, 256) -> (batch_size, 10)"


@pytest.mark.parametrize("hidden_sizes", [[256], [1], [100, 50], [2048, 7, 3, 9]])
def test_shapes_are_those_of_the_real_module(hidden_sizes):
    config = TrainConfig(hidden_sizes=hidden_sizes)
    network = build_network(config)
    shapes = layer_shapes(config)

    for layer in shapes["layers"]:
        linear = getattr(network, layer["name"])
        assert list(linear.weight.shape) == layer["weight_shape"] == [linear.out_features, linear.in_features]
        assert list(linear.bias.shape) == layer["bias_shape"]
        assert layer["parameters"] == linear.weight.numel() + linear.bias.numel()
    assert shapes["parameters"] == sum(p.numel() for p in network.parameters())
    assert [n for _, n in shapes["batch_shapes"]] == network.summary()["shape"]


def test_the_code_view_gets_the_shapes_of_the_setup_on_screen(client, sio_client):
    sio_client.emit("train:reset", {"config": {"hidden_sizes": [32, 16]}}, callback=True)

    shapes = client.get("/api/explain/code").get_json()["shapes"]

    assert [layer["name"] for layer in shapes["layers"]] == ["hidden", "hidden2", "output"]
    assert shapes["parameters"] == 784 * 32 + 32 + 32 * 16 + 16 + 16 * 10 + 10
