"""create customer_scores and customer_explanations: each customer's risk over uploads, and why

`customer_scores`: one row per (upload, customer): the account, the model version, when the upload
completed, the probability and tier; an account's history for one customer is an index range.
`customer_explanations`: per (account, customer) the latest exact explanation (base value, margin
and every feature's contribution as JSON). Skips what exists, so it is safe to rerun.

Revision ID: 0013_create_customer_history
Revises: 0012_upload_slots_and_sessions
"""

import sqlalchemy as sa
from alembic import op

revision = "0013_create_customer_history"
down_revision = "0012_upload_slots_and_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = sa.inspect(op.get_bind()).get_table_names()
    if "customer_scores" not in tables:
        op.create_table(
            "customer_scores",
            sa.Column("prediction_id", sa.String(36), nullable=False),
            sa.Column("customer_id", sa.String(255), nullable=False),
            sa.Column("account", sa.String(255), nullable=False),
            sa.Column("model_name", sa.String(255), nullable=False),
            sa.Column("model_version", sa.String(64), nullable=False),
            sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("churn_probability", sa.Float, nullable=False),
            sa.Column("churn_risk", sa.String(8), nullable=False),
            sa.PrimaryKeyConstraint(
                "prediction_id", "customer_id", name=op.f("pk_customer_scores")
            ),
        )
        op.create_index(
            "ix_customer_scores_account_customer_id",
            "customer_scores",
            ["account", "customer_id", "completed_at"],
        )
    if "customer_explanations" not in tables:
        op.create_table(
            "customer_explanations",
            sa.Column("account", sa.String(255), nullable=False),
            sa.Column("customer_id", sa.String(255), nullable=False),
            sa.Column("prediction_id", sa.String(36), nullable=False),
            sa.Column("model_version", sa.String(64), nullable=False),
            sa.Column("completed_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("base_value", sa.Float, nullable=False),
            sa.Column("margin", sa.Float, nullable=False),
            sa.Column("contributions", sa.Text, nullable=False),
            sa.PrimaryKeyConstraint(
                "account", "customer_id", name=op.f("pk_customer_explanations")
            ),
        )


def downgrade() -> None:
    tables = sa.inspect(op.get_bind()).get_table_names()
    if "customer_explanations" in tables:
        op.drop_table("customer_explanations")
    if "customer_scores" in tables:
        op.drop_index("ix_customer_scores_account_customer_id", table_name="customer_scores")
        op.drop_table("customer_scores")
