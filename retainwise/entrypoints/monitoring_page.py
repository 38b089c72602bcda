"""The web app's monitoring page: per model version, estimated and realised ROC AUC over time, drift
per column per upload, and churn per risk tier, for the signed-in account only.

The figures are `modelops.monitoring.model_figures`, the code behind `retainwise model monitor` and
the monitor flow, always called with the account; this module only shapes them into charts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeGuard

import numpy as np
import pandas as pd

from retainwise.adapters.monitoring import monitored_models
from retainwise.adapters.resources import Resources
from retainwise.entrypoints.charts import Chart, LineChart, bar_chart, line_chart
from retainwise.modelops.monitoring import (
    AUC_FLOOR,
    Alert,
    ModelFigures,
    RealisedGroup,
    UploadFigures,
    model_figures,
)

VERSION_COLOURS = 6  # colour classes v0..v5 in base.html, reused in turn
DRIFT_UPLOADS_SHOWN = 12  # the latest uploads in the drift table (the JSON twin has them all)
HIGH_TIER_RATE = 0.5  # HIGH means "more likely to churn than not": it should churn >= 50%
TIER_CSS = {"HIGH": "high", "MEDIUM": "medium", "LOW": "low"}


class UnknownModel(LookupError):
    """The account has no monitoring figures for the model asked for (or it is another's)."""


class RegistryUnavailable(RuntimeError):
    """MLflow could not give a version: realised figures need its threshold and tier cutoffs."""


@dataclass(frozen=True)
class PsiCell:
    text: str
    css: str
    title: str


@dataclass(frozen=True)
class DriftRow:
    name: str
    css: str
    cells: list[PsiCell]


@dataclass(frozen=True)
class DriftHead:
    id: str
    version: str
    when: str


@dataclass(frozen=True)
class DriftTable:
    heads: list[DriftHead]
    rows: list[DriftRow]
    drifted_latest: list[str]


@dataclass(frozen=True)
class TierChart:
    version: str
    rows: int
    high_rate: float | None
    meets: bool
    chart: Chart


@dataclass(frozen=True)
class MonitoringPage:
    """What monitoring.html shows of one model's figures."""

    auc: LineChart
    drift: DriftTable
    tiers: list[TierChart]
    labelled_rows: int
    uploads_shown: int
    drift_psi: float
    alerts: list[Alert]
    uploads: int
    auc_floor: float


def account_figures(
    resources: Resources, account: str, model: str | None = None
) -> tuple[list[str], ModelFigures | None]:
    """The account's monitored models and the figures of `model` (else the latest used), every
    read scoped by the account."""
    if not account:
        raise ValueError("monitoring figures are read for one account, never for all")
    models = monitored_models(resources.engine, account)
    if model is not None and model not in models:
        raise UnknownModel(model)
    model = model or (models[0] if models else None)
    if model is None:
        return models, None
    from mlflow.exceptions import MlflowException  # model_figures reads MLflow anyway

    try:
        return models, model_figures(resources.engine, resources.settings, model, account)
    except (MlflowException, OSError) as exc:
        raise RegistryUnavailable(str(exc)) from exc


def page_context(figures: ModelFigures) -> MonitoringPage:
    """The charts and tables of one model's figures."""
    uploads = figures.uploads
    versions = sorted({str(u.model_version) for u in uploads}, key=_version_order)
    css = {version: f"v{i % VERSION_COLOURS}" for i, version in enumerate(versions)}
    return MonitoringPage(
        auc=auc_over_time(uploads, versions, css),
        drift=drift_table(uploads, figures.drift_alert_psi),
        tiers=tier_charts(figures.versions),
        labelled_rows=sum(u.labelled_rows for u in uploads),
        uploads_shown=min(len(uploads), DRIFT_UPLOADS_SHOWN),
        drift_psi=figures.drift_alert_psi,
        alerts=figures.alerts,
        uploads=len(uploads),
        auc_floor=AUC_FLOOR,
    )


def auc_over_time(
    uploads: list[UploadFigures], versions: list[str], css: dict[str, str]
) -> LineChart:
    """Per version, the estimate (dashed, with its band) and, where outcomes exist, the realised
    ROC AUC (solid) at each upload's completion time."""
    series = []
    for version in versions:
        mine = [u for u in uploads if str(u.model_version) == version and u.completed_at]
        series.append(
            (
                f"v{version} estimated",
                f"{css[version]} estimated",
                [
                    (
                        _when(u.completed_at),
                        u.estimated_roc_auc,
                        *_band(u.estimated_roc_auc_band),
                    )
                    for u in mine
                    if _number(u.estimated_roc_auc)
                ],
            )
        )
        series.append(
            (
                f"v{version} realised",
                f"{css[version]} realised",
                [
                    (_when(u.completed_at), u.realised_roc_auc, None, None)
                    for u in mine
                    if _number(u.realised_roc_auc)
                ],
            )
        )
    return line_chart(
        "auc",
        "ROC AUC per upload: realised (solid) and estimated before labels "
        "(dashed, with its 95% band)",
        series,
        x_label="upload completed",
        y_label="ROC AUC",
        y_range=(0.6, 1.0),
        y_step=0.05,
        reference=(AUC_FLOOR, f"floor {AUC_FLOOR:.2f}"),
    )


def drift_table(uploads: list[UploadFigures], alert_psi: float) -> DriftTable:
    """PSI per column (rows) per upload (columns, oldest first), the score distribution first;
    cells above `alert_psi` are marked. Columns that drifted most come first."""
    shown = uploads[-DRIFT_UPLOADS_SHOWN:]
    names = {name for u in shown for name in u.column_psi}
    worst = {
        name: max([psi for u in shown if _number(psi := u.column_psi.get(name))], default=0.0)
        for name in names
    }
    rows = [
        DriftRow(
            "scores (churn probability)",
            "scores",
            [_psi_cell(u.score_psi, alert_psi) for u in shown],
        )
    ]
    rows += [
        DriftRow(name, "", [_psi_cell(u.column_psi.get(name), alert_psi) for u in shown])
        for name in sorted(names, key=lambda n: (-worst[n], n))
    ]
    heads = [
        DriftHead(
            u.prediction_id,
            u.model_version,
            f"{_when(u.completed_at):%d %b %H:%M}" if u.completed_at else "–",
        )
        for u in shown
    ]
    drifted = [row.name for row in rows if row.cells and row.cells[-1].css == "psi-high"]
    return DriftTable(heads, rows, drifted)


def tier_charts(versions: list[RealisedGroup]) -> list[TierChart]:
    """Per version with outcomes: the churn rate of each risk tier on its labelled customers,
    against the HIGH >= 50% expectation."""
    charts = []
    for group in sorted(versions, key=lambda v: _version_order(str(v.model_version))):
        version, rows, tiers = group.model_version, group.realised.rows, group.realised.tiers
        labels = {tier: f"{tier} ({tiers[tier].rows:,})" for tier in TIER_CSS}
        high = tiers["HIGH"].churn_rate
        charts.append(
            TierChart(
                version=str(version),
                rows=rows,
                high_rate=high,
                meets=high is not None and high >= HIGH_TIER_RATE,
                chart=bar_chart(
                    f"tiers-v{version}",
                    f"v{version}: churn rate per risk tier ({rows:,} customers with outcomes)",
                    [(labels[tier], tiers[tier].churn_rate) for tier in TIER_CSS],
                    value_format="{:.0%}",
                    top=1.0,
                    threshold=HIGH_TIER_RATE,
                    threshold_label="HIGH should churn ≥ 50%",
                    missing="no customers",
                    css={labels[tier]: css for tier, css in TIER_CSS.items()},
                    empty="No customer with outcomes churned.",
                ),
            )
        )
    return charts


def plain(value: Any) -> Any:
    """JSON-ready figures: NaN as null, numpy numbers as Python ones, times as ISO text."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (datetime, pd.Timestamp)):
        return _when(value).isoformat()
    return value


def _psi_cell(psi, alert_psi: float) -> PsiCell:
    if not _number(psi):
        return PsiCell("–", "", "not measured")
    level = "psi-high" if psi > alert_psi else "psi-mid" if psi > alert_psi / 2.5 else "psi-low"
    mark = " ▲" if level == "psi-high" else ""
    return PsiCell(f"{psi:.2f}{mark}", level, f"PSI {psi:.4f}")


def _when(value) -> datetime:
    """An aware UTC time (SQLite hands back naive ones, which are UTC here)."""
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime().astimezone(UTC)


def _band(band) -> tuple[float | None, float | None]:
    low, high = band
    return (low if _number(low) else None, high if _number(high) else None)


def _number(value: object) -> TypeGuard[float]:
    return value is not None and not (isinstance(value, float) and math.isnan(value))


def _version_order(version: str) -> tuple[int, str]:
    return (int(version), "") if version.isdigit() else (1 << 30, version)
