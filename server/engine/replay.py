"""The run replayed: a run's weights kept at points spread over the whole run, so a viewer can
go back to any step and see the hidden-weight tiles, the output weights, the weight
distributions and the curve point of then, and what that step's weights say about a drawing.

What is kept, and its bound: every weight matrix as float16 and every bias as float32, at most
`capacity` points per run. The first point (the run's first weights) is always kept; a new one
is taken every `stride` steps; when more than `capacity` are held, every other point after the
first is dropped and the stride doubles, so the points stay evenly spread over the run and
between capacity/2 and capacity of them are held. capacity = min(REPLAY_POINTS, REPLAY_BUDGET_BYTES
// bytes per point): the default 784 -> 256 -> 10 network (203,530 parameters, 407 kB a point)
keeps 61 to 120 points, 49 MB at most; a network too big for 120 points within the budget
keeps fewer (never under 2). docs/architecture.md states the bound.
"""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from ..errors import UserError
from ..link.replica import Weights, forward
from .snapshots import FixedBins, Snapshotter, log_count_codes
from .model import network_of
from .run import RunFeature

REPLAY_POINTS = 120  # most points kept per run (thinned to 61 when the 121st comes)
REPLAY_BUDGET_BYTES = 64 * 2**20  # most bytes of weights kept per run


@dataclass
class ReplayPoint:
    step: int
    epoch: float
    weights: Weights  # float16 matrices, float32 biases
    histograms: dict = field(default_factory=dict)  # tensor name -> counts (made when first asked)

    def float32(self) -> Weights:
        w = self.weights
        layers = tuple((weight.astype(np.float32), bias) for weight, bias in w.layers)
        return Weights(w.run_id, self.step, w.written_at, w.status, w.activation, w.sizes, layers, w.version, w.epochs)

    @property
    def nbytes(self) -> int:
        return sum(weight.nbytes + bias.nbytes for weight, bias in self.weights.layers)


def thinned(points: list[ReplayPoint], stride: int) -> list[ReplayPoint]:
    """The first point, then each point at least `stride` steps after the one kept before it
    (and the newest): about every other point when the stride has doubled, evenly by step."""
    kept = [points[0]]
    for point in points[1:-1]:
        if point.step - kept[-1].step >= stride:
            kept.append(point)
    if len(points) > 1:
        kept.append(points[-1])
    return kept


def point_bytes(sizes) -> int:
    return sum(n_in * n_out * 2 + n_out * 4 for n_in, n_out in zip(sizes[:-1], sizes[1:]))


def capacity_for(sizes, *, points: int = REPLAY_POINTS, budget: int = REPLAY_BUDGET_BYTES) -> int:
    return max(2, min(points, budget // point_bytes(sizes)))


class Replay(RunFeature):
    """Keeps a run's weights at points spread over it (the module's docstring says how many)."""

    def __init__(self, run, *, points: int = REPLAY_POINTS, budget: int = REPLAY_BUDGET_BYTES):
        self.run = run
        self.max_points = points
        self.budget = budget
        self._lock = threading.Lock()  # the training thread appends; command threads read
        self._points: list[ReplayPoint] = []
        self._run_id: Optional[int] = None
        self._stride = 1
        self.capacity = capacity_for(run.config.architecture.sizes, points=points, budget=budget)
        self._bins: dict[str, FixedBins] = {}
        self._restart(run)
        self._record(run)  # the run's first weights, before any step

    # -- RunFeature: in the training thread or under the run's lock
    def on_step(self, run) -> None:
        if run.run_id != self._run_id:
            self._restart(run)
        last = self._points[-1].step if self._points else None
        if last is None or run.step_count >= last + self._stride:
            self._record(run)

    def on_state(self, run, state: dict) -> None:
        if run.run_id != self._run_id:
            self._restart(run)
        if not self._points or (state.get("status") != "running" and self._points[-1].step != run.step_count):
            self._record(run)  # the run's first weights; a still run's weights where it stands

    def _restart(self, run) -> None:
        with self._lock:
            self._points = []
            self._bins = {}
            self._run_id = run.run_id
            self._stride = 1
            self.capacity = capacity_for(run.config.architecture.sizes, points=self.max_points, budget=self.budget)

    def _record(self, run) -> None:
        model = run.model
        with torch.no_grad():
            layers = tuple(
                # torch's float16 cast: the same bits as numpy's astype, about 10x faster (it runs
                # in the training thread, at every kept point: docs/performance.md).
                (getattr(model, name).weight.detach().to("cpu", torch.float16).numpy(),
                 getattr(model, name).bias.detach().to("cpu", torch.float32).numpy().copy())
                for name in model.layer_names + ["output"])
        weights = Weights(run.run_id, run.step_count, 0.0, run.status, run.config.activation,
                          tuple(run.config.architecture.sizes), layers, 0, run.trainer.epoch)
        point = ReplayPoint(run.step_count, run.trainer.epoch_progress(), weights)
        with self._lock:
            if self._points and self._points[-1].step == point.step:
                self._points[-1] = point  # the same step again (a pause): its newest weights
                return
            self._points.append(point)
            while len(self._points) > self.capacity:
                self._stride *= 2
                self._points = thinned(self._points, self._stride)

    # -- reading (any thread)
    def points(self) -> list[ReplayPoint]:
        with self._lock:
            return list(self._points)

    @property
    def stride(self) -> int:
        return self._stride

    def nbytes(self) -> int:
        return sum(point.nbytes for point in self.points())

    def point_at(self, step: int) -> ReplayPoint:
        """The kept point nearest to `step` (the earlier one on a tie)."""
        points = self.points()
        if not points:
            raise UserError("nothing of this run is kept yet: train a step first")
        return min(points, key=lambda p: (abs(p.step - step), p.step))

    def _histogram(self, point: ReplayPoint, index: int, name: str, first: ReplayPoint):
        bins = self._bins.get(name)
        if bins is None:  # fixed per tensor from the run's first weights, as the live view does
            bins = self._bins[name] = FixedBins.for_tensor(torch.from_numpy(first.weights.layers[index][0].astype(np.float32)))
        counts = point.histograms.get(name)
        if counts is None:
            counts, _, _ = bins.count(torch.from_numpy(point.weights.layers[index][0].astype(np.float32)))
            point.histograms[name] = counts
        return bins, counts

    def distributions(self, upto: ReplayPoint) -> dict:
        """Each layer's weight histograms at every kept point up to `upto`, shaped like the live
        inside:distributions frame (weights only: gradients are not kept)."""
        points = [p for p in self.points() if p.step <= upto.step]
        names = [layer.name for layer in self.run.config.architecture.layers]
        if points and len(points[0].weights.layers) != len(names):
            names = [f"layer{i}" for i in range(len(points[0].weights.layers))]
        tensors = []
        for index, name in enumerate(names):
            rows = [self._histogram(p, index, f"{name}.weight", points[0]) for p in points]
            bins = rows[0][0]
            numel = int(points[0].weights.layers[index][0].size)
            codes = np.stack([log_count_codes(counts, numel) for _, counts in rows])
            tensors.append({
                "name": f"{name}.weight", "layer": name, "kind": "weight", "numel": numel,
                "edges": [float(e) for e in bins.edges()], "scale": bins.scale, "limit": bins.limit,
                "steps": [p.step for p in points], "outside": [0] * len(points), "bins": bins.n,
                "counts": codes.tobytes(),
                "count_encoding": {"dtype": "uint8", "log1p_max": float(np.log1p(max(1, numel)))},
            })
        return {"capacity": self.capacity, "tensors": tensors}


def curve_point(history: list[dict], step: int) -> Optional[dict]:
    """The curve point at or just before `step` (None before the first)."""
    before = [p for p in history if p["step"] <= step]
    return dict(before[-1]) if before else None


# A kept point's weights frame is the costly part of a replay frame (a network of the point's
# weights is built for it: a big run's took a core and hundreds of MB); a scrubber goes back to
# the same points, so the newest few are kept. A point's weights never change once kept.
FRAMES_KEPT = 8
_frames: "OrderedDict[tuple, tuple]" = OrderedDict()  # (replay, snapshotter, run id, step) -> (their refs, frame)
_frames_lock = threading.Lock()


def point_weights_frame(replay: Replay, snapshotter: Snapshotter, point: ReplayPoint) -> dict:
    key = (id(replay), id(snapshotter), point.weights.run_id, point.step)
    with _frames_lock:
        kept = _frames.get(key)
        if kept is not None and kept[0]() is replay and kept[1]() is snapshotter:
            _frames.move_to_end(key)
            return kept[2]
    frame = snapshotter.weights_frame(network_of(point.float32()))
    with _frames_lock:
        # Weak: a run put away takes its frames' worth with it (an id reused later is not a match).
        _frames[key] = (weakref.ref(replay), weakref.ref(snapshotter), frame)
        while len(_frames) > FRAMES_KEPT:
            _frames.popitem(last=False)
    return frame


def replay_frame(replay: Replay, snapshotter: Snapshotter, history: list[dict], step: int, live_step: int) -> dict:
    """What the page shows for `step`: the kept point nearest to it, as the live views' frames."""
    point = replay.point_at(step)
    weights = point_weights_frame(replay, snapshotter, point)
    return {
        "run_id": point.weights.run_id,
        "asked": step,
        "step": point.step,
        "epoch": point.epoch,
        "live_step": live_step,
        "steps": [p.step for p in replay.points()],
        "stride": replay.stride,
        "weights": {**weights, "run_id": point.weights.run_id, "step": point.step, "epoch": point.epoch,
                    "status": "replay"},
        "distributions": {**replay.distributions(point), "run_id": point.weights.run_id, "step": point.step},
        "curve": curve_point(history, point.step),
    }


def replay_predict(replay: Replay, step: int, pixels: np.ndarray) -> dict:
    """The prediction of the weights kept nearest to `step` (the answer says which step)."""
    point = replay.point_at(step)
    trace = forward(point.float32(), pixels)
    probabilities = np.nan_to_num(trace.probabilities.astype(np.float64))
    return {"run_id": point.weights.run_id, "step": point.step, "asked": step,
            "prediction": int(probabilities.argmax()),
            "probabilities": [round(float(p), 6) for p in probabilities]}
