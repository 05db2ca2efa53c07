"""The runs database: every run's setup, curves, scores and last weights, through SQLAlchemy Core.

SQLite by default (`runs.sqlite3` in the data directory, one machine), PostgreSQL when given a
`postgresql://` URL (several machines). The schema is `metadata` in records_schema.py, in this one
place; the migrations in `migrations/` (Alembic) bring any database to it and run at start-up, so a
database made by an older version of the playground is upgraded in place, never replaced.

A data directory can be in a bad way, and the playground still starts and says so in words
(`RunStore.notices`): a damaged database file is moved aside (kept, never deleted) and a new one
is started; a read-only one is served read-only (listing and reading work, writes are refused
with words); a run whose record cannot be read is left out of the list and named, not hiding
every run. A write that fails for lack of space raises `StoreFullError` and changes nothing:
each write is one transaction. No Flask here, no torch.
"""
from __future__ import annotations

import errno
import json
import logging
import math
import os
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, NamedTuple, Optional
from urllib.parse import quote

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError
from sqlalchemy.pool import NullPool

from ..errors import UserError
from .records_schema import ADDED_AFTER_FIRST, FIRST_REVISION, MIGRATIONS_DIR, checkpoints_table, runs_table

log = logging.getLogger(__name__)

DB_NAME = "runs.sqlite3"
NAME_MAX = 80
LIST_LIMIT = 100  # the runs list shows the newest this many (it goes to every viewer)
# Runs whose server stopped while they were under way are marked so on the next start.
UNFINISHED = ("running", "paused", "idle")
MAX_RUN_ID = 2**63 - 1  # SQLite's INTEGER, PostgreSQL's BIGINT
# Engines starting together on one PostgreSQL take turns to migrate (pg_advisory_xact_lock).
MIGRATION_LOCK_KEY = 0x6E6E4C696E  # "nnLin"
SQLITE_HEADER = b"SQLite format 3\x00"  # the first 16 bytes of every SQLite database file
SQLITE_TIMEOUT_S = 10  # how long a writer waits for another process's write to finish
WRITE_LOCK_FIRST = "playground_write_lock_first"  # an execution option: see _sqlite_engine's begin
POSTGRES_CONNECT_TIMEOUT_S = 10
# Alembic's `context` and `op` are module-wide proxies: one migration at a time in a process.
_MIGRATING = threading.Lock()

SUMMARY_COLUMNS = ("id", "name", "created_at", "updated_at", "status", "note", "origin", "dataset",
                   "config", "config_changes", "steps", "epochs_done", "train_loss", "train_accuracy",
                   "val_loss", "val_accuracy", "best_val_accuracy", "run_key", "owner")
# What each JSON field is, in the words a damaged record is described with.
JSON_FIELDS = {"config": "its setup", "config_changes": "its list of live changes",
               "history": "its training curve", "epochs": "its epoch records"}


class RecordError(UserError):
    """A request about the runs' records that cannot be done (unknown record, bad name), in words.
    (Not `RunError`: that is a control a training run cannot do now, server/errors.py.)"""


class StoreError(RecordError):
    """The database itself is the problem (cannot be reached, of an unknown shape)."""


class StoreFullError(StoreError):
    """A write refused because the disk (or the database's space) is full; nothing was changed."""


class StoreReadOnlyError(StoreError):
    """A write refused because the database is served read-only; nothing was changed."""


class RunListing(NamedTuple):
    runs: list[dict]
    problems: list[str]  # sentences for people: the store's notices, then any run left out


def checked_id(run_id: int) -> int:
    """An id the database can hold; any other cannot name a run (and must not reach the driver)."""
    if not isinstance(run_id, int) or isinstance(run_id, bool) or not 1 <= run_id <= MAX_RUN_ID:
        raise RecordError(f"there is no run #{run_id}")
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


def migrate(connection: Connection) -> None:
    """Bring the database on `connection` to the newest schema, inside the caller's transaction.

    A database made before migrations existed (tables, no alembic_version) is at FIRST_REVISION
    if it has that revision's columns: it is stamped so, then upgraded like any other."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    config.attributes["connection"] = connection
    if connection.dialect.name == "postgresql":
        connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    with _MIGRATING:
        _adopt_and_upgrade(connection, config)


def _adopt_and_upgrade(connection: Connection, config) -> None:
    from alembic import command

    tables = set(sa.inspect(connection).get_table_names())
    if "alembic_version" not in tables and "runs" in tables:
        inspector = sa.inspect(connection)
        for table in (runs_table, checkpoints_table):
            found = {c["name"] for c in inspector.get_columns(table.name)} if table.name in tables else set()
            missing = [c.name for c in table.columns if c.name not in found and c.name not in ADDED_AFTER_FIRST]
            if missing:
                raise StoreError(
                    f"the database has a {table.name} table the playground did not make (it lacks "
                    f"{', '.join(missing)}): give the playground its own database")
        command.stamp(config, FIRST_REVISION)
    command.upgrade(config, "head")


def _sqlite_code(err: BaseException) -> Optional[int]:
    code = getattr(err, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF  # the primary code of an extended one


def _is_full(err: BaseException) -> bool:
    if _sqlite_code(err) == sqlite3.SQLITE_FULL:
        return True
    if getattr(err, "sqlstate", None) in ("53100", "53200"):  # PostgreSQL: disk_full, out_of_memory
        return True
    return isinstance(err, OSError) and err.errno == errno.ENOSPC


def _is_read_only(err: BaseException) -> bool:
    if _sqlite_code(err) in (sqlite3.SQLITE_READONLY, sqlite3.SQLITE_PERM):
        return True
    if getattr(err, "sqlstate", None) == "25006":  # PostgreSQL: read_only_sql_transaction
        return True
    return isinstance(err, OSError) and err.errno in (errno.EROFS, errno.EACCES, errno.EPERM)


def _writable(path: Path) -> bool:
    # access(2) answers EROFS for a read-only mount even to root; permission bits do not stop
    # root, and then nothing is read-only for it: a failed write is still caught below.
    return os.access(path, os.W_OK)


class RunStore:
    """The runs database. Each call takes its own connection: callers come from any thread.

    `notices` lists, in sentences the caller can show, what was wrong with the database when the
    store opened it and what was done (empty when all is well)."""

    def __init__(self, data_dir: Path | str, database_url: Optional[str] = None, *, engine_id: Optional[str] = None,
                 is_stale: Callable[[Optional[str]], bool] = lambda engine: True):
        # Several engines may share one database: each record says which engine records it, and
        # at start an engine marks interrupted only the unfinished runs of engines `is_stale`
        # says are gone (by default: every unfinished run, one engine on its own database).
        self.engine_id = engine_id
        self._is_stale = is_stale
        self._lock = threading.Lock()  # one writer at a time in this process (as SQLite wants)
        self.notices: list[str] = []
        self.read_only_reason: Optional[str] = None  # set: writes are refused with these words
        self.engine: Optional[Engine] = None  # None: no database could be opened (see notices)
        if database_url is None:
            self.path: Optional[Path] = Path(data_dir) / DB_NAME
            self.where = str(self.path)
            self._open_sqlite()
        else:
            self.path = None
            self._open_postgresql(database_url)

    # ---- opening ----------------------------------------------------------------------------
    def _open_postgresql(self, database_url: str) -> None:
        try:
            url = make_url(database_url)
        except ArgumentError:
            raise StoreError(f"{database_url!r} is not a database URL: give postgresql://user:password@host:port/database") from None
        if url.drivername not in ("postgresql", "postgres", "postgresql+psycopg"):
            raise StoreError(f"the runs database must be PostgreSQL (postgresql://user:password@host:port/database), "
                             f"not {url.drivername}; without a URL runs go to {DB_NAME} in the data directory")
        url = url.set(drivername="postgresql+psycopg")
        self.where = f"the PostgreSQL database {url.database or '(default)'} at {url.host or 'localhost'}:{url.port or 5432}"
        self.engine = sa.create_engine(url, pool_pre_ping=True,
                                       connect_args={"connect_timeout": POSTGRES_CONNECT_TIMEOUT_S})
        try:
            with self.engine.begin() as db:
                migrate(db)
                self._mark_unfinished(db)
        except DBAPIError as err:
            self.engine.dispose()
            raise StoreError(f"{self.where} cannot be used: {str(err.orig).strip()}") from None

    def _open_sqlite(self) -> None:
        path = self.path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            if not path.parent.is_dir():
                self.notices.append(f"the data directory {path.parent} cannot be made ({err.strerror}): "
                                    "runs are not recorded while the playground runs")
                self.read_only_reason = f"the data directory {path.parent} cannot be made ({err.strerror})"
                return
        writable = _writable(path.parent) and (not path.exists() or _writable(path))
        if path.exists():
            damage = self._damage(path, writable)
            if damage:
                if not writable:
                    self.notices.append(
                        f"{path} is damaged ({damage}) and the data directory is read-only, so it could not be "
                        "moved aside: no runs can be shown or recorded until it is replaced or removed")
                    self.read_only_reason = f"{path} is damaged and the data directory is read-only"
                    return
                moved = self._move_aside(path)
                self.notices.append(
                    f"{path} was damaged ({damage}): it was moved aside to {moved.name} in the same folder "
                    "(kept, not deleted) and a new, empty runs database was started; the runs recorded "
                    "before are in the moved file")
                log.warning(self.notices[-1])
        if writable:
            try:
                self.engine = self._sqlite_engine(path, read_only=False)
                with self._lock, self._begin_write() as db:
                    migrate(db)
                    self._mark_unfinished(db)
                return
            except DBAPIError as err:
                if not (_is_read_only(err.orig) or _is_full(err.orig)
                        or _sqlite_code(err.orig) == sqlite3.SQLITE_CANTOPEN):
                    raise
                reason = ("the disk holding it is full" if _is_full(err.orig)
                          else f"it cannot be written ({str(err.orig).strip()})")
        else:
            reason = "the data directory or the file is read-only"
        self._open_read_only(path, reason)

    def _open_read_only(self, path: Path, reason: str) -> None:
        self.read_only_reason = f"{path} is served read-only: {reason}"
        if not path.exists():
            self.notices.append(f"{path.parent} has no runs database and it cannot be made ({reason}): "
                                "runs are not recorded while the playground runs")
            return
        self.engine = self._sqlite_engine(path, read_only=True)
        try:
            with self.engine.connect() as db:
                tables = set(sa.inspect(db).get_table_names())
        except DBAPIError as err:
            self.engine = None
            self.notices.append(f"{path} cannot be read ({str(err.orig).strip()}): no runs can be shown or recorded")
            return
        if "runs" not in tables:
            self.engine = None
            self.notices.append(f"{path} holds no runs and cannot be written ({reason}): runs are not recorded")
            return
        self.notices.append(f"{path} is read-only ({reason}): the runs in it can be listed, read and "
                            "restored, but new runs are not recorded until that is fixed and the server restarted")
        log.warning(self.notices[-1])

    @staticmethod
    def _sqlite_engine(path: Path, *, read_only: bool) -> Engine:
        # A URI so that mode=ro can be asked for, quoted so any folder name works.
        target = f"file:{quote(str(path.resolve()))}" + ("?mode=ro" if read_only else "")

        def connect():
            db = sqlite3.connect(target, uri=True, timeout=SQLITE_TIMEOUT_S, check_same_thread=False,
                                 isolation_level=None)  # transactions are begun below, explicitly
            db.execute("PRAGMA foreign_keys = ON")  # ON DELETE CASCADE (per connection in SQLite)
            return db

        # A connection per call (as SQLite is cheap to open): nothing is held between calls, so
        # a file moved or replaced by an operator is seen at the next call.
        engine = sa.create_engine("sqlite://", creator=connect, poolclass=NullPool)

        @event.listens_for(engine, "begin")
        def begin(connection):
            # pysqlite would begin only before writes, so a save's reads and writes could see
            # different moments; SQLAlchemy's documented remedy: BEGIN ourselves. A transaction
            # that writes takes the write lock first (IMMEDIATE, waiting SQLITE_TIMEOUT_S for
            # it): two processes that both read and then both wanted to write would otherwise
            # deadlock, and SQLite fails one at once with "database is locked" (engines starting
            # together on one file, --redis --role all).
            immediate = connection.get_execution_options().get(WRITE_LOCK_FIRST, False)
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    @staticmethod
    def _damage(path: Path, writable: bool) -> Optional[str]:
        """None if `path` is a sound SQLite database, else what is wrong, in words.

        quick_check reads every page once (a second or so for a GB): done once, at start-up,
        so that damage is found now and not in the middle of a save."""
        # The header first, without SQLite: opening a file that is not a database would make
        # SQLite delete a journal beside it that it finds invalid, and that journal goes with
        # the damaged file (the operator may want both).
        try:
            with open(path, "rb") as file:
                header = file.read(len(SQLITE_HEADER))
        except OSError:
            return None  # cannot be read at all: told as unreadable, not moved
        if header and header != SQLITE_HEADER:
            return "file is not a database"
        target = f"file:{quote(str(path.resolve()))}" + ("" if writable else "?mode=ro")
        try:
            db = sqlite3.connect(target, uri=True, timeout=SQLITE_TIMEOUT_S)
        except sqlite3.Error:
            return None  # cannot be opened at all: told as unreadable, not moved
        try:
            rows = db.execute("PRAGMA quick_check").fetchall()
        except sqlite3.DatabaseError as err:
            if _sqlite_code(err) in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
                return str(err)
            return None  # busy, read-only, full: not damage
        finally:
            db.close()
        if rows == [("ok",)]:
            return None
        first = str(rows[0][0]) if rows else "no answer"
        return f"SQLite's integrity check found {len(rows)} problem(s), the first: {first}"

    @staticmethod
    def _move_aside(path: Path) -> Path:
        stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
        moved = path.with_name(f"{path.name}.damaged-{stamp}")
        n = 1
        while moved.exists():
            n += 1
            moved = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
        path.rename(moved)
        # A journal left beside it belongs to the damaged file: it must not be replayed into the
        # new database. It goes with the file, under the name SQLite looks for beside it.
        for suffix in ("-journal", "-wal", "-shm"):
            companion = path.with_name(path.name + suffix)
            if companion.exists():
                companion.rename(moved.with_name(moved.name + suffix))
        return moved

    def _mark_unfinished(self, db: Connection) -> None:
        # A run that was under way when its engine stopped will never finish now.
        unfinished = runs_table.c.status.in_(UNFINISHED)
        holders = {row.engine for row in db.execute(sa.select(runs_table.c.engine).where(unfinished).distinct())}
        stale = [engine for engine in holders if engine is not None and self._is_stale(engine)]
        condition = runs_table.c.engine.in_(stale)
        if None in holders and self._is_stale(None):
            condition = condition | runs_table.c.engine.is_(None)
        db.execute(sa.update(runs_table).where(unfinished & condition).values(status="interrupted"))

    def close(self) -> None:
        """Close pooled connections (PostgreSQL). A call that comes later (a broadcast timer
        still due at shutdown) finds no runs and cannot write; it opens nothing again."""
        with self._lock:
            if self.engine is not None:
                self.engine.dispose()
            self.engine = None
            self.read_only_reason = "the runs store is closed (the server is stopping)"

    # ---- transactions -----------------------------------------------------------------------
    def _begin_write(self):
        """A transaction that will write (SQLite: holding the write lock from its start)."""
        return self.engine.execution_options(**{WRITE_LOCK_FIRST: True}).begin()

    @contextmanager
    def _writing(self, what_fails: str):
        """One transaction for a write: committed whole or not at all. `what_fails` says what
        could not be saved ("run #3's weights from step 9 could not be saved")."""
        if self.read_only_reason is not None or self.engine is None:
            raise StoreReadOnlyError(f"{what_fails}: {self.read_only_reason}")
        with self._lock:
            try:
                with self._begin_write() as db:
                    yield db
            except DBAPIError as err:
                if _is_full(err.orig):
                    raise StoreFullError(f"the disk holding {self.where} is full: {what_fails}; "
                                         "free some space") from None
                if _is_read_only(err.orig):
                    raise StoreReadOnlyError(f"{what_fails}: {self.where} cannot be written now "
                                             f"({str(err.orig).strip()})") from None
                raise

    @contextmanager
    def _reading(self):
        if self.engine is None:
            yield None
            return
        with self._lock:
            try:
                with self.engine.connect() as db:
                    yield db
            except DBAPIError as err:
                raise StoreError(f"{self.where} cannot be read now ({str(err.orig).strip()})") from None

    # ---- writing ----------------------------------------------------------------------------
    def create(self, *, config: dict, dataset: str, origin: Optional[str] = None,
               name: Optional[str] = None, status: str = "running", run_key: Optional[str] = None,
               owner: Optional[str] = None) -> int:
        now = time.time()
        with self._writing("a new run could not be recorded") as db:
            result = db.execute(sa.insert(runs_table).values(
                name=name or describe_setup(config), created_at=now, updated_at=now, status=status,
                origin=origin, dataset=dataset, config=json.dumps(config), engine=self.engine_id,
                run_key=run_key, owner=owner))
            return int(result.inserted_primary_key[0])

    @staticmethod
    def _progress(*, status: str, steps: int, history: list[dict], epochs: list[dict], config: dict,
                  config_changes: list[dict], note: Optional[str]) -> dict:
        last = epochs[-1] if epochs else {}
        val_accuracies = [e["val_accuracy"] for e in epochs if finite(e.get("val_accuracy")) is not None]
        return dict(
            updated_at=time.time(), status=status, note=note, steps=steps, epochs_done=len(epochs),
            train_loss=finite(last.get("train_loss")), train_accuracy=finite(last.get("train_accuracy")),
            val_loss=finite(last.get("val_loss")), val_accuracy=finite(last.get("val_accuracy")),
            best_val_accuracy=max(val_accuracies) if val_accuracies else None,
            history=json.dumps(clean_points(history)), epochs=json.dumps(clean_points(epochs)),
            config=json.dumps(config), config_changes=json.dumps(config_changes))

    @staticmethod
    def _update(db: Connection, run_id: int, values: dict) -> bool:
        return db.execute(sa.update(runs_table).where(runs_table.c.id == run_id).values(**values)).rowcount == 1

    @staticmethod
    def _put_checkpoint(db: Connection, run_id: int, step: int, data: bytes) -> None:
        values = dict(step=step, saved_at=time.time(), data=data)
        replaced = db.execute(sa.update(checkpoints_table).where(checkpoints_table.c.run_id == run_id)
                              .values(**values)).rowcount
        if not replaced:
            db.execute(sa.insert(checkpoints_table).values(run_id=run_id, **values))

    def update(self, run_id: int, *, status: str, steps: int, history: list[dict], epochs: list[dict],
               config: dict, config_changes: list[dict], note: Optional[str] = None) -> bool:
        """Save a run's progress; False when the run is gone (deleted meanwhile)."""
        values = self._progress(status=status, steps=steps, history=history, epochs=epochs, config=config,
                                config_changes=config_changes, note=note)
        with self._writing(f"run #{run_id}'s progress at step {steps} could not be saved") as db:
            return self._update(db, run_id, values)

    def save_checkpoint(self, run_id: int, step: int, data: bytes) -> None:
        with self._writing(f"the run's weights from step {step} could not be saved") as db:
            if db.execute(sa.select(runs_table.c.id).where(runs_table.c.id == run_id)).first() is None:
                return  # deleted meanwhile
            self._put_checkpoint(db, run_id, step, data)

    def save_progress(self, run_id: int, *, status: str, steps: int, history: list[dict], epochs: list[dict],
                      config: dict, config_changes: list[dict], weights: bytes, note: Optional[str] = None) -> bool:
        """Save a run's progress and its weights (torch.save bytes, taken at `steps`) in ONE
        transaction: the record never holds steps and weights from different moments, and a
        failed save (a full disk) leaves both as they were. False when the run is gone."""
        values = self._progress(status=status, steps=steps, history=history, epochs=epochs, config=config,
                                config_changes=config_changes, note=note)
        with self._writing(f"the run's weights from step {steps} could not be saved "
                           f"(run #{run_id} keeps what was saved before)") as db:
            if not self._update(db, run_id, values):
                return False  # deleted meanwhile
            self._put_checkpoint(db, run_id, steps, weights)
            return True

    def rename(self, run_id: int, name: str) -> dict:
        run_id = checked_id(run_id)
        name = " ".join(name.split())
        if not name:
            raise RecordError(f"a run's name cannot be empty: type a name for run #{run_id} (its old name is kept)")
        if len(name) > NAME_MAX:
            raise RecordError(f"a run's name can have at most {NAME_MAX} characters (this one has {len(name)}): "
                           "shorten it")
        with self._writing(f"run #{run_id} could not be renamed") as db:
            if not self._update(db, run_id, {"name": name}):
                raise RecordError(f"there is no run #{run_id}")
        return self.get(run_id, curves=False)

    def delete(self, run_id: int) -> None:
        run_id = checked_id(run_id)
        with self._writing(f"run #{run_id} could not be deleted") as db:
            # The checkpoint first: foreign keys cascade in both databases, but say it anyway.
            db.execute(sa.delete(checkpoints_table).where(checkpoints_table.c.run_id == run_id))
            if db.execute(sa.delete(runs_table).where(runs_table.c.id == run_id)).rowcount != 1:
                raise RecordError(f"there is no run #{run_id}")

    # ---- reading ----------------------------------------------------------------------------
    def _select(self, *extra):
        columns = [runs_table.c[name] for name in SUMMARY_COLUMNS] + list(extra)
        return (sa.select(*columns, checkpoints_table.c.step.label("checkpoint_step"))
                .select_from(runs_table.outerjoin(checkpoints_table, checkpoints_table.c.run_id == runs_table.c.id)))

    def _parsed(self, row, fields) -> dict:
        """The row's JSON fields parsed; StoreError naming the field that is damaged."""
        parsed = {}
        for field in fields:
            try:
                parsed[field] = json.loads(row._mapping[field])
            except (TypeError, ValueError) as err:
                raise StoreError(f"run #{row.id}'s record in {self.where} is damaged: "
                                 f"{JSON_FIELDS[field]} ({field}) is not valid JSON ({err})") from None
        return parsed

    def _summary(self, row) -> dict:
        run = {key: row._mapping[key] for key in SUMMARY_COLUMNS}
        run.update(self._parsed(row, ("config", "config_changes")))
        try:
            run["setup"] = describe_setup(run["config"])
        except (TypeError, KeyError, ValueError, AttributeError) as err:
            raise StoreError(f"run #{row.id}'s record in {self.where} is damaged: its setup (config) "
                             f"lacks or garbles {err}") from None
        run["checkpoint_step"] = row.checkpoint_step
        return run

    def list_runs(self, limit: int = LIST_LIMIT) -> RunListing:
        """The newest runs, and in words what is wrong: the store's notices, then each run whose
        record cannot be read (left out, so the others still show)."""
        problems = list(self.notices)
        with self._reading() as db:
            rows = [] if db is None else db.execute(self._select().order_by(runs_table.c.id.desc()).limit(limit)).all()
        runs = []
        for row in rows:
            try:
                runs.append(self._summary(row))
            except StoreError as err:
                problems.append(f"{err}; it is left out of the runs list")
                log.warning(problems[-1])
        return RunListing(runs, problems)

    def latest_of(self, run_key: str) -> Optional[int]:
        """The newest record of a run key ("shared": what a new holder of the shared run carries on)."""
        with self._reading() as db:
            if db is None:
                return None
            return db.execute(sa.select(sa.func.max(runs_table.c.id)).where(runs_table.c.run_key == run_key)).scalar()

    def list(self, limit: int = LIST_LIMIT) -> list[dict]:
        return self.list_runs(limit).runs

    def get(self, run_id: int, *, curves: bool = True) -> dict:
        run_id = checked_id(run_id)
        with self._reading() as db:
            row = None if db is None else db.execute(
                self._select(runs_table.c.history, runs_table.c.epochs).where(runs_table.c.id == run_id)).first()
        if row is None:
            raise RecordError(f"there is no run #{run_id}")
        run = self._summary(row)
        if curves:
            run.update(self._parsed(row, ("history", "epochs")))
        return run

    def checkpoint(self, run_id: int) -> tuple[int, bytes]:
        """(step, torch.save bytes) of a run's last saved weights."""
        run_id = checked_id(run_id)
        with self._reading() as db:
            if db is None or db.execute(sa.select(runs_table.c.id).where(runs_table.c.id == run_id)).first() is None:
                raise RecordError(f"there is no run #{run_id}")
            row = db.execute(sa.select(checkpoints_table.c.step, checkpoints_table.c.data)
                             .where(checkpoints_table.c.run_id == run_id)).first()
        if row is None:
            raise RecordError(f"run #{run_id} has no saved weights")
        return int(row.step), bytes(row.data)
