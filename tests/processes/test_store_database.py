"""The run store on SQLAlchemy Core: the same answers on SQLite and on a real PostgreSQL 15, one
schema that the migrations make exactly, migrations that run at start-up (adopting a database
made by the code before them), and a run's progress and weights saved in one transaction."""
from __future__ import annotations

import sqlite3
import threading

import psycopg
import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.config import Config

from server.engine.records import DB_NAME, RecordError, RunStore
from server.engine.records_schema import MIGRATIONS_DIR, metadata
from server.engine.records import RunStore as RunStoreFromRuns

CONFIG = {"hidden_sizes": [8], "activation": "relu", "optimizer": "sgd", "momentum": 0.9, "lr": 0.1,
          "batch_size": 4, "output": "logits", "weight_decay": 0, "seed": 1, "epochs": 2,
          "steps_per_second": None}
EPOCHS = [{"epoch": 1, "step": 3, "train_loss": 1.5, "train_accuracy": 0.4, "val_loss": 1.6, "val_accuracy": 0.35},
          {"epoch": 2, "step": 6, "train_loss": 0.9, "train_accuracy": 0.7, "val_loss": 1.0, "val_accuracy": 0.65}]
HISTORY = [{"step": n, "loss": 2.0 - n / 10} for n in range(1, 7)]


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("path_separator", "os")
    return ScriptDirectory.from_config(config).get_current_head()


def progress(steps=6, status="paused", epochs=EPOCHS, history=HISTORY):
    return dict(status=status, steps=steps, history=history, epochs=epochs, config=CONFIG, config_changes=[])


@pytest.fixture
def store(tmp_path, database):
    store = RunStore(tmp_path, database_url=database)
    yield store
    store.close()


def test_the_store_moved_to_the_engine_and_is_still_importable_from_runs():
    assert RunStoreFromRuns is RunStore


def test_every_public_method_answers_the_same_on_both_databases(store):
    first = store.create(config=CONFIG, dataset="mnist")
    second = store.create(config=CONFIG, dataset="mnist", origin="restored from run #1 at step 4", name="mine",
                          status="idle")
    assert (first, second) == (1, 2)
    assert store.update(first, **progress()) is True
    store.save_checkpoint(first, 6, b"weights at 6")
    assert store.checkpoint(first) == (6, b"weights at 6")

    run = store.get(first)
    assert run["name"] == "8 relu · sgd (momentum 0.9) lr 0.1 · batch 4 · logits · seed 1"
    assert (run["status"], run["steps"], run["epochs_done"], run["checkpoint_step"]) == ("paused", 6, 2, 6)
    assert (run["val_accuracy"], run["best_val_accuracy"], run["train_loss"]) == (0.65, 0.65, 0.9)
    assert run["history"] == HISTORY and run["epochs"] == EPOCHS and run["config"] == CONFIG
    assert "history" not in store.get(first, curves=False)

    listed = store.list()
    assert [r["id"] for r in listed] == [second, first]
    assert listed[0]["origin"] == "restored from run #1 at step 4" and listed[0]["checkpoint_step"] is None
    assert store.list(limit=1) == listed[:1]

    assert store.rename(second, "  a   better name ")["name"] == "a better name"
    store.delete(first)
    assert [r["id"] for r in store.list()] == [second]
    with pytest.raises(RecordError, match="there is no run #1"):
        store.checkpoint(first)
    with pytest.raises(RecordError, match="run #2 has no saved weights"):
        store.checkpoint(second)
    assert store.update(first, **progress()) is False  # deleted meanwhile: nothing to update
    store.save_checkpoint(first, 7, b"late")  # deleted meanwhile: ignored
    assert store.create(config=CONFIG, dataset="mnist") == 3  # a deleted run's id is never reused


def test_not_a_number_is_kept_as_none_and_huge_ids_are_unknown_runs(store):
    run_id = store.create(config=CONFIG, dataset="mnist")
    store.update(run_id, **progress(epochs=[{**EPOCHS[0], "val_accuracy": float("nan")}],
                                    history=[{"step": 1, "loss": float("inf")}]))
    run = store.get(run_id)
    assert run["val_accuracy"] is None and run["history"] == [{"step": 1, "loss": None}]
    for bad in (0, -1, 2**63, "1", True):
        with pytest.raises(RecordError, match="there is no run"):
            store.get(bad)


def test_progress_and_weights_are_saved_in_one_transaction(store):
    """Issue 14: a save torn between two transactions left steps and weights from different
    moments. save_progress writes both or neither."""
    run_id = store.create(config=CONFIG, dataset="mnist")
    assert store.save_progress(run_id, **progress(steps=3, epochs=EPOCHS[:1]), weights=b"weights at 3") is True
    assert store.get(run_id)["steps"] == 3 and store.checkpoint(run_id) == (3, b"weights at 3")

    # The weights cannot be written (NULL breaks the table's NOT NULL) after the progress was:
    # the progress must not stay behind on its own.
    with pytest.raises(sa.exc.IntegrityError):
        store.save_progress(run_id, **progress(steps=6), weights=None)
    run = store.get(run_id)
    assert (run["steps"], run["epochs_done"], run["checkpoint_step"]) == (3, 1, 3)
    assert store.checkpoint(run_id) == (3, b"weights at 3")

    assert store.save_progress(run_id, **progress(steps=6), weights=b"weights at 6") is True
    assert (store.get(run_id)["steps"], store.checkpoint(run_id)) == (6, (6, b"weights at 6"))
    store.delete(run_id)
    assert store.save_progress(run_id, **progress(steps=7), weights=b"late") is False


def test_the_migrations_make_exactly_the_schema_in_the_code(store):
    """The tables live in one place (server/engine/records_schema.py's metadata); the migrations must
    make exactly them, on both databases."""
    with store.engine.connect() as db:
        context = MigrationContext.configure(db, opts={"compare_type": True, "compare_server_default": False})
        assert compare_metadata(context, metadata) == []
        assert context.get_current_revision() == head_revision()


def test_opening_again_runs_no_migration_twice_and_keeps_the_runs(tmp_path, database):
    first = RunStore(tmp_path, database_url=database)
    run_id = first.create(config=CONFIG, dataset="mnist")
    first.save_progress(run_id, **progress(status="running"), weights=b"w")
    first.close()
    second = RunStore(tmp_path, database_url=database)
    try:
        run = second.get(run_id)
        assert run["status"] == "interrupted"  # it was under way when its server stopped
        assert second.checkpoint(run_id) == (6, b"w")
        with second.engine.connect() as db:
            assert MigrationContext.configure(db).get_current_revision() == head_revision()
    finally:
        second.close()


def test_stores_starting_together_on_one_new_postgresql_database_take_turns_to_migrate(tmp_path, postgres_url):
    """Several engines share one PostgreSQL: started at once on an empty database, each must
    find the schema made exactly once (an advisory lock around the migrations)."""
    stores, errors = [], []
    barrier = threading.Barrier(4)

    def start():
        barrier.wait()
        try:
            stores.append(RunStore(tmp_path, database_url=postgres_url))
        except Exception as err:  # noqa: BLE001 - the test reports any failure
            errors.append(err)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    try:
        assert errors == [] and len(stores) == 4
        ids = [store.create(config=CONFIG, dataset="mnist") for store in stores]
        assert ids == [1, 2, 3, 4] and [r["id"] for r in stores[0].list()] == [4, 3, 2, 1]
    finally:
        for store in stores:
            store.close()


def test_runs_in_postgresql_are_plain_rows(tmp_path, postgres_url):
    store = RunStore(tmp_path, database_url=postgres_url)
    try:
        run_id = store.create(config=CONFIG, dataset="mnist")
        store.save_progress(run_id, **progress(), weights=b"\x00\x01weights")
    finally:
        store.close()
    with psycopg.connect(postgres_url) as db:
        assert db.execute("SELECT id, status, steps FROM runs").fetchall() == [(run_id, "paused", 6)]
        assert db.execute("SELECT step, data FROM checkpoints").fetchall() == [(6, b"\x00\x01weights")]
    assert not (tmp_path / DB_NAME).exists()  # nothing went to SQLite


@pytest.mark.parametrize("url, words", [
    ("mysql://u@h/db", "must be PostgreSQL"),
    ("not a url", "is not a database URL"),
])
def test_a_database_url_that_is_not_postgresql_is_refused_in_words(tmp_path, url, words):
    with pytest.raises(RecordError, match=words):
        RunStore(tmp_path, database_url=url)


def test_a_postgresql_server_that_cannot_be_reached_is_said_in_words(tmp_path, postgres_server):
    url = postgres_server.url("no_such_database")
    with pytest.raises(RecordError, match=r"the PostgreSQL database no_such_database at 127\.0\.0\.1:\d+ cannot be used: .*"
                                       r"no_such_database"):
        RunStore(tmp_path, database_url=url)


# ---- a database made by the code before migrations -------------------------------------------
# The exact DDL the store wrote before it moved to SQLAlchemy (server/runs.py, SCHEMA): data
# directories made by that code must keep working.
SCHEMA_BEFORE_MIGRATIONS = """
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


def make_database_before_migrations(path):
    """runs.sqlite3 as the code before migrations left it: two runs (one live when its server
    stopped), one with weights, and a third deleted (so the next id must be 4, not 3)."""
    import json

    with sqlite3.connect(path) as db:
        db.executescript(SCHEMA_BEFORE_MIGRATIONS)
        for name, status in (("finished", "done"), ("live", "running"), ("deleted", "stopped")):
            db.execute("INSERT INTO runs (name, created_at, updated_at, status, origin, dataset, config, steps, "
                       "epochs_done, val_accuracy, history, epochs) VALUES (?, 1.0, 2.0, ?, NULL, 'mnist', ?, 6, 2, "
                       "0.65, ?, ?)", (name, status, json.dumps(CONFIG), json.dumps(HISTORY), json.dumps(EPOCHS)))
        db.execute("INSERT INTO checkpoints (run_id, step, saved_at, data) VALUES (1, 6, 3.0, ?)", (b"old weights",))
        db.execute("DELETE FROM runs WHERE id = 3")
    db.close()


def test_a_runs_database_made_before_migrations_is_adopted_with_everything_in_it(tmp_path):
    make_database_before_migrations(tmp_path / DB_NAME)
    store = RunStore(tmp_path)
    try:
        assert store.notices == []
        runs = store.list()
        assert [(r["id"], r["name"], r["status"]) for r in runs] == [(2, "live", "interrupted"), (1, "finished", "done")]
        assert store.get(1)["history"] == HISTORY and store.get(1)["epochs"] == EPOCHS
        assert store.checkpoint(1) == (6, b"old weights")
        assert store.create(config=CONFIG, dataset="mnist") == 4  # AUTOINCREMENT kept: 3 stays unused
        store.delete(1)  # the old table's ON DELETE CASCADE still takes the weights with the run
        with sqlite3.connect(tmp_path / DB_NAME) as db:
            assert db.execute("SELECT count(*) FROM checkpoints").fetchone() == (0,)
            assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [(head_revision(),)]
        db.close()
    finally:
        store.close()


def test_a_database_with_tables_the_playground_did_not_make_is_refused_in_words(tmp_path):
    with sqlite3.connect(tmp_path / DB_NAME) as db:
        db.execute("CREATE TABLE runs (id INTEGER PRIMARY KEY, title TEXT)")
    db.close()
    with pytest.raises(RecordError, match="the database has a runs table the playground did not make .*lacks name"):
        RunStore(tmp_path)
    with sqlite3.connect(tmp_path / DB_NAME) as db:  # and it is left as it was
        assert [row[1] for row in db.execute("PRAGMA table_info(runs)")] == ["id", "title"]
    db.close()
