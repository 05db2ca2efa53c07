"""Every run recorded as it goes: setup, curves, scores and weights into the run store.

A run is recorded from its first training step; its progress and weights are saved at epoch
ends (at most every few seconds while it trains), whenever it stands still (pause, step, finish),
when it is replaced by a new run, and when the engine stops. Called in the training thread or
under the run's lock, like every engine feature.

A save that fails (a full disk, a read-only data directory) is told in words (`problem`, and the
`on_problem` callback that the engine turns into a message for every page), the record keeps
saying how far its weights go, and saving is tried again.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional

import torch

from ..experiment import TrainConfig, split_pace
from .checkpoints import check_fits, read_state_dict, state_dict_bytes
from .run import RunFeature
from .records import RunStore

log = logging.getLogger(__name__)

# While training runs, epoch ends save the run (curves, weights) at most this often.
EPOCH_SAVE_INTERVAL_S = 2.0
RETRY_AFTER_S = 5.0  # after a failed save, the next try


def recorded_config(config: dict) -> TrainConfig:
    """A recorded run's setup (records made before the pace left the setup still carry it)."""
    setup, _, _ = split_pace(config)
    return TrainConfig().updated(setup)


def recorded_weights(saved: dict, data: bytes) -> tuple[TrainConfig, dict]:
    """A record's weights ready to load: the run's setup and a state_dict that fits it. `saved`:
    the record (store.get); `data`: its checkpoint's bytes (store.checkpoint). Refused in words
    (CheckpointError, UserError) when they cannot be read or do not fit the setup."""
    config = recorded_config(saved["config"])
    return config, check_fits(read_state_dict(data), config)


class RunRecorder(RunFeature):
    def __init__(self, store: RunStore, run, *, on_change: Callable[[], None] = lambda: None,
                 on_problem: Callable[[Optional[str]], None] = lambda words: None,
                 clock: Callable[[], float] = time.monotonic, owner: Optional[str] = None):
        self.store = store
        self.owner = owner  # a private run's owner id, kept with each record (None: the shared run)
        self.run = run
        self.on_change = on_change  # the runs list changed
        self.on_problem = on_problem  # a save failed (words), or works again (None)
        self.clock = clock
        self._lock = threading.RLock()
        self._run_id: Optional[int] = None  # run.run_id being recorded
        self._record_id: Optional[int] = None  # its id in the store
        self._config: Optional[dict] = None  # the setup in force, to note live changes
        self._config_changes: list[dict] = []
        self._origins: dict[int, str] = {}  # run_id -> where its first weights came from
        self._last_epoch_save_at = float("-inf")
        self.problem: Optional[str] = None
        self.close_status = "interrupted"  # what a run still under way is recorded as on close
        self._retry_at: Optional[float] = None

    @property
    def live_record_id(self) -> Optional[int]:
        """The store id of the run under way (None before its first step)."""
        with self._lock:
            return self._record_id if self._run_id == self.run.run_id else None

    def forget(self, record_id: int) -> None:
        """A record was deleted: if it is the live run's, stop recording that run."""
        with self._lock:
            if self._record_id == record_id:
                self._record_id = None

    def set_origin(self, run_id: int, origin: str) -> None:
        """Note where a run's weights came from (a checkpoint) before its first step."""
        with self._lock:
            self._origins[run_id] = origin

    def adopt(self, record_id: int, run_id: int, config: dict) -> None:
        """Go on recording into an existing record (a recorded run carried on)."""
        with self._lock:
            self._run_id, self._record_id, self._config = run_id, record_id, config
            self._config_changes = list(self.store.get(record_id, curves=False)["config_changes"])

    # ---- RunFeature -------------------------------------------------------------------------
    def on_step(self, run) -> None:
        if run.step_count > 0:
            self._ensure_record()
        if self._retry_at is not None and self.clock() >= self._retry_at:
            self._save(with_weights=True)

    def on_state(self, run, state: dict) -> None:
        # A state broadcast is a control action (start, pause, step, live change) or the run's
        # end: rare enough to save each time; the weights when training stands still.
        if state["run_id"] == self._run_id and self._record_id is not None:
            self._save(with_weights=state["status"] != "running")

    def on_epoch(self, run, record: dict, predictions: torch.Tensor) -> None:
        self._ensure_record()
        # At full speed an epoch ends every ~0.2 s and a save (curves + weights) in the training
        # thread would cost a few percent of its throughput: save at most every few seconds.
        now = self.clock()
        if now - self._last_epoch_save_at >= EPOCH_SAVE_INTERVAL_S:
            self._last_epoch_save_at = now
            self._save(with_weights=True)

    def on_run_end(self, run) -> None:
        # The outgoing run is still in place: save it a last time, weights included.
        self._ensure_record()
        if self._run_id == run.run_id:
            self._save(with_weights=True, status="done" if run.trainer.finished else "stopped")
            self._run_id = None
            self._record_id = None

    def on_close(self, run) -> None:
        """The engine stops: the run is recorded up to its last step, as interrupted (a new
        engine carries the shared run on from here)."""
        if self._run_id == run.run_id and self._record_id is not None:
            status = "done" if run.trainer.finished or run.status == "done" else self.close_status
            self._save(with_weights=True, status=status)

    # ---- writing ------------------------------------------------------------------------------
    def _ensure_record(self) -> None:
        run = self.run
        with self._lock:
            if self._run_id == run.run_id:
                return
            config = run.trainer.config.model_dump()
            self._run_id = run.run_id
            self._config = config
            self._config_changes = []
            try:
                self._record_id = self.store.create(
                    config=config, dataset=run.dataset.info()["name"],
                    origin=self._origins.pop(run.run_id, None), status=run.status, run_key=run.key, owner=self.owner)
            except Exception as err:
                self._record_id = None
                self._failed(err, "this run could not be recorded")
                return
        self.on_change()

    def _note_config(self, config: dict, step: int) -> None:
        if self._config is None:
            return
        changes = {k: v for k, v in config.items() if self._config.get(k) != v}
        if changes:
            self._config_changes.append({"step": step, "changes": changes})
        self._config = config

    def _save(self, *, with_weights: bool = False, status: Optional[str] = None) -> None:
        run = self.run
        with self._lock:
            record_id = self._record_id
            if record_id is None:
                return
            step = run.step_count
            self._note_config(run.trainer.config.model_dump(), step)
            progress = dict(status=status or run.status, steps=step, history=run.curve.copy(),
                            epochs=list(run.epochs), config=self._config, config_changes=self._config_changes,
                            note=run.notice)
            try:
                # With weights: progress and weights in one transaction (never from two moments).
                kept = (self.store.save_progress(record_id, **progress, weights=state_dict_bytes(run.trainer.model))
                        if with_weights else self.store.update(record_id, **progress))
            except Exception as err:
                if not with_weights:
                    self._failed(err, f"the run's progress at step {step} could not be saved")
                    return
                # The weights are the big part: the progress alone may still fit, and then the
                # record says how far its steps go, and (checkpoint_step, note) that its weights
                # are older. Never steps and weights from different moments without saying so.
                kept_weights = self._checkpoint_step(record_id)
                older = (f"the weights kept are from step {kept_weights}" if kept_weights is not None
                         else "no weights are kept")
                note = f"Saving the weights failed at step {step} ({err}): {older}; saving is tried again."
                try:
                    kept = self.store.update(record_id, **{**progress, "note": note})
                except Exception:
                    self._failed(err, f"the run's progress and weights from step {step} could not be saved")
                    return
                self._failed(err, f"the weights from step {step} could not be saved ({older}; the run's "
                                  f"record says so)")
                if not kept:
                    self._record_id = None
                return
            if not kept:  # deleted by a viewer: stop recording this run
                self._record_id = None
                return
            if self.problem is not None:
                self.problem = None
                self._retry_at = None
                self.on_problem(None)
        self.on_change()

    def _checkpoint_step(self, record_id: int) -> Optional[int]:
        try:
            return self.store.get(record_id, curves=False)["checkpoint_step"]
        except Exception:
            return None

    def _failed(self, err: Exception, what: str) -> None:
        log.warning("saving the run failed: %s", err)
        words = (f"Saving failed: {what} ({err}). Training goes on and saving is tried again every "
                 f"{RETRY_AFTER_S:g} s; free some disk space or fix the data directory.")
        self._retry_at = self.clock() + RETRY_AFTER_S
        if words != self.problem:
            self.problem = words
            self.on_problem(words)
