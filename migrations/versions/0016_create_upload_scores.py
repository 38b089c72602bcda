"""create upload_scores: each chunk of an upload's scores kept as one compressed row

`upload_scores`: one row per (upload, chunk): the chunk's customer_id, churn_probability and
churn_risk as a zstd-compressed Arrow IPC stream. Written while the upload is scored (one insert
per chunk instead of a `customer_scores` row per customer), read as the account's "previous"
scores by its next upload; `customer_scores` is filled from it once the upload is COMPLETED.
Skips what exists, so it is safe to rerun.

Revision ID: 0016_create_upload_scores
Revises: 0015_add_account_columns
"""

import sqlalchemy as sa
from alembic import op

revision = "0016_create_upload_scores"
down_revision = "0015_add_account_columns"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if "upload_scores" not in sa.inspect(op.get_bind()).get_table_names():
        op.create_table(
            "upload_scores",
            sa.Column("prediction_id", sa.String(36), nullable=False),
            sa.Column("part", sa.Integer, nullable=False),
            sa.Column("scores", sa.LargeBinary, nullable=False),
            sa.PrimaryKeyConstraint("prediction_id", "part", name=op.f("pk_upload_scores")),
        )


def downgrade() -> None:
    if "upload_scores" in sa.inspect(op.get_bind()).get_table_names():
        op.drop_table("upload_scores")
