"""create upload_metrics and upload_drift: per-upload figures written when an upload completes

`upload_metrics`: one row per completed upload: the score distribution's PSI against training and
the label-free estimate (expected ROC AUC, precision, recall, churn count, with bands).
`upload_drift`: one row per upload and feature column: PSI against training and the share of
values never seen in training. Trends over time are then a query. Safe to rerun.

Revision ID: 0011_create_upload_metrics
Revises: 0010_create_outcomes
"""

import sqlalchemy as sa
from alembic import op

revision = "0011_create_upload_metrics"
down_revision = "0010_create_outcomes"
branch_labels = None
depends_on = None

ESTIMATES = ("roc_auc", "precision", "recall", "churn_count")


def upgrade() -> None:
    tables = sa.inspect(op.get_bind()).get_table_names()
    if "upload_metrics" not in tables:
        op.create_table(
            "upload_metrics",
            sa.Column("prediction_id", sa.String(36), nullable=False),
            sa.Column("account", sa.String(255), nullable=False),
            sa.Column("model_name", sa.String(255), nullable=False),
            sa.Column("model_version", sa.String(64), nullable=False),
            sa.Column("rows_scored", sa.Integer, nullable=False),
            sa.Column("score_psi", sa.Float),
            *[
                sa.Column(f"est_{name}{part}", sa.Float)
                for name in ESTIMATES
                for part in ("", "_low", "_high")
            ],
            sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("prediction_id", name=op.f("pk_upload_metrics")),
        )
        op.create_index(
            "ix_upload_metrics_model_name_model_version",
            "upload_metrics",
            ["model_name", "model_version"],
        )
    if "upload_drift" not in tables:
        op.create_table(
            "upload_drift",
            sa.Column("prediction_id", sa.String(36), nullable=False),
            sa.Column("column_name", sa.String(255), nullable=False),
            sa.Column("psi", sa.Float),
            sa.Column("unseen_share", sa.Float),
            sa.PrimaryKeyConstraint("prediction_id", "column_name", name=op.f("pk_upload_drift")),
        )


def downgrade() -> None:
    tables = sa.inspect(op.get_bind()).get_table_names()
    if "upload_drift" in tables:
        op.drop_table("upload_drift")
    if "upload_metrics" in tables:
        op.drop_index("ix_upload_metrics_model_name_model_version", table_name="upload_metrics")
        op.drop_table("upload_metrics")
