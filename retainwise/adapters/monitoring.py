"""`upload_metrics` and `upload_drift`: figures stored per upload when it completes, for trends.

Written once per upload (a rerun of the upload replaces its rows). Functions take an Engine.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from models.monitoring import Estimate
from retainwise.adapters.db import metadata, predictions, utcnow

# upload_metrics' est_<name> columns and the Estimate figure each stores
ESTIMATE_COLUMNS = {
    "roc_auc": "roc_auc",
    "precision": "precision_at_threshold",
    "recall": "recall_at_threshold",
    "churn_count": "churn_count",
}
ESTIMATES = tuple(ESTIMATE_COLUMNS)

upload_metrics = sa.Table(
    "upload_metrics",
    metadata,
    sa.Column("prediction_id", sa.String(36), primary_key=True),
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
    sa.Index("ix_upload_metrics_model_name_model_version", "model_name", "model_version"),
)

upload_drift = sa.Table(
    "upload_drift",
    metadata,
    sa.Column("prediction_id", sa.String(36), primary_key=True),
    sa.Column("column_name", sa.String(255), primary_key=True),
    sa.Column("psi", sa.Float),
    sa.Column("unseen_share", sa.Float),
)


@dataclass(frozen=True)
class UploadMetrics:
    """One upload_metrics row: the score PSI and the label-free estimate of a completed upload."""

    prediction_id: str
    account: str
    model_name: str
    model_version: str
    rows_scored: int
    score_psi: float | None
    estimate: Estimate

    def row(self) -> dict[str, object]:
        """The table's columns (est_<name>, est_<name>_low, est_<name>_high per estimate)."""
        fields = {name: value for name, value in vars(self).items() if name != "estimate"}
        for column, figure in ESTIMATE_COLUMNS.items():
            band = getattr(self.estimate, figure)
            fields.update(
                {
                    f"est_{column}": band.value,
                    f"est_{column}_low": band.low,
                    f"est_{column}_high": band.high,
                }
            )
        return fields


@dataclass(frozen=True)
class ColumnDrift:
    """One upload_drift row: a column's PSI against training and its share of unseen categories."""

    column_name: str
    psi: float | None
    unseen_share: float


def record_upload(engine: Engine, metrics: UploadMetrics, drift: list[ColumnDrift]) -> None:
    """One upload's figures (upload_metrics columns) and per-column drift, replacing older ones."""
    prediction_id = metrics.prediction_id
    with engine.begin() as conn:
        conn.execute(upload_drift.delete().where(upload_drift.c.prediction_id == prediction_id))
        conn.execute(upload_metrics.delete().where(upload_metrics.c.prediction_id == prediction_id))
        conn.execute(upload_metrics.insert(), [{**metrics.row(), "computed_at": utcnow()}])
        if drift:
            conn.execute(
                upload_drift.insert(),
                [{**asdict(row), "prediction_id": prediction_id} for row in drift],
            )


def _filtered(query, table, model_name: str | None, account: str | None):
    if model_name is not None:
        query = query.where(table.c.model_name == model_name)
    if account is not None:
        query = query.where(table.c.account == account)
    return query


def metrics_rows(
    engine: Engine, model_name: str | None = None, account: str | None = None
) -> pd.DataFrame:
    """Per-upload figures in completion order (the trend), with the upload's completion time."""
    query = (
        sa.select(upload_metrics, predictions.c.completed_at)
        .join(predictions, predictions.c.id == upload_metrics.c.prediction_id)
        .order_by(predictions.c.completed_at, upload_metrics.c.prediction_id)
    )
    with engine.connect() as conn:
        result = conn.execute(_filtered(query, upload_metrics, model_name, account))
        return pd.DataFrame(result.mappings().all(), columns=list(result.keys()))


def drift_rows(
    engine: Engine, model_name: str | None = None, account: str | None = None
) -> pd.DataFrame:
    """Per-upload, per-column PSI and unseen share, oldest upload first."""
    query = (
        sa.select(
            upload_drift,
            upload_metrics.c.model_version,
            upload_metrics.c.account,
            predictions.c.completed_at,
        )
        .join(upload_metrics, upload_metrics.c.prediction_id == upload_drift.c.prediction_id)
        .join(predictions, predictions.c.id == upload_drift.c.prediction_id)
        .order_by(predictions.c.completed_at, upload_drift.c.column_name)
    )
    with engine.connect() as conn:
        result = conn.execute(_filtered(query, upload_metrics, model_name, account))
        return pd.DataFrame(result.mappings().all(), columns=list(result.keys()))


def monitored_models(engine: Engine, account: str) -> list[str]:
    """The models whose uploads of this account have stored figures, most recently used first."""
    latest = sa.func.max(predictions.c.completed_at)
    query = (
        sa.select(upload_metrics.c.model_name, latest.label("latest"))
        .join(predictions, predictions.c.id == upload_metrics.c.prediction_id)
        .where(upload_metrics.c.account == account)
        .group_by(upload_metrics.c.model_name)
        .order_by(latest.desc(), upload_metrics.c.model_name)
    )
    with engine.connect() as conn:
        return [row.model_name for row in conn.execute(query)]
