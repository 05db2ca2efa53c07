"""The runs and checkpoints tables, as the code before migrations made them in runs.sqlite3.

A database made by that code (no alembic_version table) is adopted as being at this revision:
RunStore checks its columns and stamps it, it does not run this again.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

# SQLite: INTEGER PRIMARY KEY is the rowid (as before); PostgreSQL: a 64-bit id, as SQLite's.
RunId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "runs",
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
        sqlite_autoincrement=True,  # ids of deleted runs are never reused (as before)
    )
    op.create_table(
        "checkpoints",
        sa.Column("run_id", RunId, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True,
                  autoincrement=False),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("saved_at", sa.Float(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("checkpoints")
    op.drop_table("runs")
