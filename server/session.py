"""The one shared training run: the single owner of its state.

Every viewer's controls act on this object; it runs training in one background thread and
reports what happens through `publish(event, payload)` callbacks. No Flask or Socket.IO here:
the web layer subscribes and translates.

Threads: control calls (start/pause/step/reset/config) and the training loop take `_lock`,
one training step at a time, so a reset never lands mid-step. `predict` takes no lock: it
reads the live weights, so a drawing is answered without waiting for the training step.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

import numpy as np
import torch
from pydantic import ValidationError

from .config import LIVE_FIELDS, ConfigError, TrainConfig, describe_validation_error
from .trainer import BatchStats, Trainer

log = logging.getLogger(__name__)

STATUSES = ("idle", "running", "paused", "done")
METRICS_INTERVAL_S = 0.1  # at most ~10 metrics messages per second, however fast training runs
HISTORY_LIMIT = 2000  # curve points kept; older points are thinned, the first is always kept
ANSWER_DECIMALS = 6  # a prediction's values on the wire (probabilities, activations, input)
FULL_SPEED_CHUNK_S = 0.005  # at full speed, publish/hook checks happen at least this often

Publish = Callable[[str, dict], None]


class SessionError(ValueError):
    """A control request that cannot be done now, with a message for people."""


def thin_history(points: list, limit: Optional[int] = None) -> list:
    """Over the limit, keep every other point of the whole run: the first and the newest stay.
    (Thinning only the older half, again at every overflow, left a long run's start as a
    handful of points.) The session then records points half as often, so the run stays
    evenly covered."""
    if len(points) <= (HISTORY_LIMIT if limit is None else limit):
        return points
    kept = points[::2]
    if len(points) % 2 == 0:
        kept.append(points[-1])
    return kept


class Numbers(list):
    """A list of plain floats: the web layer's check for binary attachments skips it instead
    of looking at each of its (up to ~1,300) items."""


def answer_values(*tensors: torch.Tensor, decimals: int = ANSWER_DECIMALS) -> list[Numbers]:
    """Tensors as lists of floats rounded for the wire, in one rounding op for all of them.
    float32's own digits come out as 17-digit doubles (0.12345679104328156); six decimals halve
    a prediction's answer and the time to encode it, and no view shows more."""
    flat = torch.cat([t.detach().reshape(-1).cpu() for t in tensors]).double().round(decimals=decimals).tolist()
    lists, start = [], 0
    for t in tensors:
        lists.append(Numbers(flat[start:start + t.numel()]))
        start += t.numel()
    return lists


class TrainingSession:
    def __init__(self, dataset, *, device: torch.device | str = "cpu",
                 config: Optional[TrainConfig] = None, clock=time.monotonic):
        self.dataset = dataset
        self.device = torch.device(device)
        self.config = config or TrainConfig()
        self.clock = clock
        self._subscribers: list[Publish] = []
        # Called in the training thread between steps with the session (live views), and
        # at the end of each epoch with (session, record, validation predictions).
        self.step_hooks: list[Callable[["TrainingSession"], None]] = []
        self.epoch_hooks: list[Callable[["TrainingSession", dict, torch.Tensor], None]] = []
        # Called (under the lock) just before a run with steps is replaced by a new one, while
        # the outgoing run (trainer, history, epochs) is still in place: the runs store keeps it.
        self.run_end_hooks: list[Callable[["TrainingSession"], None]] = []
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._thread: Optional[threading.Thread] = None
        self._closing = False
        self.run_id = 0
        self.notice: Optional[str] = None
        self._new_run()

    # ---- subscription -------------------------------------------------------------------
    def subscribe(self, publish: Publish) -> None:
        self._subscribers.append(publish)

    def _publish(self, event: str, payload: dict) -> None:
        for publish in list(self._subscribers):
            try:
                publish(event, payload)
            except Exception:  # one failing view must not stop the run or the other viewers
                log.exception("a subscriber failed on %r", event)

    @staticmethod
    def _call_hooks(hooks: list, *args) -> None:
        for hook in list(hooks):
            try:
                hook(*args)
            except Exception:  # a feature's failure must not stop the training thread
                log.exception("hook %r failed", hook)

    # ---- the run's state ------------------------------------------------------------------
    def _new_run(self) -> None:
        if self.run_id and self.trainer.global_step > 0:
            self._call_hooks(self.run_end_hooks, self)
        self.trainer = Trainer(self.config, self.dataset.train.images, self.dataset.train.labels,
                               self.device)
        self.status = "idle"
        self.run_id += 1
        self.history: list[dict] = []  # metrics points for the curves
        self._history_stride = 1  # keep every n-th metrics point (doubles at each thinning)
        self._history_count = 0  # metrics points so far in this run
        self._history_tail_extra = False  # the newest point is shown but not due to be kept
        self.epochs: list[dict] = []  # one record per finished epoch
        self.weights_origin: Optional[str] = None  # words, when the run started from loaded weights
        self._window = BatchStats()  # batches since the last metrics message
        self._epoch_stats = BatchStats()  # batches of the current epoch
        self._window_started = self.clock()
        self._last_metrics_at = 0.0
        self._samples_per_second = 0.0
        self.started_at: Optional[float] = None

    def state(self) -> dict:
        """Everything a viewer needs to draw the page, the curve history included."""
        with self._lock:
            trainer = self.trainer
            return {
                "status": self.status,
                "run_id": self.run_id,
                "config": self.config.model_dump(),
                "live_fields": sorted(LIVE_FIELDS),
                "epoch": trainer.epoch,
                "epoch_progress": trainer.epoch_progress(),
                "step": trainer.global_step,
                "total_steps": trainer.global_step + trainer.remaining_steps(),
                "progress": trainer.progress(),
                "eta_seconds": self._eta_seconds(),
                "samples_per_second": self._samples_per_second,
                "dataset": self.dataset.info(),
                "model": trainer.model.summary(),
                "device": str(self.device),
                "notice": self.notice,
                "weights_origin": self.weights_origin,
                "history": list(self.history),
                "epochs": list(self.epochs),
            }

    def _restart_rate_window(self) -> None:
        """Samples/second counts from now, not from a pause (which would read as slowness)."""
        self._window = BatchStats()
        self._window_started = self.clock()

    def _eta_seconds(self) -> Optional[float]:
        trainer = self.trainer
        remaining = trainer.remaining_steps()
        if remaining == 0:
            return 0.0
        if self.config.steps_per_second:
            pace = self.config.steps_per_second
            measured = self._samples_per_second / self.config.batch_size
            rate = min(pace, measured) if measured > 0 else pace
            return remaining / rate
        if self._samples_per_second > 0:
            return remaining * self.config.batch_size / self._samples_per_second
        return None

    def _broadcast_state(self) -> dict:
        state = self.state()
        self._publish("state", state)
        return state

    # ---- control --------------------------------------------------------------------------
    def _validated(self, changes) -> TrainConfig:
        if changes is None:
            return self.config
        try:
            return self.config.updated(changes)
        except ValidationError as err:
            raise ConfigError(describe_validation_error(err)) from None

    def start(self, changes: Optional[dict] = None) -> dict:
        """Start, or resume, the shared run. A finished run starts over with fresh weights."""
        with self._lock:
            new_config = self._validated(changes)
            if self.status == "running" and changes is None:
                return self.state()
            if self.status == "done":
                self.config = new_config
                self._new_run()
            elif changes is not None:
                self._apply_config(new_config)
            if self.trainer.finished:
                self._new_run()
            self.status = "running"
            self.notice = None
            self._restart_rate_window()
            if self.started_at is None:
                self.started_at = time.time()
            self._ensure_thread()
            self._wake.notify_all()
            return self._broadcast_state()

    def pause(self) -> dict:
        with self._lock:
            if self.status == "running":
                self.status = "paused"
                self._flush_metrics(force=True)
            return self._broadcast_state()

    def step(self, batches: int = 1) -> dict:
        """Pause (if running) and train exactly `batches` mini-batches."""
        with self._lock:
            if self.status == "done" or self.trainer.finished:
                raise SessionError("the run is finished: press Reset (or Start for a new run)")
            if self.started_at is None:
                self.started_at = time.time()
            self.status = "paused"
            self._restart_rate_window()
            for _ in range(batches):
                if not self._train_one_step():
                    break
            self._flush_metrics(force=True)
            if self.status == "paused" and self.trainer.finished:
                self.status = "done"
            return self._broadcast_state()

    def reset(self, changes: Optional[dict] = None) -> dict:
        """Throw the run away and start from fresh weights (with `changes` to the setup)."""
        with self._lock:
            self.config = self._validated(changes)
            self.notice = None
            self._new_run()
            return self._broadcast_state()

    def start_from_weights(self, state_dict: dict, changes: Optional[dict] = None,
                           origin: Optional[str] = None) -> dict:
        """Like reset, but the new run starts from `state_dict` (checked by the caller to fit
        the new setup) instead of fresh weights: an uploaded or restored checkpoint. `origin`
        says where they came from (the page asks before a setup link replaces them)."""
        with self._lock:
            config = self._validated(changes)
            self.config = config
            self.notice = None
            self._new_run()
            self.trainer.model.load_state_dict(state_dict)
            self.weights_origin = origin or "loaded from a checkpoint"
            return self._broadcast_state()

    def with_model(self, fn: Callable):
        """fn(model, trainer) between training steps, never mid-update (evaluation, saving)."""
        with self._lock:
            return fn(self.trainer.model, self.trainer)

    def update_config(self, changes: dict) -> dict:
        with self._lock:
            self._apply_config(self._validated(changes))
            return self._broadcast_state()

    def _apply_config(self, new_config: TrainConfig) -> None:
        changed = self.config.changed_fields(new_config)
        model_fields = sorted(changed - LIVE_FIELDS)
        if model_fields and self.trainer.global_step > 0 and self.status in ("running", "paused"):
            raise SessionError(
                f"{', '.join(model_fields)} can only change with a new model: press Reset "
                f"(or send train:reset with the new config); nothing was changed")
        self.config = new_config
        if model_fields:
            self._new_run()
            return
        self.trainer.apply_live_config(new_config)
        if self.trainer.finished and self.status in ("running", "paused"):
            self.status = "done"
        elif not self.trainer.finished and self.status == "done":
            self.status = "paused"  # more epochs were asked for: Start carries on

    # ---- prediction -------------------------------------------------------------------------
    def predict(self, pixels: np.ndarray) -> dict:
        """Run the live model on one 784-pixel input (0..1, 1 = ink)."""
        model = self.trainer.model  # a reference: a concurrent reset swaps it, never mutates it
        x = torch.as_tensor(pixels, dtype=torch.float32).reshape(1, -1).to(self.device)
        trace = model.trace(x)
        probabilities, logits, pixels_in, *hidden_layers = answer_values(
            trace.probabilities[0], trace.logits[0], x[0], *(a[0] for a in trace.activations))
        return {
            "prediction": int(trace.probabilities[0].argmax()),
            "probabilities": probabilities,
            "logits": logits,
            "hidden": hidden_layers[0],
            "hidden_layers": hidden_layers,
            "input": pixels_in,
        }

    # ---- the training thread -------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="training", daemon=True)
            self._thread.start()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        next_step_at = self.clock()
        while True:
            with self._wake:
                while not self._closing and self.status != "running":
                    self._wake.wait()
                    next_step_at = self.clock()
                if self._closing:
                    return
                pace = self.config.steps_per_second
                chunk_end = self.clock() + FULL_SPEED_CHUNK_S
                try:
                    while True:
                        self._train_one_step()
                        if pace or self.status != "running" or self.clock() >= chunk_end:
                            break
                except Exception as err:  # pause with the reason, not "running" with no thread
                    log.exception("training step failed")
                    self.status = "paused"
                    self.notice = (f"Training stopped by an error in the server ({type(err).__name__}: "
                                   f"{err}); the run was paused. The server log has the details.")
                    self._broadcast_state()
                self._flush_metrics()
                self._call_hooks(self.step_hooks, self)
                if self.status == "running" and self.trainer.finished:
                    self.status = "done"
                    self._flush_metrics(force=True)
                    self._broadcast_state()
            if pace:
                next_step_at += 1.0 / pace
                delay = next_step_at - self.clock()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -0.25:
                    next_step_at = self.clock()  # fell behind (slow machine): don't burst
            else:
                time.sleep(0)  # let request threads in between chunks

    def _train_one_step(self) -> bool:
        """One mini-batch under the lock; epoch ends and divergence handled. False = stop."""
        stats = self.trainer.train_batches(1)
        if stats.diverged:
            self.status = "paused"
            self.notice = (
                f"Training diverged at step {self.trainer.global_step}: the loss became NaN or "
                f"infinite with learning rate {self.config.lr:g}. The run was paused. Try a "
                f"smaller learning rate (for example {self.config.lr / 10:g}) and press Reset.")
            self._flush_metrics(force=True)
            self._broadcast_state()
            return False
        self._window.add(stats)
        self._epoch_stats.add(stats)
        if stats.epochs_completed:
            self._end_epoch()
        return not self.trainer.finished

    def _end_epoch(self) -> None:
        validation = self.dataset.validation
        val_loss, val_accuracy, predictions = self.trainer.evaluate(validation.images, validation.labels)
        record = {
            "epoch": self.trainer.epoch,
            "step": self.trainer.global_step,
            "train_loss": self._epoch_stats.loss,
            "train_accuracy": self._epoch_stats.accuracy,
            "val_loss": val_loss,
            "val_accuracy": val_accuracy,
        }
        self._epoch_stats = BatchStats()
        self.epochs.append(record)
        self._publish("epoch", record)
        self._call_hooks(self.epoch_hooks, self, record, predictions)

    def _record_history(self, point: dict) -> None:
        """Keep every stride-th point, and always the newest (a late joiner sees the curve up
        to now): a newest point that was not due to be kept is replaced by the next one."""
        if self._history_tail_extra:
            self.history[-1] = point
        else:
            self.history.append(point)
        self._history_count += 1
        self._history_tail_extra = self._history_count % self._history_stride != 0
        if len(self.history) > HISTORY_LIMIT:
            self.history = thin_history(self.history)
            self._history_stride *= 2

    def _flush_metrics(self, force: bool = False) -> None:
        now = self.clock()
        if not force and now - self._last_metrics_at < METRICS_INTERVAL_S:
            return
        window = self._window
        if window.batches == 0:
            return
        elapsed = now - self._window_started
        if elapsed > 0:
            self._samples_per_second = window.samples / elapsed
        point = {
            "step": self.trainer.global_step,
            "epoch": self.trainer.epoch_progress(),
            "loss": window.loss,
            "accuracy": window.accuracy,
        }
        self._record_history(point)
        self._publish("metrics", {
            **point,
            "lr": self.config.lr,
            "batch_size": self.config.batch_size,
            "samples_per_second": self._samples_per_second,
            "progress": self.trainer.progress(),
            "eta_seconds": self._eta_seconds(),
            "total_steps": self.trainer.global_step + self.trainer.remaining_steps(),
            "run_id": self.run_id,
        })
        self._window = BatchStats()
        self._window_started = now
        self._last_metrics_at = now

