"""create the outcomes table: what really happened to each scored customer, joined to its score

One row per (prediction, customer): the customer's label (churned 1/0), when it was observed, and
the probability and tier the upload gave it, so realised performance is a query. Skips creation
when the table exists, so it is safe to rerun.

Revision ID: 0010_create_outcomes
Revises: 0007_index_by_account
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_create_outcomes"
down_revision = "0007_index_by_account"
branch_labels = None
depends_on = None

TABLE = "outcomes"


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table(TABLE):
        return
    op.create_table(
        TABLE,
        sa.Column("prediction_id", sa.String(36), nullable=False),
        sa.Column("customer_id", sa.String(255), nullable=False),
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("churned", sa.Integer, nullable=False),
        sa.Column("churn_probability", sa.Float, nullable=False),
        sa.Column("churn_risk", sa.String(8), nullable=False),
        sa.Column("observed_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("prediction_id", "customer_id", name=op.f("pk_outcomes")),
        sa.CheckConstraint("churned IN (0, 1)", name=op.f("ck_outcomes_churned_binary")),
    )
    op.create_index("ix_outcomes_account", TABLE, ["account"])


def downgrade() -> None:
    if not sa.inspect(op.get_bind()).has_table(TABLE):
        return
    op.drop_index("ix_outcomes_account", table_name=TABLE)
    op.drop_table(TABLE)
