"""Whose run a record is: the owner id of the viewer whose private run it recorded (a hash of
that viewer's secret, never the secret; None for the shared run's records and for records made
before 0003). The runs list shows whose each run is, and only its owner, or whoever controls
the shared run, may rename or delete it.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.add_column(sa.Column("owner", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("runs") as batch:
        batch.drop_column("owner")
