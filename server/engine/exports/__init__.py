"""The run's network in other frameworks' files, each checked by the real framework in the tests:

- `onnx_file.py`: an ONNX model (onnxruntime, Netron, ...): input x (N, 784), output logits (N, 10);
- `keras_file.py`: a Keras 3 `.keras` archive, and the Keras code that builds the same file;
- `script.py`: the self-contained Python file (the network, a loader, and a trainer that reruns
  the run's setup on MNIST's files), needing nothing but torch.

Each takes the weights a run's replica holds (one consistent copy, taken between steps), so an
export never waits for, or holds up, the training thread. The optional packages a file needs
(onnx, h5py) are imported when it is asked for, and a server without them says so in words.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from ...errors import UserError
from ...experiment import Architecture, TrainConfig

STILL_BUILDING = ("the run's network is still being built (a new setup was just applied); "
                  "try again in a moment")


class MissingDependency(UserError):
    """An export that needs a Python package this server does not have."""

    status = 501


def optional_import(module: str, what: str) -> ModuleType:
    """`module`, imported now (not at start-up), or a refusal in words saying how to get it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise MissingDependency(
            f"{what} needs the Python package {module}, which this server does not have: install it "
            f"(pip install -r requirements.txt pins its version) and restart the server") from None


@dataclass(frozen=True)
class ExportedWeights:
    """The weights an export writes: the network's layers and, by state_dict name
    (hidden.weight, ...), float32 arrays: weight (out, in), bias (out,)."""

    architecture: Architecture
    arrays: dict[str, np.ndarray]
    step: int

    def weight(self, layer: str) -> np.ndarray:
        return self.arrays[f"{layer}.weight"]

    def bias(self, layer: str) -> np.ndarray:
        return self.arrays[f"{layer}.bias"]


def exported_weights(weights, config: TrainConfig) -> ExportedWeights:
    """A replica's weights (server/link/replica.Weights) for an export of the run whose setup is
    `config`; refused in words while the run's network is not there yet or is being rebuilt."""
    architecture = Architecture.of(config)
    if weights is None or Architecture(tuple(weights.sizes), weights.activation) != architecture:
        raise UserError(STILL_BUILDING, status=409)
    arrays = {}
    for layer, (weight, bias) in zip(architecture.layers, weights.layers):
        arrays[f"{layer.name}.weight"] = np.ascontiguousarray(weight, dtype=np.float32)
        arrays[f"{layer.name}.bias"] = np.ascontiguousarray(bias, dtype=np.float32)
    return ExportedWeights(architecture, arrays, int(weights.step))


FORMATS = {  # the export's name -> its file's suffix and media type
    "onnx": ("onnx", "application/octet-stream"),
    "keras": ("keras", "application/zip"),
}


def file_bytes(kind: str, weights: ExportedWeights, config: TrainConfig) -> bytes:
    """The file of one format (FORMATS) for these weights."""
    from . import keras_file, onnx_file  # each imports its optional package only when asked

    if kind == "onnx":
        return onnx_file.onnx_bytes(weights, config)
    if kind == "keras":
        return keras_file.keras_bytes(weights)
    raise UserError(f"format: give one of {', '.join(FORMATS)} (got {kind!r})")
