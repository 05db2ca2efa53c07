"""The network as code: the PyTorch source of the network on screen (line by line, each line
with the page views it makes), the same network in Keras (server/engine/exports/keras_file.py),
the layers' shapes and counts. Text made from the setup alone (server/experiment.py); no torch.
The self-contained export file: server/engine/exports/script.py.

For the default setup the class is the question's, verbatim.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..experiment import ACTIVATIONS, N_CLASSES, TrainConfig
from .exports import keras_file

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


def logits_expression(config: TrainConfig) -> str:
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
            CodeLine(f"#     loss = F.cross_entropy({logits_expression(config)}, y)", training),
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


def keras_code(config: TrainConfig, live=None) -> str:
    """The same network in Keras 3: the code that builds the `.keras` export (with `live`
    weights, server/engine/exports.ExportedWeights, it shows them both ways)."""
    return keras_file.keras_code(config.architecture, live)


def code_payload(config: TrainConfig, live=None) -> dict:
    """Everything the code view shows for `config` (the Keras code with the `live` weights)."""
    return {
        "config": config.model_dump(),
        "code": model_code(config),
        "lines": [asdict(line) for line in model_code_lines(config)],
        "keras": keras_code(config, live),
        "keras_step": live.step if live is not None else None,
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
