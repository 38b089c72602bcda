"""index predictions by (account, created_at): an account's uploads, newest first, and its cap

Checks for the index first, so it is safe to rerun.

Revision ID: 0007_index_by_account
Revises: 0006_create_accounts
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_index_by_account"
down_revision = "0006_create_accounts"
branch_labels = None
depends_on = None

INDEX = "ix_predictions_account_created_at"


def _has_index() -> bool:
    return any(i["name"] == INDEX for i in sa.inspect(op.get_bind()).get_indexes("predictions"))


def upgrade() -> None:
    if not _has_index():
        op.create_index(INDEX, "predictions", ["account", "created_at"])


def downgrade() -> None:
    if _has_index():
        op.drop_index(INDEX, table_name="predictions")
