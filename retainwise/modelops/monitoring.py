"""Monitoring figures per upload, model version and account, and the alerts they raise.

Two moments: when an upload completes (`upload_figures`: score PSI, the label-free estimate, and
per-column drift, stored in upload_metrics / upload_drift), and when someone asks or outcomes
arrive (`monitor_model`: realised figures from the outcomes table beside the stored estimates,
plus `alerts`). Pure functions over frames; the callers read and write the stores. The figures
are typed; `ModelFigures.to_json` is the document the CLI prints and the web app serves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import Any

import numpy as np
import pandas as pd

from models.monitoring import (
    Realised,
    ScoreCounts,
    estimated_performance,
    realised_performance,
    score_shares,
)
from models.profile import ModelProfile
from retainwise.adapters.monitoring import ColumnDrift, UploadMetrics
from retainwise.config.settings import setting_default
from retainwise.uploads.report import psi

AUC_FLOOR = 0.70  # realised or estimated ROC AUC below this: the model is degraded
CALIBRATION_CAP = 0.10  # realised expected calibration error above this: degraded
MIN_LABELLED_ROWS = 200  # realised figures with fewer labels are shown but raise no alert


class Event(StrEnum):
    """The events alerts are emitted as (the train-model automation starts on DEGRADED)."""

    DEGRADED = "retainwise.model.degraded"
    DEGRADED_REVIEW = "retainwise.model.degraded-review"  # DEGRADED, for an operator to act on
    DRIFTED = "retainwise.data.drifted"


@dataclass(frozen=True)
class ScoredUpload:
    """What the upload figures read of a completed upload's report (report.json)."""

    prediction_id: str
    model_name: str
    model_version: str
    rows_scored: int
    column_psi: dict[str, float | None]
    unknown_categories: dict[str, int]

    @classmethod
    def from_report(cls, report: dict[str, Any]) -> ScoredUpload:
        return cls(
            prediction_id=report["prediction_id"],
            model_name=report["model_name"],
            model_version=str(report["model_version"]),
            rows_scored=int(report.get("rows_scored") or 0),
            column_psi={name: c.get("psi") for name, c in report["columns"].items()},
            unknown_categories=dict(report.get("unknown_categories", {})),
        )


@dataclass(frozen=True)
class RealisedGroup:
    """Realised figures on one group of labelled rows, all scored by one model version."""

    model_version: str
    realised: Realised
    account: str | None = None
    prediction_id: str | None = None

    def to_json(self) -> dict[str, object]:
        key = {"account": self.account} if self.account is not None else {}
        return {**key, "model_version": self.model_version, **self.realised.to_json()}


@dataclass(frozen=True)
class UploadFigures:
    """One upload in the trend: the stored estimate beside the realised figures, and drift."""

    prediction_id: str
    account: str
    model_version: str
    completed_at: datetime | None
    rows_scored: int
    score_psi: float | None
    estimated_roc_auc: float | None
    estimated_roc_auc_band: tuple[float | None, float | None]
    estimated_churn_count: float | None
    labelled_rows: int
    realised_roc_auc: float | None
    realised_churn_count: int | None
    realised_calibration_error: float | None
    column_psi: dict[str, float | None]

    def to_json(self) -> dict[str, object]:
        return {**vars(self), "estimated_roc_auc_band": list(self.estimated_roc_auc_band)}


@dataclass(frozen=True)
class Alert:
    """`degraded` (with its reasons) or `drifted` (the latest upload's columns over the limit);
    `accounts` when gate_retraining holds a degraded one back for review."""

    event: Event
    model_version: str
    reasons: list[str] = field(default_factory=list)
    prediction_id: str | None = None
    columns: dict[str, float] = field(default_factory=dict)
    accounts: list[str] | None = None

    def to_json(self) -> dict[str, object]:
        found: dict[str, object] = {"event": self.event.value, "model_version": self.model_version}
        if self.event == Event.DRIFTED:
            found.update(prediction_id=self.prediction_id, columns=self.columns)
        else:
            found["reasons"] = self.reasons
        if self.accounts is not None:
            found["accounts"] = self.accounts
        return found


@dataclass(frozen=True)
class ModelFigures:
    """A model's figures: per upload, per version and per account (realised on pooled labels),
    the latest PSI per column, and the alerts they raise."""

    uploads: list[UploadFigures]
    versions: list[RealisedGroup]
    accounts: list[RealisedGroup]
    drift: dict[str, ColumnDrift]
    drift_alert_psi: float
    alerts: list[Alert]
    model: str | None = None
    account: str | None = None

    def to_json(self) -> dict[str, object]:
        """What `retainwise model monitor` prints last and /app/monitoring.json serves."""
        return {
            "model": self.model,
            "account": self.account,
            "uploads": [u.to_json() for u in self.uploads],
            "versions": [v.to_json() for v in self.versions],
            "accounts": [a.to_json() for a in self.accounts],
            "drift": {
                name: {"psi": d.psi, "unseen_share": d.unseen_share}
                for name, d in self.drift.items()
            },
            "drift_alert_psi": self.drift_alert_psi,
            "alerts": [a.to_json() for a in self.alerts],
        }


def upload_figures(
    upload: ScoredUpload,
    probabilities: np.ndarray | ScoreCounts,
    account: str,
    profile: ModelProfile,
) -> tuple[UploadMetrics, list[ColumnDrift]]:
    """The upload_metrics row and upload_drift rows of one completed upload; `probabilities` as
    an array or counted chunk by chunk (`ScoreCounts`: the same figures, less memory)."""
    if isinstance(probabilities, ScoreCounts):
        rows, shares = probabilities.rows, probabilities.shares
        estimate = probabilities.estimate(profile.threshold)
    else:
        rows, shares = len(probabilities), partial(score_shares, probabilities)
        estimate = estimated_performance(probabilities, profile.threshold)
    metrics = UploadMetrics(
        prediction_id=upload.prediction_id,
        account=account,
        model_name=upload.model_name,
        model_version=upload.model_version,
        rows_scored=int(rows),
        score_psi=(
            psi(np.asarray(profile.score_shares), shares())
            if profile.score_shares and rows
            else None
        ),
        estimate=estimate,
    )
    rows = max(upload.rows_scored, 1)
    drift = [
        ColumnDrift(name, value, upload.unknown_categories.get(name, 0) / rows)
        for name, value in upload.column_psi.items()
    ]
    return metrics, drift


def realised_by(
    labelled: pd.DataFrame, keys: list[str], profile_of: Callable[[str], ModelProfile]
) -> list[RealisedGroup]:
    """Realised figures per group of labelled rows (each group of one model version)."""
    groups = []
    for key, rows in labelled.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        profile = profile_of(str(rows["model_version"].iloc[0]))
        realised = realised_performance(
            rows["churned"].to_numpy(int),
            rows["churn_probability"].to_numpy(float),
            profile.threshold,
            profile.cutoffs,
        )
        groups.append(RealisedGroup(realised=realised, **dict(zip(keys, key, strict=True))))
    return groups


def monitor_model(
    metrics: pd.DataFrame,
    drift: pd.DataFrame,
    labelled: pd.DataFrame,
    profile_of: Callable[[str], ModelProfile],
    drift_alert_psi: float = setting_default("drift_alert_psi"),
) -> ModelFigures:
    """Per upload: estimate beside realised and each column's PSI; per version and per account:
    realised on pooled labels; per column: the latest PSI; and the alerts these raise (drift
    above `drift_alert_psi`, Settings.drift_alert_psi)."""
    realised_uploads = {
        group.prediction_id: group.realised
        for group in realised_by(labelled, ["prediction_id", "model_version"], profile_of)
    }
    column_psi = {
        prediction_id: dict(zip(rows["column_name"], rows["psi"].map(_rounded), strict=True))
        for prediction_id, rows in drift.groupby("prediction_id", sort=False)
    }
    uploads = []
    for row in metrics.to_dict("records"):
        realised = realised_uploads.get(row["prediction_id"])
        uploads.append(
            UploadFigures(
                prediction_id=row["prediction_id"],
                account=row["account"],
                model_version=row["model_version"],
                completed_at=row.get("completed_at"),
                rows_scored=row["rows_scored"],
                score_psi=row["score_psi"],
                estimated_roc_auc=row["est_roc_auc"],
                estimated_roc_auc_band=(row["est_roc_auc_low"], row["est_roc_auc_high"]),
                estimated_churn_count=row["est_churn_count"],
                labelled_rows=realised.rows if realised else 0,
                realised_roc_auc=realised.roc_auc if realised else None,
                realised_churn_count=realised.churned if realised else None,
                realised_calibration_error=(
                    realised.expected_calibration_error if realised else None
                ),
                column_psi=column_psi.get(row["prediction_id"], {}),
            )
        )
    latest = (
        drift.drop_duplicates("column_name", keep="last").set_index("column_name")
        if len(drift)
        else pd.DataFrame(columns=["psi", "unseen_share"])
    )
    figures = ModelFigures(
        uploads=uploads,
        versions=realised_by(labelled, ["model_version"], profile_of),
        accounts=realised_by(labelled, ["account", "model_version"], profile_of),
        drift={
            str(name): ColumnDrift(str(name), r["psi"], r["unseen_share"])
            for name, r in latest.iterrows()
        },
        drift_alert_psi=drift_alert_psi,
        alerts=[],
    )
    return replace(figures, alerts=alerts(figures))


def alerts(figures: ModelFigures) -> list[Alert]:
    """`degraded` per version (AUC under the floor, calibration error over the cap) and `drifted`
    (the latest upload's PSI over figures.drift_alert_psi on a feature column or the scores)."""
    found = _degraded(figures)
    if figures.uploads:
        last = figures.uploads[-1]
        if last.estimated_roc_auc is not None and last.estimated_roc_auc < AUC_FLOOR:
            found.append(
                Alert(
                    Event.DEGRADED,
                    last.model_version,
                    reasons=[
                        f"estimated ROC AUC {last.estimated_roc_auc:.3f} < "
                        f"{AUC_FLOOR} on upload {last.prediction_id}"
                    ],
                )
            )
        drift_psi = figures.drift_alert_psi
        drifted = {
            name: d.psi
            for name, d in figures.drift.items()
            if d.psi is not None and d.psi > drift_psi
        }
        if last.score_psi is not None and last.score_psi > drift_psi:
            drifted["churn_probability"] = last.score_psi
        if drifted:
            found.append(
                Alert(
                    Event.DRIFTED,
                    last.model_version,
                    prediction_id=last.prediction_id,
                    columns={k: round(float(v), 4) for k, v in drifted.items()},
                )
            )
    return found


def _degraded(figures: ModelFigures) -> list[Alert]:
    """Realised AUC under the floor or calibration error over the cap, per version (pooled) and
    on the latest upload with enough labels."""
    judged: list[tuple[str, str, float | None, float | None]] = [
        (
            f"version {v.model_version}",
            v.model_version,
            v.realised.roc_auc,
            v.realised.expected_calibration_error,
        )
        for v in figures.versions
        if v.realised.rows >= MIN_LABELLED_ROWS
    ]
    labelled_uploads = [u for u in figures.uploads if u.labelled_rows >= MIN_LABELLED_ROWS]
    judged += [
        (
            f"upload {u.prediction_id}",
            u.model_version,
            u.realised_roc_auc,
            u.realised_calibration_error,
        )
        for u in labelled_uploads[-1:]
    ]
    found = []
    for where, version, auc, calibration in judged:
        reasons = []
        if auc is not None and auc < AUC_FLOOR:
            reasons.append(f"realised ROC AUC {auc:.3f} < {AUC_FLOOR} on {where}")
        if calibration is not None and calibration > CALIBRATION_CAP:
            reasons.append(f"calibration error {calibration:.3f} > {CALIBRATION_CAP} on {where}")
        if reasons:
            found.append(Alert(Event.DEGRADED, version, reasons=reasons))
    return found


def model_figures(engine, settings, name: str, account: str | None = None) -> ModelFigures:
    """Everything `retainwise model monitor` and the monitor flow show, read from the stores."""
    from retainwise.adapters import monitoring as tables
    from retainwise.adapters.mlflow_registry import load_version
    from retainwise.adapters.outcomes import labelled_rows

    figures = monitor_model(
        tables.metrics_rows(engine, name, account),
        tables.drift_rows(engine, name, account),
        labelled_rows(engine, name, account),
        lambda version: load_version(name, version, settings.tracking_uri).profile,
        settings.drift_alert_psi,
    )
    return replace(figures, model=name, account=account)


def terminal_table(figures: ModelFigures) -> str:
    """Per upload: estimated vs realised ROC AUC, churn counts and score PSI, aligned columns."""

    def show(value, digits=3):
        return "-" if value is None or value != value else f"{value:.{digits}f}"

    header = [
        "upload",
        "account",
        "version",
        "rows",
        "labelled",
        "est. AUC (band)",
        "real AUC",
        "est. churn",
        "real churn",
        "score PSI",
    ]
    lines = [
        [
            u.prediction_id[:8],
            u.account,
            u.model_version,
            str(u.rows_scored),
            str(u.labelled_rows),
            f"{show(u.estimated_roc_auc)} ({show(u.estimated_roc_auc_band[0])}-"
            f"{show(u.estimated_roc_auc_band[1])})",
            show(u.realised_roc_auc),
            show(u.estimated_churn_count, 0),
            "-" if u.realised_churn_count is None else str(u.realised_churn_count),
            show(u.score_psi),
        ]
        for u in figures.uploads
    ]
    widths = [max(len(row[i]) for row in [header] + lines) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in [header] + lines
    ]
    drifted = [
        f"{name} {d.psi:.2f}"
        for name, d in figures.drift.items()
        if d.psi is not None and d.psi > figures.drift_alert_psi
    ]
    text.append(
        f"drifted columns (PSI > {figures.drift_alert_psi}, latest upload): "
        + (", ".join(drifted) or "none")
    )
    text += [
        f"ALERT {a.event.value} v{a.model_version}: "
        + "; ".join(a.reasons or [f"{k} {v}" for k, v in a.columns.items()])
        for a in figures.alerts
    ]
    return "\n".join(text)


@dataclass(frozen=True)
class ArtifactRow:
    """One upload in a version's artifact table (plain JSON values, rounded)."""

    upload: str
    account: str
    completed_at: str
    rows: int
    estimated_roc_auc: float | None
    realised_roc_auc: float | None
    labelled_rows: int
    score_psi: float | None

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def version_table(figures: ModelFigures) -> dict[str, list[ArtifactRow]]:
    """Per model version, the per-upload rows an artifact table shows."""
    tables: dict[str, list[ArtifactRow]] = {}
    for u in figures.uploads:
        tables.setdefault(str(u.model_version), []).append(
            ArtifactRow(
                upload=u.prediction_id,
                account=u.account,
                completed_at=str(u.completed_at),
                rows=u.rows_scored,
                estimated_roc_auc=_rounded(u.estimated_roc_auc),
                realised_roc_auc=_rounded(u.realised_roc_auc),
                labelled_rows=u.labelled_rows,
                score_psi=_rounded(u.score_psi),
            )
        )
    return tables


def auc_chart(name: str, version: str, rows: list[ArtifactRow], width: int = 40) -> str:
    """A text bar chart (markdown) of estimated and realised ROC AUC per upload, 0.5 to 1.0."""

    def bar(value) -> str:
        if value is None:
            return "(no labels yet)"
        filled = int(round(max(0.0, min(1.0, (value - 0.5) / 0.5)) * width))
        return "█" * filled + "·" * (width - filled) + f" {value:.3f}"

    lines = [
        f"# {name} v{version}: ROC AUC per upload (bar from 0.5 to 1.0; floor {AUC_FLOOR})",
        "",
        "```",
    ]
    for row in rows:
        lines += [
            f"{row.completed_at[:16]} {row.upload[:8]} est  {bar(row.estimated_roc_auc)}",
            f"{'':16} {'':8} real {bar(row.realised_roc_auc)}",
        ]
    return "\n".join(lines + ["```"])


def _rounded(value, digits: int = 4) -> float | None:
    return None if value is None or value != value else round(float(value), digits)
