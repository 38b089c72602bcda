"""Account-wide figures over the customer history tables, for the dashboard: what drives churn in
an upload, and how many customers moved into HIGH since the upload before it.

Reads `customer_scores` and `customer_explanations` (adapters/customers.py writes them), always
scoped by account. Functions take an Engine; nothing connects at import.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from retainwise.adapters.customers import customer_explanations, customer_scores
from retainwise.adapters.db import Status, predictions

HIGH = "HIGH"


@dataclass(frozen=True)
class Drivers:
    explained: int  # customers of the upload whose explanation is stored
    averaged: int  # how many of them the means are over (at most DRIVER_SAMPLE)
    features: list[tuple[str, float]]  # mean absolute contribution (log-odds), largest first


DRIVER_SAMPLE = 2_000  # enough for a bar chart; reading all 25k explanations took 6 s under load


def drivers(engine: Engine, account: str, prediction_id: str) -> Drivers:
    """Mean |contribution| per feature over (up to DRIVER_SAMPLE of) the upload's explained
    customers, taken in customer id order."""
    mine = sa.and_(
        customer_explanations.c.account == account,
        customer_explanations.c.prediction_id == prediction_id,
    )
    with engine.connect() as conn:
        explained = conn.execute(
            sa.select(sa.func.count()).select_from(customer_explanations).where(mine)
        ).scalar_one()
        stored = conn.execute(
            sa.select(customer_explanations.c.contributions)
            .where(mine)
            .order_by(customer_explanations.c.customer_id)
            .limit(DRIVER_SAMPLE)
        ).scalars()
        totals: dict[str, float] = defaultdict(float)
        averaged = 0
        for text in stored:
            averaged += 1
            for item in json.loads(text):
                totals[item["feature"]] += abs(item["contribution"])
    means = [(name, total / averaged) for name, total in totals.items()]
    return Drivers(explained, averaged, sorted(means, key=lambda item: -item[1]))


def previous_upload(engine: Engine, account: str, prediction_id: str) -> str | None:
    """The account's completed upload for the same model just before this one, with scores."""
    current = predictions.alias("current")
    stored = sa.exists().where(customer_scores.c.prediction_id == predictions.c.id)
    with engine.connect() as conn:
        return conn.execute(
            sa.select(predictions.c.id)
            .join(current, current.c.id == prediction_id)
            .where(
                predictions.c.account == account,
                current.c.account == account,
                predictions.c.model_name == current.c.model_name,
                predictions.c.status == Status.COMPLETED.value,
                predictions.c.completed_at < current.c.completed_at,
                stored,
            )
            .order_by(predictions.c.completed_at.desc())
            .limit(1)
        ).scalar()


def moved_into_high(engine: Engine, account: str, prediction_id: str) -> int | None:
    """Customers HIGH in this upload and below HIGH in the previous one; None without one."""
    previous = previous_upload(engine, account, prediction_id)
    if previous is None:
        return None
    now, before = customer_scores.alias("now"), customer_scores.alias("before")
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count())
            .select_from(now)
            .join(before, before.c.customer_id == now.c.customer_id)
            .where(
                now.c.prediction_id == prediction_id,
                now.c.account == account,
                now.c.churn_risk == HIGH,
                before.c.prediction_id == previous,
                before.c.churn_risk != HIGH,
            )
        ).scalar_one()
