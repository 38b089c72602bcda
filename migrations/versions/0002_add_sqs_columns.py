"""add sqs_message_id and sqs_queued_at to predictions

Checks for each column first, so it is safe on a database where someone added them by hand.

Revision ID: 0002_add_sqs_columns
Revises: 0001_create_predictions
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_add_sqs_columns"
down_revision = "0001_create_predictions"
branch_labels = None
depends_on = None

COLUMNS = (
    ("sqs_message_id", sa.String(255)),
    ("sqs_queued_at", sa.DateTime(timezone=True)),
)


def _existing() -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns("predictions")}


def upgrade() -> None:
    missing = [(name, type_) for name, type_ in COLUMNS if name not in _existing()]
    if not missing:
        return
    with op.batch_alter_table("predictions") as batch:
        for name, type_ in missing:
            batch.add_column(sa.Column(name, type_, nullable=True))


def downgrade() -> None:
    present = [name for name, _ in COLUMNS if name in _existing()]
    if not present:
        return
    with op.batch_alter_table("predictions") as batch:
        for name in present:
            batch.drop_column(name)
