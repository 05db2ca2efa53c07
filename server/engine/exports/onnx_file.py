"""The run's network as an ONNX model, for onnxruntime, Netron and every tool that reads ONNX.

    x (N, 784) -> hidden: Gemm(x, hidden.weight, hidden.bias, transB=1) -> hidden.sigmoid -> ...
               -> output: Gemm(..., output.weight, output.bias, transB=1) -> logits (N, 10)

One Gemm per nn.Linear with transB=1: ONNX computes x Wᵀ + b with W kept as PyTorch keeps it,
(out, in), under the state_dict's own names. The batch dimension is dynamic ("N"). The output is
the logits: probabilities are softmax(logits), as the question's forward() ends.

Why the graph is written here with the onnx library rather than traced with torch.onnx.export:
on torch 2.13 the default (dynamo) exporter needs onnxscript, takes about a second, and is not
safe beside a training thread (torch.export edits process-wide tracing state: a run training in
the same process died with KeyError: 'custom' inside torch.fx, three runs out of three); the
TorchScript exporter (dynamo=False) still works but warns that it will be removed. The graph of
these networks is a Gemm and an activation per layer; tests/app/test_export_onnx.py checks that it is
the graph torch.onnx.export makes, and that onnxruntime gives the playground's logits.
"""
from __future__ import annotations

import json

from ...experiment import N_CLASSES, N_INPUTS, TrainConfig
from . import ExportedWeights, optional_import

# Opset 21 (ONNX 1.16, 2024) with IR version 10: recent, and read by every onnxruntime since
# 1.18 and by Netron. Every operator used here has existed, unchanged, since opset 16.
OPSET = 21
IR_VERSION = 10
INPUT, OUTPUT = "x", "logits"

# The activations as ONNX operators (LeakyRelu with PyTorch's negative slope, 0.01).
ACTIVATION_OPS = {
    "sigmoid": ("Sigmoid", {}),
    "relu": ("Relu", {}),
    "tanh": ("Tanh", {}),
    "leaky_relu": ("LeakyRelu", {"alpha": 0.01}),
}


def onnx_bytes(weights: ExportedWeights, config: TrainConfig) -> bytes:
    """The serialized ONNX model (a ModelProto) of these weights."""
    onnx = optional_import("onnx", "the ONNX export")
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    architecture = weights.architecture
    activation, activation_attributes = ACTIVATION_OPS[architecture.activation]
    nodes, initializers = [], []
    x = INPUT
    for layer in architecture.layers:
        names = [f"{layer.name}.weight", f"{layer.name}.bias"]
        initializers += [numpy_helper.from_array(weights.arrays[name], name) for name in names]
        hidden = layer.name != "output"
        z = f"{layer.name}.z" if hidden else OUTPUT
        nodes.append(helper.make_node(
            "Gemm", [x, *names], [z], name=layer.name, transB=1,
            doc_string=f"self.{layer.name} = nn.Linear({layer.in_features}, {layer.out_features}): "
                       f"x Wᵀ + b, W = {layer.name}.weight of shape {layer.weight_shape}"))
        if hidden:
            x = f"{layer.name}.{architecture.activation}"
            nodes.append(helper.make_node(activation, [z], [x], name=x, **activation_attributes))
    batch = "N"
    graph = helper.make_graph(
        nodes, "network", [helper.make_tensor_value_info(INPUT, onnx.TensorProto.FLOAT, [batch, N_INPUTS])],
        [helper.make_tensor_value_info(OUTPUT, onnx.TensorProto.FLOAT, [batch, N_CLASSES])], initializers,
        doc_string="x: (N, 784) floats 0..1 with 1 = ink, a 28x28 digit row by row (MNIST / 255). "
                   "logits: (N, 10); the probabilities of the digits 0..9 are softmax(logits, axis=1).")
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
                              producer_name="nn.Linear playground", model_version=weights.step,
                              doc_string=f"The {architecture.text()} network ({architecture.activation}) trained in the "
                                         f"nn.Linear playground, at step {weights.step}")
    helper.set_model_props(model, {"setup": json.dumps(config.model_dump()), "step": str(weights.step)})
    return model.SerializeToString()
