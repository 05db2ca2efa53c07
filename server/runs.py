"""Every training run, kept: setup, curves, final scores and last weights, in SQLite.

`RunStore` is the database (one file in the data directory, so runs survive restarts).
`server/engine/recorder.py` writes what happens to a run into it. No Flask here.
"""
from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

from .errors import UserError

DB_NAME = "runs.sqlite3"
NAME_MAX = 80
LIST_LIMIT = 100  # the runs list shows the newest this many (it goes to every viewer)
# Runs whose server stopped while they were under way are marked so on the next start.
UNFINISHED = ("running", "paused", "idle")

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


class RunError(UserError):
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
