"""add attempts to predictions: how many times a run has claimed the upload

The reaper hands a crashed upload back to the queue and uses this count to give up after a few
tries; the trigger puts it in the flow run's idempotency key so each attempt gets a fresh run.
Checks for the column first, so it is safe to rerun.

Revision ID: 0005_add_attempts
Revises: 0003_create_model_promotions
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_add_attempts"
down_revision = "0003_create_model_promotions"
branch_labels = None
depends_on = None


def _has_attempts() -> bool:
    columns = sa.inspect(op.get_bind()).get_columns("predictions")
    return any(c["name"] == "attempts" for c in columns)


def upgrade() -> None:
    if _has_attempts():
        return
    with op.batch_alter_table("predictions") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))


def downgrade() -> None:
    if not _has_attempts():
        return
    with op.batch_alter_table("predictions") as batch:
        batch.drop_column("attempts")
