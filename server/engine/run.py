"""A training run: the single owner of its state, its training thread and its pace.

Controls (start, pause, step, reset, setup changes, new weights) act on this object; the
training loop runs in one background thread. What happens is told through one `publish(event,
payload)` callable (plain data), and the engine's own features (live views, evaluation, run
recording, the predictions' replica) are called at fixed points through `RunFeature` methods.
No web here: the engine process hands what is published to the web tier.

Threads: control calls and the training loop take `_lock`, one training chunk at a time, so a
reset never lands mid-step. No control call trains: `step(n)` asks the training thread for n
steps and answers when they are done or after a moment, whichever comes first; a pause
interrupts them (so no request can hold the run, whatever the network's size).
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Callable, Optional

import torch

from ..cores import pin_this_thread, yield_to_paced_runs
from ..errors import RunError
from ..link.names import SHARED
from ..experiment import DEFAULT_PACE, LIVE_FIELDS, PACE_FIELD, ConfigError, TrainConfig, checked_pace, split_pace
from .history import CurveHistory
from .model import WeightsSnapshot
from .trainer import BatchStats, Trainer

log = logging.getLogger(__name__)

METRICS_INTERVAL_S = 0.1  # at most ~10 metrics messages per second, however fast training runs
FULL_SPEED_CHUNK_S = 0.005  # at full speed, the lock is let go (and features called) this often
STEPPING_METRICS_INTERVAL_S = 1.0  # while steps asked for run (they end with a point anyway)
STEP_ANSWER_WAIT_S = 0.5  # train:step answers when its steps are done, or after this, if sooner

Publish = Callable[[str, dict], None]


class RunFeature:
    """An engine feature of a run. Every method is called in the training thread or under the
    run's lock, when no training step is under way; each must be quick (it delays training)."""

    def on_step(self, run: "TrainingRun") -> None:
        """After each training chunk (every step at a pace; every few ms at full speed)."""

    def on_epoch(self, run: "TrainingRun", record: dict, predictions: torch.Tensor) -> None:
        """At the end of an epoch, with the validation record and the validation predictions."""

    def on_state(self, run: "TrainingRun", state: dict) -> None:
        """After every control action or change of status (state is what was published)."""

    def on_run_end(self, run: "TrainingRun") -> None:
        """Just before a run with steps is replaced by a new one (the old one is still in place)."""

    def on_close(self, run: "TrainingRun") -> None:
        """The engine is stopping: the run is paused and will not train again in this process."""


class TrainingRun:
    def __init__(self, dataset, *, device: torch.device | str = "cpu", config: Optional[TrainConfig] = None,
                 pace: Optional[float] = DEFAULT_PACE, key: str = SHARED, clock=time.monotonic,
                 cores: Optional[list[int]] = None):
        self.key = key  # which run this is for the web tier (SHARED: the one everyone watches)
        self.cores = cores  # the CPU cores its training thread runs on (None: wherever)
        self.dataset = dataset
        self.device = torch.device(device)
        self.config = config or TrainConfig()
        self.pace = pace  # steps per second; None = full speed (how fast people watch, not the setup)
        self.clock = clock
        self.publish: Publish = lambda event, payload: None
        # The engine's memory budget (memory_budget.py): called with a new setup before its
        # network is built; refuses in words (a LimitError) when it would not fit.
        self.admit: Callable[..., None] = lambda config, force=False: None
        self.features: list[RunFeature] = []
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self._thread: Optional[threading.Thread] = None
        self._closing = False
        self._steps_wanted = 0  # steps asked for by step(n), done by the training thread
        self._steps_done_event = threading.Condition(self._lock)
        self.run_id = 0
        self.notice: Optional[str] = None
        self.queue_position: Optional[int] = None  # a private run waiting for a place to train
        self._new_run()

    # ---- features and publishing -----------------------------------------------------------
    def _call(self, method: str, *args) -> None:
        for feature in list(self.features):
            try:
                getattr(feature, method)(self, *args)
            except Exception:  # a feature's failure must not stop training or the other features
                log.exception("%s.%s failed", type(feature).__name__, method)

    def _publish(self, event: str, payload: dict) -> None:
        try:
            self.publish(event, payload)
        except Exception:
            log.exception("publishing %r failed", event)

    @contextlib.contextmanager
    def between_steps(self):
        """Hold the run still: no training step runs inside (waits for at most one chunk)."""
        with self._lock:
            yield self

    # ---- the run's state ----------------------------------------------------------------------
    def _new_run(self) -> None:
        if self.run_id and self.trainer.global_step > 0:
            self._call("on_run_end")
        self.trainer = Trainer(self.config, self.dataset.train.images, self.dataset.train.labels, self.device)
        self.status = "idle"
        self.run_id += 1
        self._steps_wanted = 0
        self.curve = CurveHistory()
        self.epochs: list[dict] = []  # one record per finished epoch
        self.weights_origin: Optional[str] = None  # words, when the run started from loaded weights
        self._window = BatchStats()  # batches since the last metrics message
        self._epoch_stats = BatchStats()  # batches of the current epoch
        self._window_started = self.clock()
        self._last_metrics_at = 0.0
        self._samples_per_second = 0.0

    @property
    def history(self) -> list[dict]:
        """The curve points kept so far (see CurveHistory)."""
        return self.curve.points

    @property
    def model(self):
        return self.trainer.model

    def snapshot(self, *, grads: bool = False) -> dict:
        """The run as it is now, for work done off the training thread (call between steps):
        {"run_id", "step", "epoch" (float), "status", "weights": WeightsSnapshot}."""
        return {"run_id": self.run_id, "step": self.trainer.global_step, "epoch": self.trainer.epoch_progress(),
                "status": self.status, "weights": WeightsSnapshot.of(self.trainer.model, grads=grads)}

    def replica_content(self):
        """What the predictions' replica holds (replica_publisher.py): (sizes, activation, a function
        that gives each layer's weight then bias as float32 arrays, the input image or None for
        28×28 grey); None: nothing to predict with."""
        def arrays():
            with torch.no_grad():
                return [tensor.detach().to("cpu").numpy() for name in self.model.layer_names + ["output"]
                        for tensor in (getattr(self.model, name).weight, getattr(self.model, name).bias)]
        return self.config.architecture.sizes, self.config.activation, arrays, None

    @property
    def step_count(self) -> int:
        return self.trainer.global_step

    def state(self) -> dict:
        """Everything a viewer needs to draw the page, the curve history included."""
        with self._lock:
            trainer = self.trainer
            return {
                "status": self.status,
                "run_id": self.run_id,
                # The pace inside the config too: what clients of the first protocol read.
                "config": {**self.config.model_dump(), PACE_FIELD: self.pace},
                "pace": self.pace,
                "live_fields": sorted(LIVE_FIELDS | {PACE_FIELD}),
                "epoch": trainer.epoch,
                "epoch_progress": trainer.epoch_progress(),
                "step": trainer.global_step,
                "total_steps": trainer.global_step + trainer.remaining_steps(),
                "progress": trainer.progress(),
                "eta_seconds": self._eta_seconds(),
                "samples_per_second": self._samples_per_second,
                "dataset": self.dataset.info(),
                "model": self.config.architecture.summary(),
                "device": str(self.device),
                "notice": self.notice,
                "queue_position": self.queue_position,
                "weights_origin": self.weights_origin,
                "history": self.curve.copy(),
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
        if self.pace:
            measured = self._samples_per_second / self.config.batch_size
            rate = min(self.pace, measured) if measured > 0 else self.pace
            return remaining / rate
        if self._samples_per_second > 0:
            return remaining * self.config.batch_size / self._samples_per_second
        return None

    def _broadcast_state(self) -> dict:
        state = self.state()
        self._publish("state", state)
        self._call("on_state", state)
        return state

    def announce(self) -> dict:
        """Tell everyone the state as it is now (e.g. after a queue moved)."""
        with self._lock:
            return self._broadcast_state()

    # ---- control ----------------------------------------------------------------------------
    def _validated(self, changes) -> tuple[TrainConfig, bool, Optional[float]]:
        """(the new setup, whether a pace was given, the pace) for `changes` (None: no change)."""
        if changes is not None and not isinstance(changes, dict):
            raise ConfigError("config must be an object of setup fields, e.g. {\"lr\": 0.01}")
        setup, has_pace, pace = split_pace(changes)
        config = self.config if not setup else self.config.updated(setup)
        return config, has_pace, pace

    def start(self, changes: Optional[dict] = None) -> dict:
        """Start, or resume, the run. A finished run starts over with fresh weights."""
        with self._lock:
            new_config, has_pace, pace = self._validated(changes)
            if has_pace:
                self.pace = pace
            if self.status == "running" and changes is None:
                return self.state()
            if self.status == "done":
                self.admit(new_config)
                self.config = new_config
                self._new_run()
            elif new_config != self.config:
                self._apply_config(new_config)
            if self.trainer.finished:
                self._new_run()
            self.status = "running"
            self._steps_wanted = 0
            self.notice = None
            self._restart_rate_window()
            self._ensure_thread()
            self._wake.notify_all()
            return self._broadcast_state()

    def pause(self) -> dict:
        with self._lock:
            if self.status == "running" or self._steps_wanted:
                self.status = "paused"
                self._steps_wanted = 0  # a pause interrupts steps asked for
                self._flush_metrics(force=True)
            return self._broadcast_state()

    def step(self, batches: int = 1, *, wait_s: float = STEP_ANSWER_WAIT_S) -> dict:
        """Pause (if running) and train exactly `batches` mini-batches, in the training thread.
        Answers when they are done, or after `wait_s` with the state so far (the rest follows;
        a state message says when they are done)."""
        with self._lock:
            if self.status == "done" or self.trainer.finished:
                raise RunError("the run is finished: press Reset (or Start for a new run)")
            self.status = "paused"
            self._restart_rate_window()
            self._last_metrics_at = self.clock()  # the steps' point comes when they are done
            self._steps_wanted += batches
            self._ensure_thread()
            self._wake.notify_all()
            deadline = self.clock() + wait_s
            while self._steps_wanted and self.status == "paused" and not self._closing:
                left = deadline - self.clock()
                if left <= 0:
                    return self.state()
                self._steps_done_event.wait(timeout=left)
            return self.state()

    def reset(self, changes: Optional[dict] = None) -> dict:
        """Throw the run away and start from fresh weights (with `changes` to the setup)."""
        with self._lock:
            config, has_pace, pace = self._validated(changes)
            self.admit(config)
            if has_pace:
                self.pace = pace
            self.config = config
            self.notice = None
            self._new_run()
            return self._broadcast_state()

    def start_from_weights(self, state_dict: dict, config: Optional[TrainConfig] = None,
                           origin: Optional[str] = None) -> dict:
        """Like reset, but the new run starts from `state_dict` (checked by the caller to fit
        `config`) instead of fresh weights: an uploaded or restored checkpoint. `origin` says
        where they came from (the page asks before a setup link replaces them)."""
        with self._lock:
            self.admit(config or self.config)
            self.config = config or self.config
            self.notice = None
            self._new_run()
            self.trainer.model.load_state_dict(state_dict)
            self.weights_origin = origin or "loaded from a checkpoint"
            return self._broadcast_state()

    def set_pace(self, pace) -> dict:
        with self._lock:
            self.pace = checked_pace(pace)
            self._wake.notify_all()
            return self._broadcast_state()

    def update_config(self, changes: dict) -> dict:
        with self._lock:
            config, has_pace, pace = self._validated(changes)
            if has_pace:
                self.pace = pace
            if config != self.config:
                self._apply_config(config)
            self._wake.notify_all()
            return self._broadcast_state()

    def _apply_config(self, new_config: TrainConfig) -> None:
        changed = self.config.changed_fields(new_config)
        model_fields = sorted(changed - LIVE_FIELDS)
        if model_fields and self.trainer.global_step > 0 and self.status in ("running", "paused"):
            raise RunError(
                f"{', '.join(model_fields)} can only change with a new model: press Reset "
                f"(or send train:reset with the new config); nothing was changed")
        if model_fields:
            self.admit(new_config)
        self.config = new_config
        if model_fields:
            self._new_run()
            return
        self.trainer.apply_live_config(new_config)
        if self.trainer.finished and self.status in ("running", "paused"):
            self.status = "done"
        elif not self.trainer.finished and self.status == "done":
            self.status = "paused"  # more epochs were asked for: Start carries on

    def restore(self, *, status: str, config: TrainConfig, state_dict: dict, history: list[dict],
                epochs: list[dict], step: int, notice: Optional[str]) -> dict:
        """Carry on a recorded run (after its engine stopped): its setup, weights, curves and
        step count; paused. The optimizer's state was not recorded and starts afresh."""
        with self._lock:
            self.admit(config, force=True)  # a run carried on is not refused: it was running
            self.config = config
            self._new_run()
            self.trainer.model.load_state_dict(state_dict)
            self.trainer.fast_forward(step)
            self.curve.extend_restored(history)
            self.epochs = list(epochs)
            self.status = "done" if self.trainer.finished else ("paused" if status != "idle" else "idle")
            self.notice = notice
            return self._broadcast_state()

    # ---- the training thread --------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name=f"training-{self.key}", daemon=True)
            self._thread.start()

    def close(self) -> None:
        """Stop the training thread (after its current step) and tell the features."""
        with self._lock:
            if self.status == "running":
                self.status = "paused"
                self._flush_metrics(force=True)
            self._steps_wanted = 0
            self._closing = True
            self._wake.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        with self._lock:
            self._call("on_close")

    def _wants_training(self) -> bool:
        return self.status == "running" or (self.status == "paused" and self._steps_wanted > 0)

    def _loop(self) -> None:
        pin_this_thread(self.cores)
        next_step_at = self.clock()
        yielding = False  # whether this thread runs at the lower priority of full speed
        while True:
            with self._wake:
                while not self._closing and not self._wants_training():
                    self._wake.wait()
                    next_step_at = self.clock()
                if self._closing:
                    return
                stepping = self.status == "paused"
                pace = None if stepping else self.pace
                if yielding != (pace is None):
                    yielding = pace is None
                    yield_to_paced_runs(yielding)
                chunk_end = self.clock() + FULL_SPEED_CHUNK_S
                try:
                    while True:
                        more = self._train_one_step()
                        if stepping:
                            self._steps_wanted = max(0, self._steps_wanted - 1)
                            if not more:
                                self._steps_wanted = 0
                        if pace or not self._wants_training() or self.clock() >= chunk_end:
                            break
                except Exception as err:  # pause with the reason, not "running" with no thread
                    log.exception("training step failed")
                    self.status = "paused"
                    self._steps_wanted = 0
                    self.notice = (f"Training stopped by an error in the server ({type(err).__name__}: "
                                   f"{err}); the run was paused. The server log has the details.")
                    self._broadcast_state()
                # Steps asked for come as one curve point when they are done (or one a second,
                # for long ones); a running run's points come every METRICS_INTERVAL_S.
                self._flush_metrics(interval=STEPPING_METRICS_INTERVAL_S if stepping else METRICS_INTERVAL_S)
                self._call("on_step")
                if self.status == "running" and self.trainer.finished:
                    self.status = "done"
                    self._flush_metrics(force=True)
                    self._broadcast_state()
                elif stepping and self._steps_wanted == 0:
                    if self.status == "paused" and self.trainer.finished:
                        self.status = "done"
                    self._flush_metrics(force=True)
                    self._broadcast_state()
                    self._steps_done_event.notify_all()
            if pace:
                next_step_at += 1.0 / pace
                delay = next_step_at - self.clock()
                if delay > 0:
                    time.sleep(delay)
                elif delay < -0.25:
                    next_step_at = self.clock()  # fell behind (slow machine): don't burst
            else:
                time.sleep(0)  # let the engine's other threads in between chunks

    def _train_one_step(self) -> bool:
        """One mini-batch under the lock; epoch ends and divergence handled. False = stop."""
        stats = self.trainer.train_batches(1)
        if stats.diverged:
            self.status = "paused"
            self._steps_wanted = 0
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
        self._call("on_epoch", record, predictions)

    def _flush_metrics(self, force: bool = False, interval: float = METRICS_INTERVAL_S) -> None:
        now = self.clock()
        if not force and now - self._last_metrics_at < interval:
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
        self.curve.add(point)
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
