"""The run's network in Keras 3: the code the page shows beside the PyTorch class, and the `.keras`
file that code builds, written here without Keras (Keras is a test requirement only).

The Keras model is described once (`keras_layers`): the code's `layers.Dense(...)` lines and the
file's config.json both come from that list. What the question's answer leaves out, said with the
live weights in the code: PyTorch keeps nn.Linear.weight as (out, in), Keras keeps Dense.kernel as
(in, out), so kernel = Wᵀ, and Keras's x @ kernel + bias is PyTorch's x Wᵀ + b.

The file is Keras 3's saving format (keras/src/saving/saving_lib.py), a zip of:
  metadata.json     the Keras version the format is Keras 3.15's, and when it was written;
  config.json       the model: a Sequential of InputLayer, Dense, activation and Softmax layers;
  model.weights.h5  HDF5 (h5py): layers/<layer class in snake_case, numbered>/vars/{0: kernel,
                    1: bias}, in the order of the model's layers.
tests/app/test_export_keras.py loads it with keras.saving.load_model on the torch backend, runs the
code with real Keras and compares both with the playground's predictions.
"""
from __future__ import annotations

import io
import json
import re
import time
import zipfile
from dataclasses import dataclass, field
from typing import Optional

from ...experiment import ACTIVATIONS, N_INPUTS, Architecture
from . import ExportedWeights, optional_import

KERAS_FORMAT = "3.15.1"  # the Keras version whose files these are (tested with it)
MODEL_NAME = "network"
FILENAME = "nn_linear_playground.keras"  # what the code saves
CHECKPOINT = "model.pt"  # what the code reads: the .pt file "Download .pt" gives
LEAKY_SLOPE = 0.01  # PyTorch's default negative slope; Keras's "leaky_relu" activation uses 0.2
SAMPLE_SIZE = 3  # live weights shown in the code: the first few of a row of W


@dataclass(frozen=True)
class KerasLayer:
    """One Keras layer: its class, its arguments (as the code writes them) and what it is in PyTorch."""

    class_name: str  # Dense, LeakyReLU, Softmax
    name: str
    arguments: dict = field(default_factory=dict)
    pytorch: str = ""  # the comment beside it: the PyTorch it stands for
    linear: Optional[str] = None  # the nn.Linear whose weight and bias it holds


def keras_layers(architecture: Architecture) -> list[KerasLayer]:
    """The Keras layers of the network: each nn.Linear is a Dense; a hidden layer's activation is
    Dense's argument (leaky ReLU: a layer of its own, for PyTorch's slope); F.softmax a Softmax."""
    activation = ACTIVATIONS[architecture.activation]
    found = []
    for layer in architecture.hidden_layers:
        if architecture.activation == "leaky_relu":
            found.append(KerasLayer("Dense", layer.name, {"units": layer.out_features},
                                    f"self.{layer.name} (activation: the next layer)", layer.name))
            found.append(KerasLayer("LeakyReLU", f"{layer.name}_leaky_relu", {"negative_slope": LEAKY_SLOPE},
                                    f"{activation.code}: slope 0.01 (Keras's \"leaky_relu\": 0.2)"))
        else:
            found.append(KerasLayer("Dense", layer.name, {"units": layer.out_features, "activation": activation.keras},
                                    f"self.{layer.name}, then {activation.code}", layer.name))
    output = architecture.layers[-1]
    found.append(KerasLayer("Dense", "output", {"units": output.out_features, "activation": None},
                            f"self.output: no activation, = nn.Linear({output.in_features}, "
                            f"{output.out_features})", "output"))
    found.append(KerasLayer("Softmax", "softmax", {}, "F.softmax(..., dim=1)"))
    return found


# ---- the code --------------------------------------------------------------------------------------

def _argument_text(layer: KerasLayer) -> str:
    parts = []
    for key, value in layer.arguments.items():
        text = json.dumps(value) if isinstance(value, str) else repr(value)
        parts.append(text if key == "units" else f"{key}={text}")
    return ", ".join(parts + [f'name="{layer.name}"'])


def keras_code(architecture: Architecture, live: Optional[ExportedWeights] = None) -> str:
    """Keras 3 code that builds the `.keras` file `keras_bytes` writes, from the `.pt` file the
    page's "Download .pt" gives. With `live`, comments show the live weights both ways."""
    layers = keras_layers(architecture)
    linears = [layer.linear for layer in layers if layer.linear]
    lines = [
        '# The same network in Keras 3: this builds the file "Download .keras" gives',
        f'# from {CHECKPOINT}, the weights "Download .pt" gives.',
        "import os",
        'os.environ.setdefault("KERAS_BACKEND", "torch")  # on PyTorch: no TensorFlow',
        "",
        "import keras",
        "import torch",
        "from keras import layers",
        "",
        "model = keras.Sequential([",
        f'    keras.Input(shape=({N_INPUTS},), name="x"),',
    ]
    lines += [f"    layers.{layer.class_name}({_argument_text(layer)}),  # {layer.pytorch}" for layer in layers]
    lines += [
        f'], name="{MODEL_NAME}")',
        "",
        "# PyTorch keeps nn.Linear.weight as (out, in); Keras keeps Dense.kernel as (in, out).",
        "# So kernel = W transposed, and x @ kernel + bias is x Wᵀ + b: the same numbers.",
        f'state = torch.load("{CHECKPOINT}", weights_only=True)',
        f"for name in {json.dumps(linears)}:",
        '    W, b = state[f"{name}.weight"].numpy(), state[f"{name}.bias"].numpy()',
        "    model.get_layer(name).set_weights([W.T, b])",
    ]
    if live is not None:
        first = architecture.layers[0]
        row = ", ".join(f"{float(v):.4f}" for v in live.weight(first.name)[0, :SAMPLE_SIZE])
        label = f"# At step {live.step:,}:"
        lines += [
            f"{label} {first.name}.weight[0, :{SAMPLE_SIZE}] = [{row}]  "
            f"({first.out_features} × {first.in_features}: row 0)",
            f"#{' ' * (len(label) - 1)} {first.name} kernel[:{SAMPLE_SIZE}, 0] = [{row}]  "
            f"({first.in_features} × {first.out_features}: column 0)",
        ]
    lines.append(f'model.save("{FILENAME}")')
    return "\n".join(lines) + "\n"


# ---- the file --------------------------------------------------------------------------------------

def _snake_case(name: str) -> str:
    """Keras's naming.to_snake_case: the weights file's group of a layer (LeakyReLU -> leaky_re_lu)."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _serialized(module: str, class_name: str, config: dict) -> dict:
    return {"module": module, "class_name": class_name, "config": config, "registered_name": None}


FLOAT32 = _serialized("keras", "DTypePolicy", {"name": "float32"})


def _layer_config(layer: KerasLayer, inputs: int) -> dict:
    config = {"name": layer.name, "trainable": True, "dtype": FLOAT32}
    if layer.class_name == "Dense":
        config.update({
            "units": layer.arguments["units"], "activation": layer.arguments.get("activation") or "linear",
            "use_bias": True,
            "kernel_initializer": _serialized("keras.initializers", "GlorotUniform",
                                              {"seed": None, "input_axes": None, "output_axes": None}),
            "bias_initializer": _serialized("keras.initializers", "Zeros", {}),
            "kernel_regularizer": None, "bias_regularizer": None, "kernel_constraint": None,
            "bias_constraint": None, "quantization_config": None})
        return {**_serialized("keras.layers", "Dense", config), "build_config": {"input_shape": [None, inputs]}}
    if layer.class_name == "Softmax":
        config["axis"] = -1
    return _serialized("keras.layers", layer.class_name, {**config, **layer.arguments})


def model_config(architecture: Architecture) -> dict:
    """config.json: what keras.Sequential([...]).save() writes for this network."""
    configs = [_serialized("keras.layers", "InputLayer", {
        "batch_shape": [None, N_INPUTS], "dtype": "float32", "sparse": False, "ragged": False, "name": "x",
        "optional": False})]
    width = N_INPUTS
    for layer in keras_layers(architecture):
        configs.append(_layer_config(layer, width))
        width = layer.arguments.get("units", width)
    sequential = {"name": MODEL_NAME, "trainable": True, "dtype": FLOAT32, "layers": configs,
                  "build_input_shape": [None, N_INPUTS]}
    return {**_serialized("keras", "Sequential", sequential), "build_config": {"input_shape": [None, N_INPUTS]},
            "compile_config": {}}


def _weights_h5(weights: ExportedWeights) -> bytes:
    h5py = optional_import("h5py", "the Keras export (its weights file is HDF5)")
    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as h5:
        h5.create_group("vars").attrs["name"] = MODEL_NAME
        taken: dict[str, int] = {}
        for layer in keras_layers(weights.architecture):
            base = _snake_case(layer.class_name)
            group_name = base if base not in taken else f"{base}_{taken[base]}"
            taken[base] = taken.get(base, 0) + 1
            variables = h5.create_group(f"layers/{group_name}/vars")
            variables.attrs["name"] = layer.name
            if layer.linear:
                variables.create_dataset("0", data=weights.weight(layer.linear).T)  # kernel = Wᵀ: (in, out)
                variables.create_dataset("1", data=weights.bias(layer.linear))
    return buffer.getvalue()


def keras_bytes(weights: ExportedWeights, *, clock=time.localtime) -> bytes:
    """The `.keras` file of these weights: the file the Keras code above saves."""
    weights_file = _weights_h5(weights)
    metadata = {"keras_version": KERAS_FORMAT, "date_saved": time.strftime("%Y-%m-%d@%H:%M:%S", clock())}
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # stored, not deflated, as Keras writes it
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("config.json", json.dumps(model_config(weights.architecture)))
        archive.writestr("model.weights.h5", weights_file)
    return buffer.getvalue()
