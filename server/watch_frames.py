"""What a watching script sends (client/, `linear_playground.watch`): the shapes of its four
events, checked before anything acts on them, and what its network maps to on the page.
Plain data (pydantic, numpy), no torch and no web: the web tier checks each payload with these
schemas (a refusal in words changes nothing), the engine checks the same payloads against the
run they are about (server/engine/watched.py) and turns a chain of Linear layers into the
playground's own network (`chain_config`).

Events (docs/protocol.md, "Watch your own network"):
  watch:open      the network's Linear layers (attribute paths and shapes), its module tree, the
                  chain the client traced (or the layer it could not follow): a run and its link.
  watch:steps     the loss and other named numbers of a batch of training steps, as columns.
  watch:snapshot  every Linear layer's weight and bias (float16 or float32 bytes, or int8 rows
                  with a float32 scale per row, whole or as a delta added to the weights the
                  server holds from the snapshot of step `base`), and the histograms of
                  activations (forward hooks) and gradients, at the wall clock's pace.
  watch:close     the script is done: the run is finished with its last weights.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator, model_validator

from .experiment import MAX_HIDDEN_LAYERS, MAX_UNITS, N_CLASSES, N_INPUTS, TrainConfig

MAX_NAME = 80  # a run's name, as the runs list shows it
MAX_LINEARS = 64  # Linear layers of one watched network
MAX_FEATURES = 1 << 16  # a Linear layer's in or out features
# One snapshot is one Socket.IO message (the server takes 2 MiB at most): a network whose
# weights do not fit is watched without its pictures, and the page says why.
MAX_SNAPSHOT_BYTES = 1_800_000
MAX_TREE = 400  # modules in the structure view
MAX_DEPTH = 32
MAX_POINTS = 2000  # steps in one watch:steps
MAX_NUMBERS = 16  # named numbers besides the loss
MAX_BINS = 64  # a histogram's bins
MAX_STEP = 10 ** 12
NUMBER_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,39}$"
# An attribute path: "hidden", "layers.0", "" (the model itself); a ModuleDict's keys may be any text.
PATH = r"^[^\x00-\x1f\x7f]*$"
RUN_KEY = r"^p-[0-9a-f]{12}$"
CHAIN_ACTIVATIONS = ("sigmoid", "relu", "tanh", "leaky_relu")
DTYPES = {"float16": "<f2", "float32": "<f4", "int8": "<i1"}
SCALE_DTYPE = np.dtype("<f4")  # an int8 snapshot's scales: one little-endian float32 per row
MAX_IMAGE_SIDE = 1024  # an image_shape's height or width
# Inputs that are an image by their number alone (channels, height, width), as the page draws them:
# MNIST's 28×28, 32×32 grey, and CIFAR's 32×32 colour (torch's flatten of (3, 32, 32): channel-first).
IMAGE_SIZES = {784: (1, 28, 28), 1024: (1, 32, 32), 3072: (3, 32, 32)}
# One weights picture carries at most this many weights (one byte each): a wider layer shows its
# first neurons, and says so.
MAX_PICTURE_VALUES = 400_000


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def _matching(pattern: str, words: str):
    """Text that matches `pattern`, else refused with `words` (people's, not the library's)."""
    def check(text: str) -> str:
        if not re.fullmatch(pattern, text):
            raise ValueError(words)
        return text
    return AfterValidator(check)


RunKey = Annotated[str, Field(max_length=20), _matching(RUN_KEY, "give the run's key as watch:open answered it "
                                                                  "(p- and 12 hex digits)")]
AttributePath = Annotated[str, Field(max_length=200), _matching(PATH, "an attribute path, e.g. \"hidden\" or \"layers.0\"")]
TypeName = Annotated[str, Field(max_length=80), _matching(r"^[A-Za-z_][A-Za-z0-9_.]*$",
                                                          "a class name, e.g. \"Linear\"")]


class LinearLayer(Strict):
    path: AttributePath
    in_features: int = Field(ge=1, le=MAX_FEATURES)
    out_features: int = Field(ge=1, le=MAX_FEATURES)
    bias: bool = True
    # How its inputs read as an image, when the user says (watch(..., image_shape=...)):
    # [channels, height, width], channels 1 (grey) or 3 (colour, channel-first).
    image_shape: Optional[list[int]] = Field(None, min_length=3, max_length=3)

    @model_validator(mode="after")
    def _image_fits(self):
        if self.image_shape is not None:
            channels, height, width = self.image_shape
            if channels not in (1, 3):
                raise ValueError(f"{self.path or 'the model'}: image_shape has {channels} channels; the page draws 1 "
                                 "(grey) or 3 (colour)")
            if not (1 <= height <= MAX_IMAGE_SIDE and 1 <= width <= MAX_IMAGE_SIDE):
                raise ValueError(f"{self.path or 'the model'}: image_shape's height and width: 1 to {MAX_IMAGE_SIDE}")
            if channels * height * width != self.in_features:
                raise ValueError(f"{self.path or 'the model'}: image_shape {channels}×{height}×{width} is "
                                 f"{channels * height * width:,} values, but the layer takes {self.in_features:,} inputs")
        return self

    @property
    def parameters(self) -> int:
        return self.in_features * self.out_features + (self.out_features if self.bias else 0)


class Module(Strict):
    """One line of the structure view: like `print(model)`, with its parameter count."""
    path: AttributePath
    type: TypeName
    depth: int = Field(ge=0, le=MAX_DEPTH)
    parameters: int = Field(ge=0, le=10 ** 12)
    text: str = Field("", max_length=200)  # its repr's first line, e.g. "Linear(in_features=784, ...)"


class Chain(Strict):
    """The network as the client traced it: Linear layers in order, each followed by one
    element-wise activation or none (the last by "softmax" or none)."""
    activations: list[Optional[Literal["sigmoid", "relu", "tanh", "leaky_relu", "softmax"]]] = Field(
        max_length=MAX_LINEARS)


class OpenRequest(Strict):
    name: str = Field("", max_length=MAX_NAME)
    layers: list[LinearLayer] = Field(min_length=1, max_length=MAX_LINEARS)
    tree: list[Module] = Field(default_factory=list, max_length=MAX_TREE)
    chain: Optional[Chain] = None
    unfollowed: Optional[str] = Field(None, max_length=300)  # words: why the client could not trace a chain
    controllable: bool = False
    resume: Optional[RunKey] = None  # the key it had before the server restarted

    @field_validator("layers")
    @classmethod
    def _distinct_paths(cls, layers):
        paths = [layer.path for layer in layers]
        if len(set(paths)) != len(paths):
            raise ValueError("each Linear layer's path must be given once")
        return layers

    @model_validator(mode="after")
    def _chain_fits(self):
        if self.chain is not None and len(self.chain.activations) != len(self.layers):
            raise ValueError(f"chain: one activation (or null) per Linear layer: {len(self.layers)} layers, "
                             f"{len(self.chain.activations)} activations")
        return self


class StepsRequest(Strict):
    run: RunKey
    steps: list[int] = Field(min_length=1, max_length=MAX_POINTS)
    loss: list[Optional[float]] = Field(max_length=MAX_POINTS)
    numbers: dict[str, list[Optional[float]]] = Field(default_factory=dict, max_length=MAX_NUMBERS)

    @model_validator(mode="after")
    def _columns(self):
        n = len(self.steps)
        if any(not 0 <= step <= MAX_STEP for step in self.steps):
            raise ValueError(f"steps: whole numbers from 0 to {MAX_STEP}")
        if any(b < a for a, b in zip(self.steps, self.steps[1:])):
            raise ValueError("steps: in order, each at least the one before")
        columns = {"loss": self.loss, **self.numbers}
        for name, values in columns.items():
            if name != "loss" and not re.match(NUMBER_NAME, name):
                raise ValueError(f"numbers: {name[:40]!r} is not a name (letters, digits and _, at most 40)")
            if len(values) != n:
                raise ValueError(f"{name}: one value per step ({n}), got {len(values)}")
            if any(v is not None and not math.isfinite(v) for v in values):
                raise ValueError(f"{name}: finite numbers (or null for a step without one)")
        return self


class Histogram(Strict):
    lo: float
    hi: float
    counts: list[int] = Field(min_length=1, max_length=MAX_BINS)

    @model_validator(mode="after")
    def _range(self):
        if not (math.isfinite(self.lo) and math.isfinite(self.hi) and self.lo <= self.hi):
            raise ValueError("a histogram's lo and hi: finite, lo at most hi")
        if any(not 0 <= c <= 10 ** 12 for c in self.counts):
            raise ValueError("a histogram's counts: whole numbers from 0")
        return self


class LayerSnapshot(Strict):
    activations: Optional[Histogram] = None  # its outputs in one forward pass (a forward hook)
    grads: Optional[Histogram] = None  # its weight's gradient


class SnapshotRequest(Strict):
    """Every Linear layer's weight (out x in, row-major) then bias, layer after layer in the
    order of watch:open, as one bytes (one binary attachment: a packet may carry 4).

    int8: each row (a weight's row, a bias as one row) is its int8 values times its scale
    (`scales`: one float32 per row, in the same order); with `delta`, those values are added
    to the weights the server holds from the snapshot of step `base` (what makes a snapshot
    half float16's size and keeps the server's copy converging to the script's weights)."""
    run: RunKey
    step: int = Field(ge=0, le=MAX_STEP)
    dtype: Literal["float16", "float32", "int8"] = "float16"
    final: bool = False
    data: bytes = Field(max_length=MAX_SNAPSHOT_BYTES)
    scales: Optional[bytes] = Field(None, max_length=MAX_SNAPSHOT_BYTES)
    delta: bool = False
    base: Optional[int] = Field(None, ge=0, le=MAX_STEP)
    layers: list[LayerSnapshot] = Field(min_length=1, max_length=MAX_LINEARS)

    @model_validator(mode="after")
    def _int8_fields(self):
        if self.dtype == "int8" and self.scales is None:
            raise ValueError("scales: an int8 snapshot gives one float32 scale per row (each weight row, "
                             "then the bias as one row, layer after layer)")
        if self.dtype != "int8" and self.scales is not None:
            raise ValueError(f"scales: only an int8 snapshot has them ({self.dtype} bytes are the values themselves)")
        if self.delta and self.dtype != "int8":
            raise ValueError(f"delta: only an int8 snapshot is a delta ({self.dtype} ones are whole weights)")
        if self.delta and self.base is None:
            raise ValueError("base: a delta names the step of the snapshot whose weights it is added to")
        if not self.delta and self.base is not None:
            raise ValueError("base: only a delta (delta: true) has one")
        return self


class CloseRequest(Strict):
    run: RunKey


class WeightsRequest(Strict):
    """A page asks for one Linear layer's weights picture (its index in watch:open's layers)."""
    layer: int = Field(ge=0, le=MAX_LINEARS - 1)


# ---- what the network maps to ------------------------------------------------------------------

@dataclass(frozen=True)
class PredictingChain:
    """A watched chain the canvas predicts with: its sizes (inputs, hidden..., 10), the
    activation after each hidden layer, and the image its first layer reads (channels, height,
    width: the drawing is resampled to it, server/preprocess.py `model_input`)."""
    sizes: tuple[int, ...]
    activation: str
    output: str  # "softmax" or "logits": the probabilities are the softmax of the last layer either way
    image: tuple[int, int, int]


def _chain_sizes(request: OpenRequest) -> tuple[Optional[list[int]], Optional[str]]:
    """The chain's sizes (inputs, each layer's outputs) when the client traced one whose layers
    each take what the one before gives, with a bias; else (None, why not)."""
    layers = request.layers
    if request.chain is None:
        return None, request.unfollowed or "the client could not trace the network's forward pass"
    sizes = [layers[0].in_features]
    for layer in layers:
        if layer.in_features != sizes[-1]:
            return None, (f"{layer.path or 'the model'} takes {layer.in_features} inputs but the layer before "
                          f"gives {sizes[-1]}")
        if not layer.bias:
            return None, f"{layer.path or 'the model'} has no bias (bias=False): the playground's layers all have one"
        sizes.append(layer.out_features)
    return sizes, None


def _chain_of(request: OpenRequest, sizes: list[int],
              image: tuple[int, int, int]) -> tuple[Optional[PredictingChain], Optional[str]]:
    """The rest of the checks of a chain the page computes (its outputs, depth, widths and activations)."""
    if sizes[-1] != N_CLASSES:
        return None, f"its last Linear layer gives {sizes[-1]} outputs, not 10 (one per digit)"
    if not 1 <= len(request.layers) - 1 <= MAX_HIDDEN_LAYERS:
        return None, (f"it has {len(request.layers)} Linear layers; the page draws chains of 2 to "
                      f"{MAX_HIDDEN_LAYERS + 1}")
    if any(size > MAX_UNITS for size in sizes[1:-1]):
        return None, f"a hidden layer has more than {MAX_UNITS} units"
    hidden = request.chain.activations[:-1]
    if any(a not in CHAIN_ACTIVATIONS for a in hidden) or len(set(hidden)) != 1:
        return None, ("its hidden layers must each be followed by the same activation (sigmoid, relu, tanh or "
                      f"leaky_relu); they are followed by {', '.join(str(a) for a in hidden)}")
    last = request.chain.activations[-1]
    if last not in (None, "softmax"):
        return None, f"its last Linear layer is followed by {last}; the page follows softmax or nothing"
    return PredictingChain(tuple(sizes), hidden[0], "softmax" if last == "softmax" else "logits", image), None


def predicting_chain(request: OpenRequest) -> tuple[Optional[PredictingChain], Optional[str]]:
    """(the chain, None) when the network's Linear layers form a chain the page computes (each
    layer takes what the one before gives, with a bias; 10 outputs; 1 to 4 hidden layers of at
    most 2048 units, one activation between them, softmax or nothing at the end) and its first
    layer reads an image (784, 1,024 or 3,072 inputs, or the user's image_shape); else (None,
    why not, in words)."""
    sizes, why_not = _chain_sizes(request)
    if sizes is None:
        return None, why_not
    image = image_of(request.layers[0])
    if image is None:
        return None, (f"its first Linear layer takes {sizes[0]:,} inputs, which the page cannot read as an image "
                      "(784 is 28×28, 1,024 is 32×32, 3,072 is 32×32 in colour; else say watch(..., "
                      "image_shape=(channels, height, width)))")
    return _chain_of(request, sizes, image)


def chain_config(request: OpenRequest) -> tuple[Optional[TrainConfig], Optional[str]]:
    """(the playground's network that computes what the user's does, None) when its Linear
    layers form a chain the playground trains itself: a `predicting_chain` from 784 inputs;
    else (None, why not, in words). The page then shows every picture and predicts with it."""
    sizes, why_not = _chain_sizes(request)
    if sizes is None:
        return None, why_not
    if sizes[0] != N_INPUTS:
        return None, f"its first Linear layer takes {sizes[0]} inputs, not 784 (a 28×28 image)"
    chain, why_not = _chain_of(request, sizes, image_of(request.layers[0]))
    if chain is None:
        return None, why_not
    return TrainConfig(hidden_sizes=list(chain.sizes[1:-1]), activation=chain.activation, output=chain.output), None


def row_lengths(layers: list[LinearLayer]) -> np.ndarray:
    """The length of each row an int8 snapshot scales on its own: each layer's weight rows
    (in_features long), then its bias as one row (out_features long)."""
    lengths: list[int] = []
    for layer in layers:
        lengths += [layer.in_features] * layer.out_features + ([layer.out_features] if layer.bias else [])
    return np.asarray(lengths, dtype=np.int64)


def dequantized(values: np.ndarray, scales: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """int8 rows times their float32 scales, as float32: one rounding per value, so the client
    (client/linear_playground/wire.py, the same operations) computes the very same numbers."""
    return values.astype(np.float32) * np.repeat(scales, lengths)


def snapshot_values(snapshot: SnapshotRequest, layers: list[LinearLayer],
                    base: Optional[np.ndarray] = None) -> np.ndarray:
    """Every layer's weight then bias, flat, as float32, checked against the layers the run was
    opened with: one entry per layer, bytes that make their shapes exactly (and one finite,
    non-negative scale per row for int8), finite numbers. A delta is added to `base` (the
    weights the server holds from the snapshot of step `snapshot.base`)."""
    if len(snapshot.layers) != len(layers):
        raise ValueError(f"layers: this run has {len(layers)} Linear layers, the snapshot {len(snapshot.layers)}")
    dtype = np.dtype(DTYPES[snapshot.dtype])
    expected = sum(layer.parameters for layer in layers) * dtype.itemsize
    shapes = ", ".join(f"{layer.out_features}×{layer.in_features}" for layer in layers)
    if len(snapshot.data) != expected:
        raise ValueError(f"data: the weights and biases of this run's layers ({shapes}) as {snapshot.dtype} are "
                         f"{expected:,} bytes, got {len(snapshot.data):,}")
    if snapshot.dtype == "int8":
        lengths = row_lengths(layers)
        if len(snapshot.scales) != len(lengths) * SCALE_DTYPE.itemsize:
            raise ValueError(f"scales: one float32 per row: this run's layers ({shapes}) have {len(lengths):,} rows "
                             f"(each weight row, each bias as one), {len(lengths) * SCALE_DTYPE.itemsize:,} bytes; "
                             f"got {len(snapshot.scales):,}")
        scales = np.frombuffer(snapshot.scales, dtype=SCALE_DTYPE)
        if not (np.isfinite(scales).all() and (scales >= 0).all()):
            raise ValueError("scales: finite numbers, none negative (did training diverge?)")
        with np.errstate(over="ignore", invalid="ignore"):  # too large a scale: refused below as not finite
            values = dequantized(np.frombuffer(snapshot.data, dtype=dtype), scales, lengths)
            if snapshot.delta:
                if base is None or base.shape != values.shape:
                    raise ValueError("base: no weights to add this delta to")
                values = base + values
    else:
        values = np.frombuffer(snapshot.data, dtype=dtype).astype(np.float32)
    if not np.isfinite(values).all():
        raise ValueError("data: the weights are not all finite numbers (did training diverge?)")
    return values


def layer_arrays(snapshot: SnapshotRequest, layers: list[LinearLayer],
                 base: Optional[np.ndarray] = None) -> list[tuple[np.ndarray, Optional[np.ndarray]]]:
    """Each layer's (weight (out, in), bias or None) as float32 arrays (`snapshot_values`, split)."""
    return split_layers(snapshot_values(snapshot, layers, base), layers)


def split_layers(values: np.ndarray, layers: list[LinearLayer]) -> list[tuple[np.ndarray, Optional[np.ndarray]]]:
    """Flat weights and biases (the order of a snapshot) as each layer's (weight, bias or None)."""
    arrays, at = [], 0
    for layer in layers:
        n = layer.in_features * layer.out_features
        weight = values[at:at + n].reshape(layer.out_features, layer.in_features)
        at += n
        bias = None
        if layer.bias:
            bias = values[at:at + layer.out_features]
            at += layer.out_features
        arrays.append((weight, bias))
    return arrays


# ---- a Linear layer's weights as the page draws them (any watched network) --------------------

def image_of(layer: LinearLayer) -> Optional[tuple[int, int, int]]:
    """How the layer's inputs read as an image, (channels, height, width): the user's
    image_shape, else by their number (IMAGE_SIZES); None: its neurons are drawn as rows."""
    if layer.image_shape is not None:
        return tuple(layer.image_shape)
    return IMAGE_SIZES.get(layer.in_features)


def weights_picture(layer: LinearLayer, weight: np.ndarray, bias: Optional[np.ndarray]) -> dict:
    """One Linear layer's weights for the page's picture: each weight as a byte code on the
    page's one diverging scale (128 + 127 × w / limit, limit the layer's largest |w|: the codes
    of the live views, static/js/lib/palette.js), one row per neuron (its first neurons when
    they are more than MAX_PICTURE_VALUES weights), with the layer's image shape (tiles) or none
    (rows), and the histogram of all its weights."""
    shown = max(1, min(layer.out_features, MAX_PICTURE_VALUES // layer.in_features))
    limit = float(np.abs(weight).max()) if weight.size else 0.0
    scale = 127.0 / limit if limit > 0 else 0.0
    codes = np.rint(128.0 + weight[:shown] * scale).clip(1, 255).astype(np.uint8)
    lo, hi = float(weight.min()), float(weight.max())
    counts, _ = np.histogram(weight, bins=32, range=(lo, hi if hi > lo else lo + 1e-12))
    image = image_of(layer)
    return {"path": layer.path, "in_features": layer.in_features, "out_features": layer.out_features,
            "image": list(image) if image else None, "neurons": shown, "limit": limit, "codes": codes.tobytes(),
            "bias": None if bias is None else [float(b) for b in bias[:shown]], "quantiles": list(SPREAD_QUANTILES),
            "histogram": {"lo": lo, "hi": hi, "counts": [int(c) for c in counts]}}


# The weights' spread over training, per layer: these quantiles of each snapshot's weights.
SPREAD_QUANTILES = (0.0, 0.05, 0.25, 0.5, 0.75, 0.95, 1.0)


def weights_spread(weight: np.ndarray) -> list[float]:
    """The SPREAD_QUANTILES of one layer's weights (the page draws them as bands over training)."""
    return [float(q) for q in np.quantile(weight, SPREAD_QUANTILES)]
