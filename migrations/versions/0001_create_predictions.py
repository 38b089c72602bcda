"""create the predictions table

Revision ID: 0001_create_predictions
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_create_predictions"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    if sa.inspect(op.get_bind()).has_table("predictions"):
        return
    op.create_table(
        "predictions",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("model_name", sa.String(255), nullable=False),
        sa.Column("model_version", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("input_key", sa.String(1024), nullable=False),
        sa.Column("original_filename", sa.String(1024)),
        sa.Column("result_key", sa.String(1024)),
        sa.Column("report_key", sa.String(1024)),
        sa.Column("rows_total", sa.Integer),
        sa.Column("rows_scored", sa.Integer),
        sa.Column("rows_rejected", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("flow_run_id", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("completed_at", sa.DateTime(timezone=True)),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_predictions")),
        sa.CheckConstraint(
            "status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED')",
            name=op.f("ck_predictions_status_known"),
        ),
    )
    op.create_index("ix_predictions_status", "predictions", ["status"])


def downgrade() -> None:
    if not sa.inspect(op.get_bind()).has_table("predictions"):
        return
    op.drop_index("ix_predictions_status", table_name="predictions")
    op.drop_table("predictions")
