"""A watched run: the user's own network, trained by the user's own script (client/,
`linear_playground.watch`), shown on the page like any run.

It is a `TrainingRun` whose steps arrive from the script instead of a training thread: the
loss and other numbers of its steps (`receive_steps`) become curve points and metrics, and
each snapshot of its weights (`receive_snapshot`) is copied into the run's network and handed to
the run's features (the predictions' replica, live views, replay, recorder) exactly as a
training step would be. When its Linear layers form a chain the playground trains itself
(server/watch_frames.py `chain_config`), the run's network is that chain, so every picture and
the canvas's predictions are the user's model's; otherwise the run shows its curves and
structure, and says why its pictures do not apply.

Its controls are the script's: the page cannot start, reset or change it; a run opened with
`controllable=True` can be held (Pause) and let through one step at a time (Step), which the
script's next `run.step()` waits for (`control`).
"""
from __future__ import annotations

import math
from typing import Optional

import numpy as np
import torch

from ..errors import RunError
from ..experiment import TrainConfig
from ..watch_frames import OpenRequest, PredictingChain, weights_picture, weights_spread
from .history import CurveHistory
from .run import RunFeature, TrainingRun

SCRIPT_TRAINS = ("this run trains in its owner's script (linear_playground.watch): it starts, stops and "
                 "changes there, not from the page")
NOT_CONTROLLABLE = ("this run's script did not allow the page to pause it (watch(..., controllable=True) "
                    "does)")
FINISHED = "this run is finished: its script closed it"
MAX_NUMBER_NAMES = 16  # named numbers a run keeps (and the page charts); later new names are left out
MAX_LEFT_OUT_COUNTED = 1000  # names left out, counted for the page (a bound on what is remembered)
MAX_SPREAD_POINTS = 200  # snapshots whose weights' spread a layer keeps (evenly thinned past it)
# Named numbers with a place of their own: accuracy has its chart, epoch is the curves' x axis.
OWN_PLACES = ("accuracy", "epoch")


def no_base(base: int, held: Optional[int]) -> str:
    """Why a delta (int8 values added to the weights of step `base`) cannot be applied. The
    client knows the words "send whole weights": its next snapshot is whole."""
    holds = "no weights of this run" if held is None else f"this run's weights of step {held}"
    return f"no weights of step {base} to add this delta to (the server holds {holds}): send whole weights"


def _mean(values) -> Optional[float]:
    kept = [v for v in values if v is not None]
    return math.fsum(kept) / len(kept) if kept else None


class WatchedRun(TrainingRun):
    def __init__(self, dataset, *, spec: OpenRequest, config: Optional[TrainConfig], why_not: Optional[str],
                 chain: Optional[PredictingChain] = None, **kwargs):
        self.spec = spec
        # A chain the canvas predicts with (watch_frames.predicting_chain), whatever its input image:
        # the replica holds the script's weights of it (replica_content), the drawing is resampled to it.
        self.chain = chain
        self.shows_network = config is not None  # the run's network computes what the user's does
        self.why_not = why_not  # words, when it does not
        self.released = 0  # steps let through while held, counted from the start
        self.snapshot_step: Optional[int] = None  # the step of the newest weights
        # Those weights, flat float32, as the snapshots rebuilt them: what the script's next
        # delta is added to (the client keeps the very same numbers, docs/protocol.md).
        self.held_weights: Optional[np.ndarray] = None
        self.histograms: dict[str, dict] = {}  # layer path -> {"activations", "grads"} as sent
        self.layer_weights: list = []  # the newest snapshot's (weight, bias) arrays, per Linear layer
        self.spreads: list[CurveHistory] = [CurveHistory(MAX_SPREAD_POINTS) for _ in spec.layers]  # over training
        self.number_names: list[str] = []  # in the order they first came, at most MAX_NUMBER_NAMES
        self.left_out_names: set[str] = set()  # names that came after the run had MAX_NUMBER_NAMES (some)
        super().__init__(dataset, config=config or TrainConfig(), **{**kwargs, "pace": None})
        self.status = "running"

    # ---- what the page reads -----------------------------------------------------------------
    def watched(self) -> dict:
        spec = self.spec
        return {"name": spec.name, "layers": [layer.model_dump() for layer in spec.layers],
                "tree": [module.model_dump() for module in spec.tree],
                "shows_network": self.shows_network, "why_not": self.why_not,
                "predicts": self.chain is not None,
                "input_image": list(self.chain.image) if self.chain is not None else None,
                "controllable": spec.controllable, "held": self.status == "paused", "released": self.released,
                "snapshot_step": self.snapshot_step, "numbers": list(self.number_names),
                "numbers_left_out": len(self.left_out_names),
                "histograms": dict(self.histograms)}

    def state(self) -> dict:
        with self._lock:
            state = super().state()
            # Its length and speed are the script's: not known here.
            state.update(total_steps=None, progress=None, eta_seconds=None, queue_position=None,
                         watched=self.watched())
            return state

    def replica_content(self):
        """The predictions' replica: the run's network (a chain from 784 inputs), else the
        script's newest weights of a chain that reads another image; None before them or when
        the page cannot compute the network."""
        chain = self.chain
        if chain is None:
            return None
        if self.shows_network:
            sizes, activation, arrays, _ = super().replica_content()
            return sizes, activation, arrays, chain.image
        layers = self.layer_weights
        if not layers:
            return None
        return chain.sizes, chain.activation, lambda: [array for pair in layers for array in pair], chain.image

    # ---- from the script -----------------------------------------------------------------------
    def receive_steps(self, steps: list[int], loss: list, numbers: dict) -> None:
        with self._lock:
            if self.status == "done":
                raise RunError(FINISHED)
            step = steps[-1]
            self.trainer.global_step = max(self.trainer.global_step, step)
            for name in numbers:
                if name not in self.number_names:
                    if len(self.number_names) < MAX_NUMBER_NAMES:
                        self.number_names.append(name)
                    elif len(self.left_out_names) < MAX_LEFT_OUT_COUNTED:
                        self.left_out_names.add(name)
            numbers = {name: values for name, values in numbers.items() if name in self.number_names}
            # One curve point per batch of steps (the script sends a few a second), as a
            # running run makes one per metrics interval.
            epochs = numbers.get("epoch")
            epoch = next((v for v in reversed(epochs) if v is not None), None) if epochs else None
            point = {"step": step, "epoch": float(step) if epoch is None else epoch,
                     "loss": _mean(loss), "accuracy": _mean(numbers.get("accuracy", ()))}
            # The script's other numbers apart from the point's own keys (a number named "step"
            # or "progress" stays the script's), for their charts.
            point["numbers"] = {name: _mean(values) for name, values in numbers.items() if name not in OWN_PLACES}
            self.curve.add(point)
            self._publish("metrics", {**point, "run_id": self.run_id, "lr": None, "batch_size": None,
                                      "samples_per_second": None, "progress": None, "eta_seconds": None,
                                      "total_steps": None})
            self._call("on_step")  # the recorder keeps the run from its first step (the others pace themselves)

    def weights_for_delta(self, base: int) -> np.ndarray:
        """The weights a delta based on the snapshot of step `base` is added to; refused in words
        (the client then sends whole weights) when the run holds others or none (a restart)."""
        with self._lock:
            if self.status == "done":
                raise RunError(FINISHED)
            if self.held_weights is None or self.snapshot_step != base:
                raise RunError(no_base(base, self.snapshot_step if self.held_weights is not None else None))
            return self.held_weights

    def receive_snapshot(self, step: int, arrays: list, histograms: dict, *, final: bool,
                         values: Optional[np.ndarray] = None, based_on: Optional[int] = None) -> None:
        """The user's weights at `step` (float32 arrays per Linear layer, in the order the run
        was opened with; `values`: the same, flat, kept for the next delta, which `based_on`
        names when these were one), handed to the run's features as a training step would be."""
        with self._lock:
            if self.status == "done":
                raise RunError(FINISHED)
            if based_on is not None and (self.held_weights is None or self.snapshot_step != based_on):
                raise RunError(no_base(based_on, self.snapshot_step if self.held_weights is not None else None))
            self.trainer.global_step = max(self.trainer.global_step, step)
            self.snapshot_step = step
            self.held_weights = values
            self.histograms = histograms
            self.layer_weights = arrays  # every layer's pictures, whatever the network (weights_picture)
            if self.shows_network:
                layers = [getattr(self.model, name) for name in self.model.layer_names + ["output"]]
                with torch.no_grad():
                    for layer, (weight, bias) in zip(layers, arrays):
                        layer.weight.copy_(torch.from_numpy(weight))
                        layer.bias.copy_(torch.from_numpy(bias))
                        layer.weight.grad = None
            # The histograms the script's hooks took, to the run's pages as they come (small).
            self._publish("watch:layers", {"run_id": self.run_id, "step": step, "histograms": histograms})
            if final:
                self.status = "done"
                self._broadcast_state()  # still: every view and the record exact, at once
            else:
                self._call("on_step")

    def keep_spread(self, step: int, arrays: list) -> None:
        """Each layer's weights' quantiles at this snapshot, for its distribution over training
        (computed outside the run's lock: a large layer takes milliseconds)."""
        spreads = [weights_spread(weight) for weight, _ in arrays]
        with self._lock:
            for history, quantiles in zip(self.spreads, spreads):
                history.add({"step": step, "q": quantiles})

    def weights_picture(self, index: int) -> dict:
        """Linear layer `index`'s weights as the page draws them (watch_frames.weights_picture), at
        the newest snapshot's step; before the first snapshot, said in words."""
        layers = self.spec.layers
        if not 0 <= index < len(layers):
            raise RunError(f"this network has {len(layers)} Linear layers: give a layer from 0 to {len(layers) - 1}")
        with self._lock:
            arrays, step = self.layer_weights, self.snapshot_step
        if not arrays:
            raise RunError("no weights yet: they come with the script's first snapshot "
                           "(watch(..., snapshots_per_second=0) sends none)")
        weight, bias = arrays[index]
        with self._lock:
            spread = self.spreads[index].copy()
        return {"run_id": self.run_id, "step": step, "index": index, **weights_picture(layers[index], weight, bias),
                "spread": spread}

    def finish(self) -> dict:
        with self._lock:
            if self.status != "done":
                self.status = "done"
                return self._broadcast_state()
            return self.state()

    def control(self) -> dict:
        """What the script's next steps may do: {"held", "released", "done"}."""
        with self._lock:
            return {"held": self.status == "paused", "released": self.released, "done": self.status == "done"}

    # ---- the page's controls: the script's, or held and stepped when it allows ---------------
    def _controllable(self) -> None:
        if self.status == "done":
            raise RunError(FINISHED)
        if not self.spec.controllable:
            raise RunError(NOT_CONTROLLABLE)

    def start(self, changes: Optional[dict] = None) -> dict:
        if changes:
            raise RunError(SCRIPT_TRAINS)
        with self._lock:
            self._controllable()
            self.status = "running"
            return self._broadcast_state()

    def pause(self) -> dict:
        with self._lock:
            self._controllable()
            self.status = "paused"  # the script's next run.step() waits (it asks: control())
            return self._broadcast_state()

    def step(self, batches: int = 1, **_) -> dict:
        with self._lock:
            self._controllable()
            self.status = "paused"
            self.released += batches  # this many of the script's steps go through
            return self._broadcast_state()

    def reset(self, changes: Optional[dict] = None) -> dict:
        raise RunError(SCRIPT_TRAINS)

    def update_config(self, changes: dict) -> dict:
        raise RunError(SCRIPT_TRAINS)

    def set_pace(self, pace) -> dict:
        raise RunError(SCRIPT_TRAINS)

    def start_from_weights(self, *args, **kwargs) -> dict:
        raise RunError(SCRIPT_TRAINS)

    def restore(self, **kwargs) -> dict:
        raise RunError(SCRIPT_TRAINS)

    def _ensure_thread(self) -> None:
        """No training thread: the script trains."""


class NameTheRecord(RunFeature):
    """Gives the run's record the name the script chose, once the record exists (the recorder
    makes it at the first step)."""

    def __init__(self, recorder, name: str):
        self.recorder = recorder
        self.name = name.strip()

    def on_step(self, run) -> None:
        record = self.recorder.live_record_id
        if self.name and record is not None:
            self.recorder.store.rename(record, self.name)
            self.name = ""
            self.recorder.on_change()

    on_state = lambda self, run, state: self.on_step(run)  # noqa: E731 (a snapshot may come first as a state)
