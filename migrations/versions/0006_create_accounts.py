"""create accounts and api_keys: who a customer is, and the keys that prove it

Only a SHA-256 of each key's secret is stored (see retainwise/adapters/accounts.py for why that
is enough). Skips tables that exist, so it is safe to rerun.

Revision ID: 0006_create_accounts
Revises: 0005_add_attempts
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_create_accounts"
down_revision = "0005_add_attempts"
branch_labels = None
depends_on = None


def _has(table: str) -> bool:
    return sa.inspect(op.get_bind()).has_table(table)


def upgrade() -> None:
    if not _has("accounts"):
        op.create_table(
            "accounts",
            sa.Column("name", sa.String(63), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("disabled_at", sa.DateTime(timezone=True)),
            sa.Column("allowed_models", sa.String(1024), nullable=False, server_default="churn"),
            sa.Column("max_active_uploads", sa.Integer),
            sa.PrimaryKeyConstraint("name", name=op.f("pk_accounts")),
        )
    if not _has("api_keys"):
        op.create_table(
            "api_keys",
            sa.Column("key_id", sa.String(12), nullable=False),
            sa.Column("account", sa.String(63), nullable=False),
            sa.Column("key_hash", sa.String(64), nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("last_used_at", sa.DateTime(timezone=True)),
            sa.Column("revoked_at", sa.DateTime(timezone=True)),
            sa.PrimaryKeyConstraint("key_id", name=op.f("pk_api_keys")),
            sa.ForeignKeyConstraint(
                ["account"], ["accounts.name"], name=op.f("fk_api_keys_account_accounts")
            ),
        )
        op.create_index("ix_api_keys_account", "api_keys", ["account"])


def downgrade() -> None:
    if _has("api_keys"):
        op.drop_index("ix_api_keys_account", table_name="api_keys")
        op.drop_table("api_keys")
    if _has("accounts"):
        op.drop_table("accounts")
