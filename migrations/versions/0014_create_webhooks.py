"""create webhook_endpoints, webhook_events and webhook_deliveries: signed webhooks per account

`webhook_endpoints`: one URL per account and its signing secret, encrypted (Fernet) with
RETAINWISE_WEBHOOK_KEY. `webhook_events`: the outbox, written in the transaction that makes an
upload COMPLETED or FAILED (subject: the upload's id; for model.degraded the model and
version); unique per account, subject and type, so a redelivered run cannot write one
twice; claimed by one deliverer at a time. `webhook_deliveries`: every attempt and its outcome,
what the customer sees. Safe to rerun.

Revision ID: 0014_create_webhooks
Revises: 0013_create_customer_history
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_create_webhooks"
down_revision = "0013_create_customer_history"
branch_labels = None
depends_on = None


def upgrade() -> None:
    tables = sa.inspect(op.get_bind()).get_table_names()
    if "webhook_endpoints" not in tables:
        op.create_table(
            "webhook_endpoints",
            sa.Column("account", sa.String(63), nullable=False),
            sa.Column("url", sa.String(2048), nullable=False),
            sa.Column("secret_encrypted", sa.Text, nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.PrimaryKeyConstraint("account", name=op.f("pk_webhook_endpoints")),
            sa.ForeignKeyConstraint(
                ["account"],
                ["accounts.name"],
                name=op.f("fk_webhook_endpoints_account_accounts"),
            ),
        )
    if "webhook_events" not in tables:
        op.create_table(
            "webhook_events",
            sa.Column("id", sa.String(40), nullable=False),
            sa.Column("account", sa.String(63), nullable=False),
            sa.Column("subject", sa.String(255), nullable=False),
            sa.Column("type", sa.String(64), nullable=False),
            sa.Column("payload", sa.Text, nullable=False),
            sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
            sa.Column("claimed_by", sa.String(64)),
            sa.Column("claimed_until", sa.DateTime(timezone=True)),
            sa.Column("delivered_at", sa.DateTime(timezone=True)),
            sa.Column("given_up_at", sa.DateTime(timezone=True)),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_events")),
            sa.UniqueConstraint(
                "account", "subject", "type", name=op.f("uq_webhook_events_account")
            ),
        )
        op.create_index("ix_webhook_events_next_attempt_at", "webhook_events", ["next_attempt_at"])
    if "webhook_deliveries" not in tables:
        op.create_table(
            "webhook_deliveries",
            sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
            sa.Column("event_id", sa.String(40), nullable=False),
            sa.Column("account", sa.String(63), nullable=False),
            sa.Column("url", sa.String(2048), nullable=False),
            sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
            sa.Column("status_code", sa.Integer),
            sa.Column("error", sa.Text),
            sa.Column("duration_ms", sa.Integer, nullable=False),
            sa.PrimaryKeyConstraint("id", name=op.f("pk_webhook_deliveries")),
            sa.ForeignKeyConstraint(
                ["event_id"],
                ["webhook_events.id"],
                name=op.f("fk_webhook_deliveries_event_id_webhook_events"),
            ),
        )
        op.create_index(
            "ix_webhook_deliveries_account_attempted_at",
            "webhook_deliveries",
            ["account", "attempted_at"],
        )


def downgrade() -> None:
    tables = sa.inspect(op.get_bind()).get_table_names()
    if "webhook_deliveries" in tables:
        op.drop_index("ix_webhook_deliveries_account_attempted_at", table_name="webhook_deliveries")
        op.drop_table("webhook_deliveries")
    if "webhook_events" in tables:
        op.drop_index("ix_webhook_events_next_attempt_at", table_name="webhook_events")
        op.drop_table("webhook_events")
    if "webhook_endpoints" in tables:
        op.drop_table("webhook_endpoints")
