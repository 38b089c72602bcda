"""create upload_slots and session_versions: the atomic upload cap and server-side sign-out

`upload_slots`: one row per upload being received (streaming into S3, no predictions row yet); the
per-account cap counts them with the PENDING and PROCESSING uploads, taken under a per-account
lock, so concurrent uploads cannot all pass it. `session_versions`: per API key, the web session
generation; sign-out raises it, and a cookie of an older generation no longer signs in. Safe to
rerun.

Revision ID: 0012_upload_slots_and_sessions
Revises: 0011_create_upload_metrics
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_upload_slots_and_sessions"
down_revision = "0011_create_upload_metrics"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = sa.inspect(op.get_bind()).get_table_names()
    if "upload_slots" not in tables:
        op.create_table(
            "upload_slots",
            sa.Column("prediction_id", sa.String(36), nullable=False),
            sa.Column("account", sa.String(255), nullable=False),
            sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("prediction_id", name=op.f("pk_upload_slots")),
        )
        op.create_index("ix_upload_slots_account", "upload_slots", ["account"])
    if "session_versions" not in tables:
        op.create_table(
            "session_versions",
            sa.Column("key_id", sa.String(64), nullable=False),
            sa.Column("version", sa.Integer, nullable=False),
            sa.PrimaryKeyConstraint("key_id", name=op.f("pk_session_versions")),
        )


def downgrade() -> None:
    tables = sa.inspect(op.get_bind()).get_table_names()
    if "session_versions" in tables:
        op.drop_table("session_versions")
    if "upload_slots" in tables:
        op.drop_index("ix_upload_slots_account", table_name="upload_slots")
        op.drop_table("upload_slots")
