"""Every training run, kept: setup, curves, final scores and last weights.

`RunStore` (server/engine/store.py) is the database (SQLite in the data directory by default,
so runs survive restarts).
`RunRecorder` watches the shared session and writes what happens: a run is recorded from its
first training step, its curves and scores are saved at each epoch end, on pause and when it
ends (finished, or replaced by a reset), and its weights with them, so any run's checkpoint
can be restored later. No Flask here.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Optional

import torch

from .checkpoints import state_dict_bytes
# The store moved to the engine; these names stay importable from here for existing callers.
from .engine.store import (DB_NAME, LIST_LIMIT, MAX_RUN_ID, NAME_MAX, UNFINISHED, RunError,  # noqa: F401
                           RunListing, RunStore, StoreError, StoreFullError, StoreReadOnlyError, checked_id,
                           clean_points, describe_setup, finite)

# While training runs, epoch ends save the run (curves, weights) at most this often.
EPOCH_SAVE_INTERVAL_S = 2.0


class RunRecorder:
    """Records the shared session's runs into a RunStore. Its callbacks run in the session's
    threads (under the session's lock), so they only do short writes."""

    def __init__(self, store: RunStore, session, on_change: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.session = session
        self.on_change = on_change  # the runs list changed (the web layer tells viewers)
        self._lock = threading.RLock()
        self._session_run: Optional[int] = None  # session.run_id being recorded
        self._record_id: Optional[int] = None  # its id in the store
        self._config: Optional[dict] = None  # the setup in force, to note live changes
        self._config_changes: list[dict] = []
        self._origins: dict[int, str] = {}  # session run_id -> where its first weights came from
        self.clock = clock
        self._last_epoch_save_at = float("-inf")
        session.subscribe(self._on_event)
        session.epoch_hooks.append(self._on_epoch)
        session.run_end_hooks.append(self._on_run_end)

    @property
    def live_record_id(self) -> Optional[int]:
        """The store id of the run under way (None before its first step)."""
        with self._lock:
            return self._record_id if self._session_run == self.session.run_id else None

    def forget(self, record_id: int) -> None:
        """A record was deleted: if it is the live run's, stop recording that run."""
        with self._lock:
            if self._record_id == record_id:
                self._record_id = None

    def set_origin(self, session_run_id: int, origin: str) -> None:
        """Note where a run's weights came from (a checkpoint) before its first step."""
        with self._lock:
            self._origins[session_run_id] = origin

    # ---- session callbacks ------------------------------------------------------------------
    def _on_event(self, event: str, payload: dict) -> None:
        if event == "metrics":
            self._ensure_record(payload["run_id"])
        elif event == "state" and payload["run_id"] == self._session_run and self._record_id is not None:
            # A state broadcast is a control action (start, pause, step, live change) or the
            # run's end: rare enough to save each time; the weights when training stands still.
            self._save(with_weights=payload["status"] != "running")

    def _on_epoch(self, session, record: dict, predictions: torch.Tensor) -> None:
        self._ensure_record(session.run_id)
        # At full speed an epoch ends every ~0.3 s and a save (curves + weights, ~18 ms) in the
        # training thread would cost 5% of its throughput: save at most every few seconds.
        # Every control action and the run's end still save at once (_on_event, _on_run_end).
        now = self.clock()
        if now - self._last_epoch_save_at >= EPOCH_SAVE_INTERVAL_S:
            self._last_epoch_save_at = now
            self._save(with_weights=True)

    def _on_run_end(self, session) -> None:
        # The outgoing run is still in place: save it a last time, weights included.
        self._ensure_record(session.run_id)
        if self._session_run == session.run_id:
            status = "done" if session.trainer.finished else "stopped"
            self._save(with_weights=True, status=status)
            self._session_run = None
            self._record_id = None

    # ---- writing ------------------------------------------------------------------------------
    def _ensure_record(self, session_run_id: int) -> None:
        with self._lock:
            if self._session_run == session_run_id:
                return
            session = self.session
            # The trainer's config: during a reset, session.config is already the next run's.
            config = session.trainer.config.model_dump()
            self._session_run = session_run_id
            self._config = config
            self._config_changes = []
            self._record_id = self.store.create(
                config=config, dataset=session.dataset.info()["name"],
                origin=self._origins.pop(session_run_id, None), status=session.status)
        self.on_change()

    def _note_config(self, config: dict, step: int) -> None:
        with self._lock:
            if self._config is None:
                return
            # The pace is how fast viewers watch, not part of the experiment.
            changes = {k: v for k, v in config.items() if self._config.get(k) != v and k != "steps_per_second"}
            if changes:
                self._config_changes.append({"step": step, "changes": changes})
            self._config = config

    def _save(self, *, with_weights: bool = False, status: Optional[str] = None) -> None:
        with self._lock:
            record_id = self._record_id
            if record_id is None:
                return
            session = self.session
            self._note_config(session.trainer.config.model_dump(), session.trainer.global_step)
            progress = dict(status=status or session.status, steps=session.trainer.global_step,
                            history=list(session.history), epochs=list(session.epochs), config=self._config,
                            config_changes=self._config_changes, note=session.notice)
            # With weights: progress and weights in one transaction (never from two moments).
            kept = (self.store.save_progress(record_id, **progress, weights=state_dict_bytes(session.trainer.model))
                    if with_weights else self.store.update(record_id, **progress))
            if not kept:  # deleted by a viewer: stop recording this run
                self._record_id = None
                return
        self.on_change()
