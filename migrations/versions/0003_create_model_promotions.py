"""create the model_promotions table: every champion change, who made it and why

Skips creation when the table exists, so it is safe on a database where it was created by hand.

Revision ID: 0003_create_model_promotions
Revises: 0002_add_sqs_columns
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_create_model_promotions"
down_revision = "0002_add_sqs_columns"
branch_labels = None
depends_on = None

TABLE = "model_promotions"


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table(TABLE):
        return
    op.create_table(
        TABLE,
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_version", sa.String(64)),
        sa.Column("to_version", sa.String(64), nullable=False),
        sa.Column("forced", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("metrics", sa.Text),
        sa.Column("reason", sa.Text),
        sa.Column("actor", sa.String(255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_model_promotions")),
        sa.CheckConstraint(
            "action IN ('promote', 'rollback')", name=op.f("ck_model_promotions_action_known")
        ),
    )
    op.create_index(
        "ix_model_promotions_model_name_created_at", TABLE, ["model_name", "created_at"]
    )


def downgrade() -> None:
    if not sa.inspect(op.get_bind()).has_table(TABLE):
        return
    op.drop_index("ix_model_promotions_model_name_created_at", table_name=TABLE)
    op.drop_table(TABLE)
