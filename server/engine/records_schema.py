"""The runs database's tables, in this one place (records.py reads and writes them): the schema
the migrations in migrations/ (Alembic) bring every database to. A new column is added here and
in a new migration, never by editing an old one.
"""
from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
FIRST_REVISION = "0001"  # the tables the code before migrations made
ADDED_AFTER_FIRST = frozenset({"engine", "run_key", "owner"})  # columns of later migrations (0002, 0003)

# JSON fields are TEXT holding json.dumps output (as the first version wrote them), parsed per
# row by records.py: a sqlalchemy JSON column would fail the whole query on one damaged row.
RunId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite: the rowid, as before
metadata = sa.MetaData()
runs_table = sa.Table(
    "runs", metadata,
    sa.Column("id", RunId, primary_key=True, autoincrement=True),
    sa.Column("name", sa.Text(), nullable=False),
    sa.Column("created_at", sa.Float(), nullable=False),
    sa.Column("updated_at", sa.Float(), nullable=False),
    sa.Column("status", sa.Text(), nullable=False),
    sa.Column("note", sa.Text()),
    sa.Column("origin", sa.Text()),
    sa.Column("dataset", sa.Text(), nullable=False),
    sa.Column("config", sa.Text(), nullable=False),
    sa.Column("config_changes", sa.Text(), nullable=False, server_default="[]"),
    sa.Column("steps", sa.BigInteger(), nullable=False, server_default="0"),
    sa.Column("epochs_done", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("train_loss", sa.Float()),
    sa.Column("train_accuracy", sa.Float()),
    sa.Column("val_loss", sa.Float()),
    sa.Column("val_accuracy", sa.Float()),
    sa.Column("best_val_accuracy", sa.Float()),
    sa.Column("history", sa.Text(), nullable=False, server_default="[]"),
    sa.Column("epochs", sa.Text(), nullable=False, server_default="[]"),
    sa.Column("engine", sa.Text()),  # the engine recording it (migration 0002)
    sa.Column("run_key", sa.Text()),  # "shared", or a private run's key
    sa.Column("owner", sa.Text()),  # a private run's owner id (migration 0003); None: the shared run's
    sqlite_autoincrement=True,  # ids of deleted runs are never reused
)
sa.Index("runs_by_key", runs_table.c.run_key, runs_table.c.id)

checkpoints_table = sa.Table(
    "checkpoints", metadata,
    sa.Column("run_id", RunId, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True,
              autoincrement=False),
    sa.Column("step", sa.BigInteger(), nullable=False),
    sa.Column("saved_at", sa.Float(), nullable=False),
    sa.Column("data", sa.LargeBinary(), nullable=False),
)
