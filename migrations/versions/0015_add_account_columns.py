"""add the customer's own column choices: accounts.value_column, accounts.carry_columns and
predictions.carry_columns

`accounts.value_column`: the input column whose value weighs a customer (the actions list ranks by
probability x value when set). `accounts.carry_columns` and `predictions.carry_columns` (one
upload's choice, which wins over the account's): input columns copied into the results beside the
seed's four, comma-separated, never used by the model. Checks each column first, so it is safe to
rerun.

Revision ID: 0015_add_account_columns
Revises: 0014_create_webhooks
"""

import sqlalchemy as sa
from alembic import op

revision = "0015_add_account_columns"
down_revision = "0014_create_webhooks"
branch_labels = None
depends_on = None

NEW_COLUMNS = {
    "accounts": (("value_column", 255), ("carry_columns", 2048)),
    "predictions": (("carry_columns", 2048),),
}


def _columns(table: str) -> set[str]:
    return {c["name"] for c in sa.inspect(op.get_bind()).get_columns(table)}


def upgrade() -> None:
    for table, new in NEW_COLUMNS.items():
        missing = [(name, size) for name, size in new if name not in _columns(table)]
        if missing:
            with op.batch_alter_table(table) as batch:
                for name, size in missing:
                    batch.add_column(sa.Column(name, sa.String(size)))


def downgrade() -> None:
    for table, new in NEW_COLUMNS.items():
        present = [name for name, _ in new if name in _columns(table)]
        if present:
            with op.batch_alter_table(table) as batch:
                for name in present:
                    batch.drop_column(name)
