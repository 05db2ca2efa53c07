"""Which engine records a run, and which run it is: with several engines on one database, an
engine that starts marks as interrupted only the unfinished runs of engines that are gone, and
a new holder of the shared run finds the shared run's last record.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("engine", sa.Text()))  # the engine recording it (None: before 0002)
        batch.add_column(sa.Column("run_key", sa.Text()))  # "shared", or a private run's key
    op.create_index("runs_by_key", "runs", ["run_key", "id"])


def downgrade() -> None:
    op.drop_index("runs_by_key", "runs")
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("run_key")
        batch.drop_column("engine")
