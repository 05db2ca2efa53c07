"""The self-contained Python export (`GET /api/export.py`): one file needing only torch that holds
the run's `Network` class (the code view's own generator, server/engine/codegen.py), a loader for
the checkpoint "Download .pt" gives, and `train DIR`, which trains the same network with the run's
setup on MNIST's IDX files and saves a checkpoint the page's upload takes.

The file is `nn_linear_playground.py` beside this module: a real, runnable file, exactly the
export of the default setup. For another setup the parts that depend on it (the docstring's
summary, SETUP, the class, the logits function) are replaced by this setup's; everything else
(MNIST's files, the training loop, the command line) is the same for every run.
"""
from __future__ import annotations

import json
from pathlib import Path

from ...experiment import TrainConfig
from ..codegen import class_lines, logits_expression

TEMPLATE = Path(__file__).with_name("nn_linear_playground.py")
FILENAME = TEMPLATE.name


def _summary(config: TrainConfig) -> str:
    sizes = config.architecture.sizes
    network = " -> ".join([str(sizes[0])] + [f"{n} {config.activation}" for n in sizes[1:-1]] + ["10 softmax"])
    loss = ("CrossEntropyLoss on the softmax output, as the question's forward() is written"
            if config.output == "softmax" else "CrossEntropyLoss on the logits (self.output(x))")
    return (f"Network: {network}\nTrained with {config.optimizer} (lr {config.lr:g}, batch {config.batch_size}, "
            f"{config.epochs} epochs, seed {config.seed}); loss: {loss}.\n")


def _setup(config: TrainConfig) -> str:
    fields = "".join(f"    {json.dumps(key)}: {json.dumps(value)},\n" for key, value in config.model_dump().items())
    return "SETUP = {\n" + fields + "}\n"


def _network(config: TrainConfig) -> str:
    return "\n".join(line.text for line in class_lines(config)) + "\n"


def _logits(config: TrainConfig) -> str:
    return f"    return {logits_expression(config)}\n"


PARTS = (_summary, _setup, _network, _logits)  # what depends on the setup


def export_source(config: TrainConfig) -> str:
    """The file for `config`: the template with each setup-dependent part made for `config`."""
    text = TEMPLATE.read_text(encoding="utf-8")
    default = TrainConfig()
    for part in PARTS:
        mine, theirs = part(default), part(config)
        if text.count(mine) != 1:  # the template and this generator disagree: a bug, not an input
            raise RuntimeError(f"{TEMPLATE.name} does not hold its {part.__name__.strip('_')} part exactly once")
        text = text.replace(mine, theirs)
    return text
