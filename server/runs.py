"""Every training run, kept: setup, curves, final scores and last weights, in SQLite.

`RunStore` is the database (one file in the data directory, so runs survive restarts).
`RunRecorder` watches the shared session and writes what happens: a run is recorded from its
first training step, its curves and scores are saved at each epoch end, on pause and when it
ends (finished, or replaced by a reset), and its weights with them, so any run's checkpoint
can be restored later. No Flask here.
"""
from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Optional

import torch

from .checkpoints import state_dict_bytes
from .session import SessionError

DB_NAME = "runs.sqlite3"
NAME_MAX = 80
LIST_LIMIT = 100  # the runs list shows the newest this many (it goes to every viewer)
# Runs whose server stopped while they were under way are marked so on the next start.
UNFINISHED = ("running", "paused", "idle")
# While training runs, epoch ends save the run (curves, weights) at most this often.
EPOCH_SAVE_INTERVAL_S = 2.0

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    status TEXT NOT NULL,
    note TEXT,
    origin TEXT,
    dataset TEXT NOT NULL,
    config TEXT NOT NULL,
    config_changes TEXT NOT NULL DEFAULT '[]',
    steps INTEGER NOT NULL DEFAULT 0,
    epochs_done INTEGER NOT NULL DEFAULT 0,
    train_loss REAL, train_accuracy REAL, val_loss REAL, val_accuracy REAL,
    best_val_accuracy REAL,
    history TEXT NOT NULL DEFAULT '[]',
    epochs TEXT NOT NULL DEFAULT '[]'
);
CREATE TABLE IF NOT EXISTS checkpoints (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    saved_at REAL NOT NULL,
    data BLOB NOT NULL
);
"""

SUMMARY_COLUMNS = ("id", "name", "created_at", "updated_at", "status", "note", "origin", "dataset",
                   "config", "config_changes", "steps", "epochs_done", "train_loss", "train_accuracy",
                   "val_loss", "val_accuracy", "best_val_accuracy")


class RunError(SessionError):
    """A runs request that cannot be done (unknown run, bad name), in words for people."""


MAX_RUN_ID = 2**63 - 1  # SQLite's INTEGER


def checked_id(run_id: int) -> int:
    """An id SQLite can hold; any other cannot name a run (and must not reach the driver)."""
    if not isinstance(run_id, int) or not 1 <= run_id <= MAX_RUN_ID:
        raise RunError(f"there is no run #{run_id}")
    return run_id


def finite(value) -> Optional[float]:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def clean_points(points: list[dict]) -> list[dict]:
    """Curve points with NaN/inf as None: JSON (and the browser) has no NaN."""
    return [{k: (finite(v) if isinstance(v, float) else v) for k, v in p.items()} for p in points]


def describe_setup(config: dict) -> str:
    """'256 sigmoid · adam lr 0.001 · logits · seed 0': what tells two runs apart."""
    hidden = "-".join(str(n) for n in config["hidden_sizes"])
    optimizer = config["optimizer"]
    if optimizer == "sgd":
        optimizer = f"sgd (momentum {config['momentum']:g})"
    parts = [f"{hidden} {config['activation']}", f"{optimizer} lr {config['lr']:g}",
             f"batch {config['batch_size']}", config["output"]]
    if config.get("weight_decay"):
        parts.append(f"wd {config['weight_decay']:g}")
    parts.append(f"seed {config['seed']}")
    return " · ".join(parts)


class RunStore:
    """The runs database. Each call opens its own connection: callers come from any thread."""

    def __init__(self, data_dir: Path | str):
        self.path = Path(data_dir) / DB_NAME
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        with self._db() as db:
            db.executescript(SCHEMA)
            # A run that was under way when the server stopped will never finish now.
            db.execute(f"UPDATE runs SET status = 'interrupted' WHERE status IN ({','.join('?' * len(UNFINISHED))})",
                       UNFINISHED)

    @contextmanager
    def _db(self):
        with self._lock:
            db = sqlite3.connect(self.path, timeout=10)
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA foreign_keys = ON")
            try:
                with db:  # one transaction: committed on success, rolled back on error
                    yield db
            finally:
                db.close()

    # ---- writing --------------------------------------------------------------------------
    def create(self, *, config: dict, dataset: str, origin: Optional[str] = None,
               name: Optional[str] = None, status: str = "running") -> int:
        now = time.time()
        with self._db() as db:
            cursor = db.execute(
                "INSERT INTO runs (name, created_at, updated_at, status, origin, dataset, config) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (name or describe_setup(config), now, now, status, origin, dataset, json.dumps(config)))
            return int(cursor.lastrowid)

    def update(self, run_id: int, *, status: str, steps: int, history: list[dict], epochs: list[dict],
               config: dict, config_changes: list[dict], note: Optional[str] = None) -> bool:
        """Save a run's progress; False when the run is gone (deleted meanwhile)."""
        last = epochs[-1] if epochs else {}
        val_accuracies = [e["val_accuracy"] for e in epochs if finite(e.get("val_accuracy")) is not None]
        with self._db() as db:
            cursor = db.execute(
                "UPDATE runs SET updated_at = ?, status = ?, note = ?, steps = ?, epochs_done = ?, "
                "train_loss = ?, train_accuracy = ?, val_loss = ?, val_accuracy = ?, best_val_accuracy = ?, "
                "history = ?, epochs = ?, config = ?, config_changes = ? WHERE id = ?",
                (time.time(), status, note, steps, len(epochs),
                 finite(last.get("train_loss")), finite(last.get("train_accuracy")),
                 finite(last.get("val_loss")), finite(last.get("val_accuracy")),
                 max(val_accuracies) if val_accuracies else None,
                 json.dumps(clean_points(history)), json.dumps(clean_points(epochs)),
                 json.dumps(config), json.dumps(config_changes), run_id))
            return cursor.rowcount == 1

    def save_checkpoint(self, run_id: int, step: int, data: bytes) -> None:
        with self._db() as db:
            if db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                return  # deleted meanwhile
            db.execute("INSERT OR REPLACE INTO checkpoints (run_id, step, saved_at, data) VALUES (?, ?, ?, ?)",
                       (run_id, step, time.time(), data))

    def rename(self, run_id: int, name: str) -> dict:
        run_id = checked_id(run_id)
        name = " ".join(name.split())
        if not name:
            raise RunError("a run's name cannot be empty")
        if len(name) > NAME_MAX:
            raise RunError(f"a run's name can have at most {NAME_MAX} characters (this one has {len(name)})")
        with self._db() as db:
            if db.execute("UPDATE runs SET name = ? WHERE id = ?", (name, run_id)).rowcount != 1:
                raise RunError(f"there is no run #{run_id}")
        return self.get(run_id, curves=False)

    def delete(self, run_id: int) -> None:
        run_id = checked_id(run_id)
        with self._db() as db:
            if db.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount != 1:
                raise RunError(f"there is no run #{run_id}")

    # ---- reading --------------------------------------------------------------------------
    @staticmethod
    def _summary(row: sqlite3.Row, checkpoint_step: Optional[int]) -> dict:
        run = {key: row[key] for key in SUMMARY_COLUMNS}
        run["config"] = json.loads(run["config"])
        run["config_changes"] = json.loads(run["config_changes"])
        run["setup"] = describe_setup(run["config"])
        run["checkpoint_step"] = checkpoint_step
        return run

    def list(self, limit: int = LIST_LIMIT) -> list[dict]:
        with self._db() as db:
            rows = db.execute(
                f"SELECT {', '.join('r.' + c for c in SUMMARY_COLUMNS)}, c.step AS checkpoint_step "
                "FROM runs r LEFT JOIN checkpoints c ON c.run_id = r.id ORDER BY r.id DESC LIMIT ?",
                (limit,)).fetchall()
        return [self._summary(row, row["checkpoint_step"]) for row in rows]

    def get(self, run_id: int, *, curves: bool = True) -> dict:
        run_id = checked_id(run_id)
        with self._db() as db:
            row = db.execute(
                f"SELECT {', '.join('r.' + c for c in SUMMARY_COLUMNS)}, r.history, r.epochs, c.step AS checkpoint_step "
                "FROM runs r LEFT JOIN checkpoints c ON c.run_id = r.id WHERE r.id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunError(f"there is no run #{run_id}")
        run = self._summary(row, row["checkpoint_step"])
        if curves:
            run["history"] = json.loads(row["history"])
            run["epochs"] = json.loads(row["epochs"])
        return run

    def checkpoint(self, run_id: int) -> tuple[int, bytes]:
        """(step, torch.save bytes) of a run's last saved weights."""
        run_id = checked_id(run_id)
        with self._db() as db:
            if db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise RunError(f"there is no run #{run_id}")
            row = db.execute("SELECT step, data FROM checkpoints WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise RunError(f"run #{run_id} has no saved weights")
        return int(row["step"]), bytes(row["data"])


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
            kept = self.store.update(
                record_id, status=status or session.status, steps=session.trainer.global_step,
                history=list(session.history), epochs=list(session.epochs), config=self._config,
                config_changes=self._config_changes, note=session.notice)
            if not kept:  # deleted by a viewer: stop recording this run
                self._record_id = None
                return
            if with_weights:
                self.store.save_checkpoint(record_id, session.trainer.global_step,
                                           state_dict_bytes(session.trainer.model))
        self.on_change()
