"""Monitoring figures per upload, model version and account, and the alerts they raise.

Two moments: when an upload completes (`upload_figures`: score PSI, the label-free estimate, and
per-column drift, stored in upload_metrics / upload_drift), and when someone asks or outcomes
arrive (`monitor_model`: realised figures from the outcomes table beside the stored estimates,
plus `alerts`). Pure functions over frames; the callers read and write the stores.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from models.monitoring import estimated_performance, realised_performance, score_shares
from models.profile import ModelProfile
from retainwise.config.settings import setting_default
from retainwise.uploads.report import psi

AUC_FLOOR = 0.70  # realised or estimated ROC AUC below this: the model is degraded
CALIBRATION_CAP = 0.10  # realised expected calibration error above this: degraded
MIN_LABELLED_ROWS = 200  # realised figures with fewer labels are shown but raise no alert
ESTIMATE_NAMES = {
    "roc_auc": "roc_auc",
    "precision": "precision_at_threshold",
    "recall": "recall_at_threshold",
    "churn_count": "churn_count",
}


def upload_figures(
    report: dict[str, Any], probabilities: np.ndarray, account: str, profile: ModelProfile
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The upload_metrics row and upload_drift rows of one completed upload."""
    estimate = estimated_performance(probabilities, profile.threshold)
    metrics: dict[str, Any] = {
        "prediction_id": report["prediction_id"],
        "account": account,
        "model_name": report["model_name"],
        "model_version": str(report["model_version"]),
        "rows_scored": int(len(probabilities)),
        "score_psi": (
            psi(np.asarray(profile.score_shares), score_shares(probabilities))
            if profile.score_shares and len(probabilities)
            else None
        ),
    }
    for column, name in ESTIMATE_NAMES.items():
        band = estimate[name]
        metrics.update(
            {
                f"est_{column}": band["value"],
                f"est_{column}_low": band["low"],
                f"est_{column}_high": band["high"],
            }
        )
    rows = max(int(report.get("rows_scored") or 0), 1)
    drift = [
        {
            "column_name": name,
            "psi": column.get("psi"),
            "unseen_share": (report.get("unknown_categories", {}).get(name, 0) / rows),
        }
        for name, column in report["columns"].items()
    ]
    return metrics, drift


def realised_by(
    labelled: pd.DataFrame, keys: list[str], profile_of: Callable[[str], ModelProfile]
) -> list[dict[str, Any]]:
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
        groups.append({**dict(zip(keys, key, strict=True)), **realised})
    return groups


def monitor_model(
    metrics: pd.DataFrame,
    drift: pd.DataFrame,
    labelled: pd.DataFrame,
    profile_of: Callable[[str], ModelProfile],
    drift_alert_psi: float = setting_default("drift_alert_psi"),
) -> dict[str, Any]:
    """Per upload: estimate beside realised and each column's PSI; per version and per account:
    realised on pooled labels; per column: the latest PSI; and the alerts these raise (drift
    above `drift_alert_psi`, Settings.drift_alert_psi)."""
    realised_uploads = {
        row["prediction_id"]: row
        for row in realised_by(labelled, ["prediction_id", "model_version"], profile_of)
    }
    column_psi = {
        prediction_id: dict(zip(rows["column_name"], rows["psi"].map(_rounded), strict=True))
        for prediction_id, rows in drift.groupby("prediction_id", sort=False)
    }
    uploads = []
    for row in metrics.to_dict("records"):
        realised = realised_uploads.get(row["prediction_id"], {})
        uploads.append(
            {
                "prediction_id": row["prediction_id"],
                "account": row["account"],
                "model_version": row["model_version"],
                "completed_at": row.get("completed_at"),
                "rows_scored": row["rows_scored"],
                "score_psi": row["score_psi"],
                "estimated_roc_auc": row["est_roc_auc"],
                "estimated_roc_auc_band": [row["est_roc_auc_low"], row["est_roc_auc_high"]],
                "estimated_churn_count": row["est_churn_count"],
                "labelled_rows": realised.get("rows", 0),
                "realised_roc_auc": realised.get("roc_auc"),
                "realised_churn_count": realised.get("churned"),
                "realised_calibration_error": realised.get("expected_calibration_error"),
                "column_psi": column_psi.get(row["prediction_id"], {}),
            }
        )
    latest = (
        drift.drop_duplicates("column_name", keep="last").set_index("column_name")
        if len(drift)
        else pd.DataFrame(columns=["psi", "unseen_share"])
    )
    figures = {
        "uploads": uploads,
        "versions": realised_by(labelled, ["model_version"], profile_of),
        "accounts": realised_by(labelled, ["account", "model_version"], profile_of),
        "drift": {
            name: {"psi": r["psi"], "unseen_share": r["unseen_share"]}
            for name, r in latest.iterrows()
        },
        "drift_alert_psi": drift_alert_psi,
    }
    figures["alerts"] = alerts(figures)
    return figures


def alerts(figures: dict[str, Any]) -> list[dict[str, Any]]:
    """`degraded` per version (AUC under the floor, calibration error over the cap) and `drifted`
    (the latest upload's PSI over figures["drift_alert_psi"] on a feature column or the scores)."""
    drift_psi = figures["drift_alert_psi"]
    found = []
    labelled_uploads = [u for u in figures["uploads"] if u["labelled_rows"] >= MIN_LABELLED_ROWS]
    judged = [
        (
            f"version {v['model_version']}",
            v["model_version"],
            v["roc_auc"],
            v["expected_calibration_error"],
        )
        for v in figures["versions"]
        if v["rows"] >= MIN_LABELLED_ROWS
    ]
    judged += [
        (
            f"upload {u['prediction_id']}",
            u["model_version"],
            u["realised_roc_auc"],
            u["realised_calibration_error"],
        )
        for u in labelled_uploads[-1:]
    ]
    for where, version, auc, calibration in judged:
        reasons = []
        if auc is not None and auc < AUC_FLOOR:
            reasons.append(f"realised ROC AUC {auc:.3f} < {AUC_FLOOR} on {where}")
        if calibration > CALIBRATION_CAP:
            reasons.append(f"calibration error {calibration:.3f} > {CALIBRATION_CAP} on {where}")
        if reasons:
            found.append(
                {"event": "retainwise.model.degraded", "model_version": version, "reasons": reasons}
            )
    if figures["uploads"]:
        last = figures["uploads"][-1]
        if last["estimated_roc_auc"] is not None and last["estimated_roc_auc"] < AUC_FLOOR:
            found.append(
                {
                    "event": "retainwise.model.degraded",
                    "model_version": last["model_version"],
                    "reasons": [
                        f"estimated ROC AUC {last['estimated_roc_auc']:.3f} < "
                        f"{AUC_FLOOR} on upload {last['prediction_id']}"
                    ],
                }
            )
        drifted = {
            name: d["psi"]
            for name, d in figures["drift"].items()
            if d["psi"] is not None and d["psi"] > drift_psi
        }
        if last["score_psi"] is not None and last["score_psi"] > drift_psi:
            drifted["churn_probability"] = last["score_psi"]
        if drifted:
            found.append(
                {
                    "event": "retainwise.data.drifted",
                    "model_version": last["model_version"],
                    "prediction_id": last["prediction_id"],
                    "columns": {k: round(float(v), 4) for k, v in drifted.items()},
                }
            )
    return found


def model_figures(engine, settings, name: str, account: str | None = None) -> dict[str, Any]:
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
    return {"model": name, "account": account, **figures}


def terminal_table(figures: dict[str, Any]) -> str:
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
            u["prediction_id"][:8],
            u["account"],
            u["model_version"],
            str(u["rows_scored"]),
            str(u["labelled_rows"]),
            f"{show(u['estimated_roc_auc'])} ({show(u['estimated_roc_auc_band'][0])}-"
            f"{show(u['estimated_roc_auc_band'][1])})",
            show(u["realised_roc_auc"]),
            show(u["estimated_churn_count"], 0),
            "-" if u["realised_churn_count"] is None else str(u["realised_churn_count"]),
            show(u["score_psi"]),
        ]
        for u in figures["uploads"]
    ]
    widths = [max(len(row[i]) for row in [header] + lines) for i in range(len(header))]
    text = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
        for row in [header] + lines
    ]
    drifted = [
        f"{name} {d['psi']:.2f}"
        for name, d in figures["drift"].items()
        if d["psi"] is not None and d["psi"] > figures["drift_alert_psi"]
    ]
    text.append(
        f"drifted columns (PSI > {figures['drift_alert_psi']}, latest upload): "
        + (", ".join(drifted) or "none")
    )
    text += [
        f"ALERT {a['event']} v{a['model_version']}: "
        + "; ".join(a.get("reasons") or [f"{k} {v}" for k, v in a["columns"].items()])
        for a in figures["alerts"]
    ]
    return "\n".join(text)


def version_table(figures: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per model version, the per-upload rows an artifact table shows (plain JSON values)."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for u in figures["uploads"]:
        tables.setdefault(str(u["model_version"]), []).append(
            {
                "upload": u["prediction_id"],
                "account": u["account"],
                "completed_at": str(u["completed_at"]),
                "rows": u["rows_scored"],
                "estimated_roc_auc": _rounded(u["estimated_roc_auc"]),
                "realised_roc_auc": _rounded(u["realised_roc_auc"]),
                "labelled_rows": u["labelled_rows"],
                "score_psi": _rounded(u["score_psi"]),
            }
        )
    return tables


def auc_chart(name: str, version: str, rows: list[dict[str, Any]], width: int = 40) -> str:
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
            f"{row['completed_at'][:16]} {row['upload'][:8]} est  {bar(row['estimated_roc_auc'])}",
            f"{'':16} {'':8} real {bar(row['realised_roc_auc'])}",
        ]
    return "\n".join(lines + ["```"])


def _rounded(value, digits: int = 4):
    return None if value is None or value != value else round(float(value), digits)
