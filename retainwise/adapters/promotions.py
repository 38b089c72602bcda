"""The `model_promotions` table: an append-only record of champion changes, for audits.

"Which version was champion at time T" is `champion_at`. Functions take an Engine, nothing
connects at import.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from retainwise.adapters.db import metadata, utcnow

PROMOTE, ROLLBACK = "promote", "rollback"

model_promotions = sa.Table(
    "model_promotions",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("from_version", sa.String(64)),
    sa.Column("to_version", sa.String(64), nullable=False),
    sa.Column("forced", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("metrics", sa.Text),
    sa.Column("reason", sa.Text),
    sa.Column("actor", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("action IN ('promote', 'rollback')", name="action_known"),
    sa.Index("ix_model_promotions_model_name_created_at", "model_name", "created_at"),
)


class PromotionsTableMissing(RuntimeError):
    """The database has not been migrated to a revision with model_promotions."""


def require_table(engine: Engine) -> None:
    if not sa.inspect(engine).has_table(model_promotions.name):
        raise PromotionsTableMissing(
            "the database has no model_promotions table; run `retainwise migrate` first"
        )


def record(
    engine: Engine,
    *,
    model_name: str,
    action: str,
    from_version: str | None,
    to_version: str,
    actor: str,
    reason: str | None = None,
    forced: bool = False,
    metrics: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> int:
    """Append one champion change; returns its id."""
    with engine.begin() as conn:
        result = conn.execute(
            model_promotions.insert().values(
                model_name=model_name,
                action=action,
                from_version=from_version,
                to_version=str(to_version),
                forced=forced,
                reason=reason,
                actor=actor,
                metrics=json.dumps(metrics or {}, sort_keys=True, default=str),
                created_at=(at or utcnow()).astimezone(UTC),
            )
        )
    key = result.inserted_primary_key
    assert key is not None  # an INSERT of one row
    return int(key[0])


def history(engine: Engine, model_name: str) -> list[dict[str, Any]]:
    """Every change for a model, oldest first, metrics decoded."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.select(model_promotions)
                .where(model_promotions.c.model_name == model_name)
                .order_by(model_promotions.c.created_at, model_promotions.c.id)
            )
            .mappings()
            .all()
        )
    return [{**row, "metrics": json.loads(row["metrics"] or "{}")} for row in rows]


def champion_at(engine: Engine, model_name: str, when: datetime) -> str | None:
    """The version that was champion at `when` (None before the first recorded promotion)."""
    when = when.astimezone(UTC) if when.tzinfo else when.replace(tzinfo=UTC)
    with engine.connect() as conn:
        return conn.execute(
            sa.select(model_promotions.c.to_version)
            .where(
                model_promotions.c.model_name == model_name, model_promotions.c.created_at <= when
            )
            .order_by(model_promotions.c.created_at.desc(), model_promotions.c.id.desc())
            .limit(1)
        ).scalar()


def rollback_target(engine: Engine, model_name: str, champion: str) -> str | None:
    """The champion before the promotion that made `champion` champion (rollback returns to it)."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(model_promotions.c.from_version)
            .where(
                model_promotions.c.model_name == model_name,
                model_promotions.c.action == PROMOTE,
                model_promotions.c.to_version == str(champion),
            )
            .order_by(model_promotions.c.created_at.desc(), model_promotions.c.id.desc())
            .limit(1)
        ).scalar()
