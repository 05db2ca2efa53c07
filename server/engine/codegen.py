"""The network as code: the PyTorch source of the network on screen (line by line, each line
with the page views it makes), the same network in Keras, the layers' shapes and counts, and the
self-contained export file. Text made from the setup alone (server/experiment.py); no torch.

For the default setup the class is the question's, verbatim.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..experiment import ACTIVATIONS, N_CLASSES, N_INPUTS, TrainConfig

# F.sigmoid is the question's spelling: it still works (it calls Tensor.sigmoid) but the docs
# deprecate it for torch.sigmoid.
SIGMOID_NOTE = "# Note: F.sigmoid is deprecated in favour of torch.sigmoid (the same function)."

@dataclass
class CodeLine:
    """One line of generated code and the page elements (data-testid) it makes or feeds."""

    text: str
    targets: list[str] = field(default_factory=list)
    makes: str = ""  # what the line makes, in words (shown when the line is clicked)
    note: str = ""  # a remark shown beside the line, outside the code text


def _linear_line(name: str, n_in: int, n_out: int) -> CodeLine:
    testid = "hidden-weights" if name == "hidden" else "output-weights" if name == "output" else None
    targets = ([testid] if testid else []) + ["network-diagram", f"shapes-{name}"]
    return CodeLine(
        f"        self.{name} = nn.Linear({n_in}, {n_out})", targets,
        f"{name}.weight of shape ({n_out}, {n_in}) and {name}.bias of shape ({n_out},): "
        f"{n_out * n_in:,} + {n_out:,} parameters")


def _logits_expression(config: TrainConfig) -> str:
    """forward() without its final softmax, as one expression on `model`."""
    expression = "x"
    code = ACTIVATIONS[config.activation].code
    for name in config.architecture.hidden_names:
        expression = f"{code}(model.{name}({expression}))"
    return f"model.output({expression})"


def class_lines(config: TrainConfig) -> list[CodeLine]:
    """`class Network(nn.Module)` for `config`: exactly the question's class for the default
    setup. The one generator of the class: the code view and the export both use it."""
    architecture = config.architecture
    activation = ACTIVATIONS[config.activation].code
    lines = [
        CodeLine("class Network(nn.Module):", ["network-diagram", "architecture", "explain-shapes"],
                 "the network: a module holding its layers as attributes"),
        CodeLine("    def __init__(self):", ["explain-shapes"], "the layers and their parameters"),
        CodeLine("        super().__init__()", [], "registers the layers set below as sub-modules"),
    ]
    for layer in architecture.layers:
        lines.append(_linear_line(layer.name, layer.in_features, layer.out_features))
    lines.append(CodeLine("    def forward(self, x):", ["forward-steps"],
                          "the computation, step by step, for the drawing"))
    for index, layer in enumerate(architecture.hidden_layers):
        targets = ["forward-hidden", "neuron-arithmetic"]
        if index == 0:
            targets = ["activation-histogram"] + targets
        lines.append(CodeLine(
            f"        x = {activation}(self.{layer.name}(x))", targets,
            f"{layer.name}'s pre-activation z = x W^T + b, then {config.activation}: "
            f"shape (batch_size, {layer.out_features})",
            "F.sigmoid is deprecated: torch.sigmoid is the same function" if config.activation == "sigmoid" else ""))
    lines += [
        CodeLine("        x = F.softmax(self.output(x), dim=1)", ["probabilities", "forward-softmax"],
                 "the 10 logits, then softmax: probabilities that sum to 1"),
        CodeLine("        return x", ["prediction", "probabilities"], "the probabilities; the prediction is the largest"),
    ]
    return lines


IMPORT_LINES = ["import torch", "import torch.nn.functional as F", "from torch import nn"]


def model_code_lines(config: TrainConfig) -> list[CodeLine]:
    """The network of `config` as PyTorch source. The class part is exactly the question's
    for the default setup; the notes around it are comments, so the whole text runs."""
    lines = [CodeLine(text) for text in IMPORT_LINES] + [CodeLine("")]
    if config.activation == "sigmoid":
        lines.append(CodeLine(SIGMOID_NOTE))
    lines += class_lines(config)
    lines.append(CodeLine(""))
    training = ["loss-chart", "accuracy-chart", "softmax-trap"]
    if config.output == "logits":
        lines += [
            CodeLine("# How the playground trains it (output=\"logits\"): the loss takes the logits, not", training,
                     "the loss behind the learning curves"),
            CodeLine("# forward()'s probabilities, because F.cross_entropy applies log-softmax itself:", training),
            CodeLine(f"#     loss = F.cross_entropy({_logits_expression(config)}, y)", training),
        ]
    else:
        lines += [
            CodeLine("# How the playground trains it (output=\"softmax\", the question's forward as written):",
                     training, "the loss behind the learning curves"),
            CodeLine("#     loss = F.cross_entropy(model(x), y)", training),
            CodeLine("# cross_entropy applies its own softmax to these probabilities: softmax twice.", training),
        ]
    return lines


def model_code(config: TrainConfig) -> str:
    return "\n".join(line.text for line in model_code_lines(config)) + "\n"


def keras_code(config: TrainConfig) -> str:
    """The same network in Keras: Dense(n) is nn.Linear(·, n); activations written per layer."""
    activation = ACTIVATIONS[config.activation]
    names = config.architecture.hidden_names
    lines = ["from tensorflow import keras", "from tensorflow.keras import layers", "",
             "model = keras.Sequential([", f"    keras.Input(shape=({N_INPUTS},)),"]
    for name, n_out in zip(names, config.hidden_sizes):
        lines.append(f"    layers.Dense({n_out}, activation=\"{activation.keras}\"),  # self.{name} + {activation.code}")
    lines.append(f"    layers.Dense({N_CLASSES}, activation=\"softmax\"),  # self.output + F.softmax")
    lines.append("])")
    return "\n".join(lines) + "\n"


def code_payload(config: TrainConfig) -> dict:
    """Everything the code view shows for `config`."""
    return {
        "config": config.model_dump(),
        "code": model_code(config),
        "lines": [asdict(line) for line in model_code_lines(config)],
        "keras": keras_code(config),
        "shapes": layer_shapes(config),
        "double_softmax_floor": double_softmax_floor(N_CLASSES),
    }


# ---- shapes and counts ---------------------------------------------------------------------------
def layer_shapes(config: TrainConfig) -> dict:
    """For every nn.Linear: weight (out, in), bias (out,), counts; and the batch's shapes."""
    architecture = config.architecture
    layers = [{**layer, "weight_count": layer["weight_shape"][0] * layer["weight_shape"][1],
               "bias_count": layer["out_features"]} for layer in architecture.summary()["layers"]]
    return {
        "layers": layers,
        "parameters": architecture.parameters,
        "batch_shapes": [["batch_size", n] for n in architecture.sizes],
        "batch_shapes_text": " -> ".join(f"(batch_size, {n})" for n in architecture.sizes),
    }


def double_softmax_floor(n_classes: int = N_CLASSES) -> float:
    """The smallest loss CrossEntropyLoss can reach when fed probabilities (softmax twice):
    even a perfect one-hot answer becomes e / (e + n - 1) after the loss's own softmax."""
    return math.log(1 + (n_classes - 1) / math.e)


def export_source(config: TrainConfig, *, filename: str = "model.pt") -> str:
    """A self-contained Python file: the network class (the question's, with this setup's sizes
    and activation; the same generator as the code view) and a loader for the checkpoint that
    GET /api/checkpoint gives."""
    sizes = config.architecture.sizes
    architecture = " -> ".join([str(sizes[0])] + [f"{n} {config.activation}" for n in sizes[1:-1]] + ["10 softmax"])
    trained_on = ("CrossEntropyLoss on the softmax output, as the question's forward() is written"
                  if config.output == "softmax" else "CrossEntropyLoss on the logits (self.output(x))")
    imports = "\n".join(IMPORT_LINES)
    network_class = "\n".join(line.text for line in class_lines(config))
    return f'''"""The network trained in the nn.Linear playground, as plain PyTorch.

Network: {architecture}
Trained with {config.optimizer} (lr {config.lr:g}, batch {config.batch_size}, seed {config.seed}); loss: {trained_on}.

Input: x of shape (N, 784), floats 0..1 with 1 = ink, a 28x28 digit row by row (MNIST / 255).
forward() returns the probabilities of the digits 0..9, shape (N, 10).

Use it (the checkpoint is what the playground's "Download .pt" gives):
    python nn_linear_playground.py {filename}     # loads it and predicts a blank image
or in Python:
    model = load("{filename}")
    probabilities = model(x)
"""
import sys

{imports}


{network_class}


def load(path="{filename}"):
    """The network with the checkpoint's weights (weights_only: the file cannot run code)."""
    model = Network()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    model.eval()
    return model


if __name__ == "__main__":
    model = load(sys.argv[1] if len(sys.argv) > 1 else "{filename}")
    n_parameters = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        probabilities = model(torch.zeros(1, 784))[0]
    print(f"loaded {{n_parameters:,}} parameters")
    print("a blank image looks most like", int(probabilities.argmax()),
          "with probability", round(float(probabilities.max()), 3))
'''
