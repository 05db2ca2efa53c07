"""What the "look inside" pictures are: plain torch/numpy maths on a network, no web, no sending.

What is computed here, and how it travels:
- Hidden-weight tiles: each row of the first hidden layer's weight (one neuron, 784 weights) is
  the neuron's 28x28 template. Rows are quantised to uint8 with one scale per row
  (q = round(w / max|w_row| * 127) + 128, so 128 is exactly 0 and the error is at most half a
  step, max|w_row| / 254). 256 neurons x 784 bytes = 200,704 bytes.
- Output weights: float16 (10 x n_last).
- Histograms with fixed bins: for weights and gradients, 64 bins chosen per tensor from its
  first snapshot in a run and kept: linear near zero and logarithmic further out (asinh
  spacing), reaching 64 times the tensor's first largest magnitude, so a growing or shrinking
  tensor stays readable without ever rebinning. Values beyond the outer edges are counted in
  the outermost bins and reported.
- A ring buffer of histograms over training steps: when full, the older half is thinned (every
  other record), the first record is always kept, the newest half is kept whole.
- The per-drawing maths of one neuron: contributions x_i * W[j, i] (they sum to the
  pre-activation minus the bias), and the validation digits that excite each neuron most.

`Snapshotter` turns a network into these frames (dicts with bytes for the big arrays), and
`WeightsChain` the heatmaps into a key frame and deltas (deltas.py). When frames are made, for
whom, and how they are encoded and sent: live_views.py.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from ..experiment import N_INPUTS
from ..link.arrays import float32_bytes
from .deltas import LEVELS as DELTA_LEVELS, RowDeltas
from .model import ACTIVATION_FUNCTIONS, Network

TILE_SIDE = 28
QUANT_ZERO = 128  # the uint8 code of 0.0
QUANT_LEVELS = 127  # codes 1..255 cover -scale..+scale
MAX_TILES = 256  # tiles sent per frame; bigger layers show the first 256 (the page says so)
HISTOGRAM_BINS = 64
HISTORY_CAPACITY = 120  # records per tensor in the distributions ring buffer
VALIDATION_DIGITS = 256  # the fixed validation batch for activation statistics
TOP_DIGITS = 8  # validation digits shown per neuron in the inspector
TOP_DIGITS_EVERY_S = 1.0  # their ranking is refreshed at most this often (it is for the inspector)
ACTIVATION_BINS = 40
# "Saturated": where the activation's slope is small, so the unit learns slowly.
SATURATION_MARGIN = 0.05


# ---- quantisation -----------------------------------------------------------------------------

@dataclass
class QuantisedRows:
    """uint8 codes (rows, cols) and one float32 scale per row: value = (code - 128) * scale / 127."""

    codes: np.ndarray
    scales: np.ndarray


def quantise_rows(matrix: torch.Tensor) -> QuantisedRows:
    m = torch.nan_to_num(matrix.detach().to("cpu", torch.float32))
    scales = m.abs().amax(dim=1)
    safe = torch.where(scales > 0, scales, torch.ones_like(scales))
    codes = torch.round(m / safe[:, None] * QUANT_LEVELS).add_(QUANT_ZERO).clamp_(0, 255).to(torch.uint8)
    return QuantisedRows(codes.numpy(), scales.numpy().astype(np.float32))


def mosaic_columns(n_tiles: int) -> int:
    """Tiles per row of the mosaic: as square as possible (16 for 256)."""
    return max(1, math.ceil(math.sqrt(n_tiles)))


def float16_bytes(tensor: torch.Tensor) -> bytes:
    array = torch.nan_to_num(tensor.detach().to("cpu", torch.float32)).numpy()
    return np.clip(array, -65504, 65504).astype("<f2").tobytes()


# ---- fixed-bin histograms -----------------------------------------------------------------------

@dataclass(frozen=True)
class FixedBins:
    """Symmetric bins, linear within about +-scale, logarithmic beyond, out to +-limit.

    Edge k is scale * sinh(-umax + k * 2 umax / n) with umax = asinh(limit / scale)."""

    scale: float
    limit: float
    n: int = HISTOGRAM_BINS

    @classmethod
    def for_tensor(cls, x: torch.Tensor, n: int = HISTOGRAM_BINS) -> "FixedBins":
        finite = x.detach()[torch.isfinite(x.detach())]
        largest = float(finite.abs().max()) if finite.numel() else 0.0
        largest = largest if largest > 0 else 1e-6
        return cls(scale=largest / 16, limit=largest * 64, n=n)

    @property
    def umax(self) -> float:
        return math.asinh(self.limit / self.scale)

    def edges(self) -> np.ndarray:
        edges = self.scale * np.sinh(np.linspace(-self.umax, self.umax, self.n + 1))
        if self.n % 2 == 0:
            edges[self.n // 2] = 0.0  # exactly: zeros (common in gradients) open the middle bin
        return edges

    def count(self, x: torch.Tensor) -> tuple[np.ndarray, int, int]:
        """(counts per bin, values beyond the outer edges (counted in the end bins, infinities
        included), NaNs (not counted)). numpy, not torch: its arcsinh is many times faster on
        one CPU thread, and this runs between training steps."""
        values = as_numpy(x)
        # u = asinh(x / scale) * n / (2 umax) + n/2 puts bin k at [k, k + 1): 0 lands exactly
        # on the middle edge, as in edges().
        u = np.arcsinh(values * values.dtype.type(1.0 / self.scale))
        u *= values.dtype.type(self.n / (2 * self.umax))
        u += values.dtype.type(self.n / 2)
        not_finite = int(np.count_nonzero(np.isnan(u)))
        if not_finite:
            u = u[~np.isnan(u)]
        below = int(np.count_nonzero(u < 0))
        above = int(np.count_nonzero(u > self.n))  # u == n is x == limit: the last bin, as numpy
        np.floor(u, out=u)
        np.clip(u, 0, self.n - 1, out=u)
        counts = np.bincount(u.astype(np.intp), minlength=self.n)
        return counts, below + above, not_finite


def as_numpy(x: torch.Tensor) -> np.ndarray:
    """A flat float numpy view of a tensor (a copy only when it is on a GPU or not float)."""
    values = x.detach().reshape(-1).to("cpu").numpy()
    return values if values.dtype in (np.float32, np.float64) else values.astype(np.float32)


def linear_histogram(values: torch.Tensor, lo: float, hi: float, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """(edges, counts): `bins` equal bins over [lo, hi]; values outside land in the end bins
    (NaN is not counted)."""
    edges = np.linspace(lo, hi, bins + 1)
    position = (as_numpy(values) - lo) * (bins / (hi - lo))  # bin k is [k, k + 1)
    if np.isnan(position).any():
        position = position[~np.isnan(position)]
    np.clip(position, 0, bins - 1, out=position)
    return edges, np.bincount(position.astype(np.intp), minlength=bins)  # truncation = floor here


def nice_ceiling(value: float) -> float:
    """The smallest 1, 2 or 5 x 10^k at or above value (a range that changes rarely)."""
    if not value > 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value * (1 - 1e-9):
            return step * power
    return 10 * power


def activation_range(activation: str, values: torch.Tensor) -> tuple[float, float]:
    """Fixed ranges for bounded activations; a 'nice' range for unbounded ones."""
    if activation == "sigmoid":
        return 0.0, 1.0
    if activation == "tanh":
        return -1.0, 1.0
    finite = values[torch.isfinite(values)]
    if not finite.numel():
        return 0.0, 1.0
    hi = nice_ceiling(float(finite.max()))
    lowest = float(finite.min())
    lo = -nice_ceiling(-lowest) if lowest < 0 else 0.0  # leaky ReLU's small negative side
    return lo, hi


def saturation(activation: str, values: torch.Tensor) -> dict:
    """Share of activation values where the unit barely learns: sigmoid near 0 or 1, tanh near
    -1 or 1 (slope < ~0.1), ReLU exactly 0 (no gradient), leaky ReLU negative (slope 0.01)."""
    v = values.detach().reshape(-1).float()
    n = max(1, v.numel())
    if activation == "sigmoid":
        low = int((v < SATURATION_MARGIN).sum())
        high = int((v > 1 - SATURATION_MARGIN).sum())
    elif activation == "tanh":
        low = int((v < -1 + SATURATION_MARGIN).sum())
        high = int((v > 1 - SATURATION_MARGIN).sum())
    elif activation == "relu":
        low, high = int((v <= 0).sum()), 0
    else:
        low, high = int((v < 0).sum()), 0
    return {"low": low / n, "high": high / n, "share": (low + high) / n, "values": v.numel()}


# ---- the ring buffer of histograms over steps ------------------------------------------------------

@dataclass
class HistogramHistory:
    """Histograms of one tensor over training steps. When more than `capacity` records are
    held, the older half is thinned to every other record; the first record always stays."""

    bins: FixedBins
    numel: int
    capacity: int = HISTORY_CAPACITY
    steps: list = field(default_factory=list)
    counts: list = field(default_factory=list)
    outside: list = field(default_factory=list)
    thinned: int = 0  # how many times the records were thinned (a viewer's copy is then stale)

    def record(self, step: int, x: torch.Tensor) -> None:
        counts, outside, _ = self.bins.count(x)
        if self.steps and step <= self.steps[-1]:
            if step == self.steps[-1]:  # the same step seen again (e.g. after a pause)
                self.counts[-1], self.outside[-1] = counts, outside
            return
        self.steps.append(step)
        self.counts.append(counts)
        self.outside.append(outside)
        if len(self.steps) > self.capacity:
            half = len(self.steps) // 2
            keep = [0] + list(range(1, half, 2)) + list(range(half, len(self.steps)))
            self.steps = [self.steps[i] for i in keep]
            self.counts = [self.counts[i] for i in keep]
            self.outside = [self.outside[i] for i in keep]
            self.thinned += 1


def log_count_codes(counts: np.ndarray, numel: int) -> np.ndarray:
    """Counts as uint8 codes on a log scale: code = round(255 * log1p(c) / log1p(numel)).
    Readers get c back within about 5% (numel = 200,704): plenty for shading and hover."""
    top = math.log1p(max(1, numel))
    return np.round(np.log1p(counts.astype(np.float64)) * (255 / top)).astype(np.uint8)


# ---- one neuron and the validation batch -----------------------------------------------------------

def contributions(weight_row, pixels) -> np.ndarray:
    """x_i * W[j, i] for every input pixel: the pre-activation z_j is their sum plus b_j."""
    w = np.asarray(weight_row, dtype=np.float64).reshape(-1)
    x = np.asarray(pixels, dtype=np.float64).reshape(-1)
    return w * x


def top_exciting(activations: torch.Tensor, k: int = TOP_DIGITS) -> tuple[np.ndarray, np.ndarray]:
    """(values, indices), each (k, units): for every unit, the k inputs that drive it highest."""
    k = min(k, activations.shape[0])
    # along contiguous rows: about 3x faster than topk over dim 0
    values, indices = torch.topk(activations.t().contiguous(), k, dim=1)
    return values.t().cpu().numpy(), indices.t().cpu().numpy()


def apply_activation(name: str, z: float) -> float:
    return float(ACTIVATION_FUNCTIONS[name](torch.tensor([z], dtype=torch.float64))[0])


# ---- the snapshotter --------------------------------------------------------------------------------

class Snapshotter:
    """Frames of the live network (dicts with bytes for the big arrays), plus the state that
    spans frames: the histogram histories of the current run and the latest validation
    activations (for the inspector). Call it where training is not running concurrently."""

    def __init__(self, validation_images: torch.Tensor, validation_labels: torch.Tensor,
                 *, max_tiles: int = MAX_TILES, validation_digits: int = VALIDATION_DIGITS,
                 history_capacity: int = HISTORY_CAPACITY):
        self.max_tiles = max_tiles
        self.history_capacity = history_capacity
        n = min(validation_digits, len(validation_labels))
        self.validation_images = validation_images[:n].detach().to("cpu", torch.float32)
        self.validation_labels = validation_labels[:n].detach().to("cpu")
        self._device_images: Optional[torch.Tensor] = None
        self.histories: dict[tuple[str, str], HistogramHistory] = {}
        # (values, indices, step): per first-layer unit, the validation digits that drive it
        # highest; one tuple, replaced whole, so a reader in another thread sees one snapshot.
        self.top: Optional[tuple[np.ndarray, np.ndarray, int]] = None
        self._top_at = 0.0

    def new_run(self) -> None:
        self.histories = {}
        self.top = None

    # -- heatmaps
    def weights_frame(self, model: Network) -> dict:
        first = model.hidden_layers()[0]
        n_neurons = first.out_features
        shown = min(n_neurons, self.max_tiles)
        with torch.no_grad():
            quantised = quantise_rows(first.weight[:shown])
            bias = first.bias[:shown].detach().to("cpu", torch.float32).numpy()
            output = model.output
            output_bias = output.bias.detach().to("cpu", torch.float32)
            output_max = float(torch.nan_to_num(output.weight.detach()).abs().max())
            output_data = float16_bytes(output.weight)
        return {
            "hidden": {
                "layer": model.layer_names[0],
                "n_neurons": n_neurons,
                "n_shown": shown,
                "inputs": N_INPUTS,
                "tile": [TILE_SIDE, TILE_SIDE],
                "columns": mosaic_columns(shown),
                "encoding": {"dtype": "uint8", "zero": QUANT_ZERO, "levels": QUANT_LEVELS},
                "data": quantised.codes.tobytes(),
                "row_scale": float32_bytes(quantised.scales),
                "bias": float32_bytes(bias),
                "max_abs": float(quantised.scales.max()) if shown else 0.0,
            },
            "output": {
                "layer": "output",
                "from_layer": model.layer_names[-1],
                "shape": list(output.weight.shape),
                "dtype": "float16",
                "data": output_data,
                "bias": [float(b) for b in torch.nan_to_num(output_bias)],
                "max_abs": output_max,
            },
        }

    # -- activations over the fixed validation batch
    def activations_frame(self, model: Network, step: int) -> dict:
        device = next(model.parameters()).device
        if self._device_images is None or self._device_images.device != device:
            self._device_images = self.validation_images.to(device)
        trace = model.trace(self._device_images)
        layers = []
        for name, values in zip(model.layer_names, trace.activations):
            lo, hi = activation_range(model.activation_name, values)
            edges, counts = linear_histogram(values, lo, hi, ACTIVATION_BINS)
            layers.append({
                "name": name,
                "units": int(values.shape[1]),
                "edges": [float(e) for e in edges],
                "counts": [int(c) for c in counts],
                "mean": float(values.float().mean()),
                "saturation": saturation(model.activation_name, values),
            })
        now = time.monotonic()
        if self.top is None or now - self._top_at >= TOP_DIGITS_EVERY_S or step < self.top[2]:
            self.top = (*top_exciting(trace.activations[0]), step)
            self._top_at = now
        return {"n_digits": len(self.validation_labels), "activation": model.activation_name,
                "layers": layers}

    # -- distributions over time
    def record_distributions(self, model: Network, step: int) -> None:
        for name in model.layer_names + ["output"]:
            weight = getattr(model, name).weight
            for kind, tensor in (("weight", weight), ("gradient", weight.grad)):
                if tensor is None:
                    continue
                key = (f"{name}.weight", kind)
                history = self.histories.get(key)
                if history is None:
                    history = self.histories[key] = HistogramHistory(
                        FixedBins.for_tensor(tensor), tensor.numel(), self.history_capacity)
                history.record(step, tensor)

    def distributions_frame(self, since: Optional[dict] = None) -> dict:
        """Every tensor's histograms over steps. `since` (tensor name -> records a viewer holds)
        gives only the records from the last one it holds (which may have been recorded again)."""
        tensors = []
        for (name, kind), history in self.histories.items():
            if not history.steps:
                continue
            start = 0 if since is None else max(0, since.get((name, kind), 0) - 1)
            codes = np.stack([log_count_codes(c, history.numel) for c in history.counts[start:]]) \
                if start < len(history.counts) else np.zeros((0, history.bins.n), np.uint8)
            if since is not None:
                tensors.append({"name": name, "kind": kind, "from": start, "steps": list(history.steps[start:]),
                                "outside": list(history.outside[start:]), "counts": codes.tobytes()})
                continue
            tensors.append({
                "name": name,
                "layer": name.split(".")[0],
                "kind": kind,
                "numel": history.numel,
                "edges": [float(e) for e in history.bins.edges()],
                "scale": history.bins.scale,
                "limit": history.bins.limit,
                "steps": list(history.steps),
                "outside": list(history.outside),
                "bins": history.bins.n,
                "counts": codes.tobytes(),  # (records, bins) row-major
                "count_encoding": {"dtype": "uint8", "log1p_max": math.log1p(max(1, history.numel))},
            })
        return {"capacity": self.history_capacity, "tensors": tensors}

    def distributions_state(self) -> tuple[dict, tuple]:
        """(records held per tensor, what makes a viewer's copy stale: the tensors and their thinnings)."""
        held = {key: len(h.steps) for key, h in self.histories.items()}
        return held, tuple(sorted((key, h.thinned) for key, h in self.histories.items()))

    def ensure_top(self, model: Network, step: int) -> None:
        """The validation digits that excite each neuron most, computed now if no activations
        frame has been made for this network yet (the inspector can be asked first)."""
        if self.top is None:
            device = next(model.parameters()).device
            trace = model.trace(self.validation_images.to(device))
            self.top = (*top_exciting(trace.activations[0]), step)
            self._top_at = time.monotonic()

    # -- one neuron, for the inspector
    def neuron(self, model: Network, index: int, pixels: Optional[np.ndarray]) -> dict:
        layer = model.hidden_layers()[0]
        if not 0 <= index < layer.out_features:
            raise IndexError(f"neuron index must be from 0 to {layer.out_features - 1}, got {index}")
        with torch.no_grad():  # a copy of one row: the training thread may be updating it
            weights = layer.weight[index].detach().to("cpu", torch.float32).numpy().copy()
            bias = float(layer.bias[index].detach().to("cpu"))
        weights = np.nan_to_num(weights)
        largest = float(np.abs(weights).max()) or 1.0
        edges, counts = linear_histogram(torch.from_numpy(weights), -largest, largest, 30)
        detail = {
            "index": index,
            "layer": model.layer_names[0],
            "n_neurons": layer.out_features,
            "activation": model.activation_name,
            "bias": bias,
            "weights": float32_bytes(weights),
            "max_abs": largest,
            "min": float(weights.min()),  # the row's own range (the picture's scale is ±max_abs)
            "max": float(weights.max()),
            "histogram": {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]},
        }
        if pixels is not None:
            parts = contributions(weights, pixels)
            z = float(parts.sum() + bias)
            detail.update({
                "contributions": float32_bytes(parts),
                "contribution_sum": float(parts.sum()),
                "pre_activation": z,
                "activation_value": apply_activation(model.activation_name, z),
            })
        top = self.top
        if top is not None and index < top[1].shape[1]:
            top_values, top_indices, top_step = top
            chosen = top_indices[:, index]
            images = (self.validation_images[chosen].clamp(0, 1) * 255).round().to(torch.uint8)
            detail["top_digits"] = {
                "step": top_step,
                "count": len(chosen),
                "indices": [int(i) for i in chosen],
                "labels": [int(self.validation_labels[i]) for i in chosen],
                "activations": [float(v) for v in top_values[:, index]],
                "images": images.numpy().tobytes(),  # (count, 784) uint8, 255 = ink
                "out_of": len(self.validation_labels),
            }
        return detail


# ---- the heatmaps as a chain of frames ---------------------------------------------------------------

class WeightsChain:
    """The heatmaps as a key frame and deltas: the first hidden layer's rows (the tiles) and the
    output layer's rows, as viewers of the chain hold them."""

    def __init__(self, max_tiles: int):
        self.max_tiles = max_tiles
        self.hidden = RowDeltas()
        self.output = RowDeltas()

    def frame(self, model: Network, *, key: bool, exact: bool) -> tuple[dict, bool]:
        """(payload, whether anything changed)."""
        first = model.hidden_layers()[0]
        shown = min(first.out_features, self.max_tiles)
        with torch.no_grad():
            hidden = first.weight[:shown].detach().to("cpu", torch.float32).numpy()
            bias = first.bias[:shown].detach().to("cpu", torch.float32).numpy()
            output = model.output.weight.detach().to("cpu", torch.float32).numpy()
            output_bias = model.output.bias.detach().to("cpu", torch.float32).numpy()
        if key:
            hidden_part, output_part = self.hidden.key(hidden), self.output.key(output)
            changed = True
        else:
            hidden_part = self.hidden.delta(hidden, exact=exact)
            output_part = self.output.delta(output, exact=exact)
            changed = bool(self.hidden.last_changed or self.output.last_changed)
        payload = {
            "kind": "key" if key else "delta",
            "levels": DELTA_LEVELS,
            "hidden": {
                "layer": model.layer_names[0], "n_neurons": first.out_features, "n_shown": shown,
                "inputs": N_INPUTS, "tile": [TILE_SIDE, TILE_SIDE], "columns": mosaic_columns(shown),
                "bias": float32_bytes(np.nan_to_num(bias)),
                "max_abs": float(np.abs(np.nan_to_num(hidden)).max()) if shown else 0.0,
                **hidden_part,
            },
            "output": {
                "layer": "output", "from_layer": model.layer_names[-1], "shape": list(output.shape),
                "bias": [float(b) for b in np.nan_to_num(output_bias)],
                "max_abs": float(np.abs(np.nan_to_num(output)).max()),
                **output_part,
            },
        }
        return payload, changed
