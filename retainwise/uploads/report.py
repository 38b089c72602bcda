"""The data-quality report every upload gets: a JSON summary and an HTML page beside the results.

Row accounting, per-column missing shares, unknown categories, out-of-range counts, and drift of
each feature against the training profile (PSI, flagged above Settings.drift_alert_psi).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, fields, replace
from typing import Any, TypedDict

import jinja2
import numpy as np
import numpy.typing as npt
import pandas as pd

from models.features import bin_shares
from models.profile import FeatureProfile, ModelProfile
from models.scoring import NamedModel
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.validation import (
    ColumnQuality,
    ValidatedUpload,
    top_counts,
    unknown_categories,
)

PROBABILITY_BINS = 10
RISK_TIERS = ("HIGH", "MEDIUM", "LOW")
PSI_FLOOR = 1e-4  # share given to empty buckets, so the log stays finite
OTHER, MISSING = "(other)", "(missing)"


def psi(expected: npt.ArrayLike, actual: npt.ArrayLike) -> float:
    """Population stability index of two share vectors over the same buckets."""
    e = np.clip(np.asarray(expected, dtype=float), PSI_FLOOR, None)
    a = np.clip(np.asarray(actual, dtype=float), PSI_FLOOR, None)
    return float(np.sum((a - e) * np.log(a / e)))


def numeric_shares(values: pd.Series, feature: FeatureProfile) -> np.ndarray | None:
    """Upload shares in the training bins (missing last), binned as training binned them."""
    if not feature.bin_edges or len(feature.bin_shares) < 2 or values.empty:
        return None
    shares = bin_shares(values, feature.bin_edges)
    return np.asarray(shares) if len(shares) == len(feature.bin_shares) else None


def categorical_buckets(
    counts: dict[str | None, int], feature: FeatureProfile
) -> tuple[np.ndarray, np.ndarray] | None:
    """(training shares, upload shares) over the training categories, unseen values and missing.

    `counts`: rows per value, None for missing (ValidatedUpload.category_counts)."""
    rows = sum(counts.values())
    if not feature.category_shares or not rows:
        return None
    known = list(feature.category_shares)
    expected = [feature.category_shares[c] for c in known]
    expected += [0.0, max(0.0, 1.0 - sum(expected))]  # unseen values; missing as the remainder
    seen = [counts.get(c, 0) for c in known]
    missing = counts.get(None, 0)
    actual = [*seen, rows - missing - sum(seen), missing]
    return np.asarray(expected), np.asarray(actual, dtype=float) / rows


class ColumnReport(ColumnQuality):
    """A feature's entry in the report: its counts, then its missing share and drift."""

    missing_share: float
    training_missing_share: float
    psi: float | None  # None: no training distribution to compare with
    drifted: bool


class UploadReport(TypedDict):
    """The JSON summary written beside the results (report.json), in its key order."""

    prediction_id: str | None
    status: str  # COMPLETED or FAILED
    error: str | None
    model_name: str
    model_version: str
    source: dict[str, str]
    rows_total: int
    rows_scored: int
    rows_rejected: int
    reject_reasons: dict[str, int]
    risk_counts: dict[str, int]
    probability_histogram: list[int]
    unknown_categories: dict[str, int]
    out_of_range: dict[str, int]
    drift_threshold: float
    drifted_features: list[str]
    ignored_columns: list[str]
    columns: dict[str, ColumnReport]
    files: dict[str, str | None]  # output -> its key or path (None: not written)


@dataclass(frozen=True)
class ReportCounts:
    """Everything the report needs from an upload, or from one chunk of it, as counts that add
    up across chunks (`plus`), so a file scored in pieces gets the same report."""

    rows_total: int
    rows_read: int
    rows_scored: int
    rows_rejected: int
    risk_counts: dict[str, int]
    columns: dict[str, ColumnQuality]
    reject_kinds: dict[str, int]
    ignored_columns: list[str]
    source: dict[str, str]  # how the file was read
    failure: str | None
    category_counts: dict[str, dict[str | None, int]]
    numeric_counts: dict[str, np.ndarray]  # rows per training bin, missing last
    probability_counts: np.ndarray  # scored rows per tenth of churn probability

    def plus(self, other: ReportCounts) -> ReportCounts:
        """This part and the next: numbers add up (nested dicts key by key); what is not a
        number (source, ignored columns, failure) is the first part's."""
        merged = {
            part.name: _add(getattr(self, part.name), getattr(other, part.name))
            for part in fields(self)
        }
        return ReportCounts(**merged)

    def with_failure(self, failure: str | None) -> ReportCounts:
        return replace(self, failure=failure)

    def finished(self) -> ReportCounts:
        """As reported: each column's unseen values cut to the largest."""
        columns: dict[str, ColumnQuality] = {
            name: {**column, "unknown_values": top_counts(column["unknown_values"])}
            if "unknown_values" in column
            else column
            for name, column in self.columns.items()
        }
        return replace(self, columns=columns)


def upload_counts(
    upload: ValidatedUpload, results: pd.DataFrame | None, profile: ModelProfile
) -> ReportCounts:
    """The report counts of a validated upload (or chunk) and its results."""
    numeric = {}
    for feature in profile.features:
        if feature.kind == "numeric" and feature.name in upload.accepted.columns:
            values = upload.accepted[feature.name]
            shares = numeric_shares(values, feature)
            if shares is not None:
                numeric[feature.name] = shares * len(values)
    quality = upload.quality
    return ReportCounts(
        rows_total=upload.rows_total,
        rows_read=upload.rows_total if quality.rows_read is None else quality.rows_read,
        rows_scored=0 if results is None else len(results),
        rows_rejected=upload.rows_rejected,
        risk_counts={
            tier: 0 if results is None else int((results["churn_risk"] == tier).sum())
            for tier in RISK_TIERS
        },
        columns=quality.columns,
        reject_kinds=quality.reject_kinds,
        ignored_columns=quality.ignored_columns,
        source=dict(upload.source),
        failure=upload.failure,
        category_counts=upload.category_counts,
        numeric_counts=numeric,
        probability_counts=np.histogram(
            [] if results is None else results["churn_probability"],
            bins=PROBABILITY_BINS,
            range=(0.0, 1.0),
        )[0],
    )


def _add(mine: Any, theirs: Any) -> Any:
    if isinstance(mine, bool) or theirs is None:
        return mine
    if isinstance(mine, (int, float, np.ndarray)):
        return mine + theirs
    if isinstance(mine, dict):
        return {
            key: _add(mine.get(key), theirs.get(key)) if key in mine else theirs[key]
            for key in {**mine, **theirs}
        }
    return mine


def drift_from_counts(counts: ReportCounts, profile: ModelProfile) -> dict[str, float]:
    """PSI of the scored rows per feature for which the profile holds a training distribution."""
    scores = {}
    for feature in profile.features:
        numeric = counts.numeric_counts.get(feature.name)
        if numeric is not None and numeric.sum() > 0:
            scores[feature.name] = psi(np.asarray(feature.bin_shares), numeric / numeric.sum())
        elif feature.name in counts.category_counts:
            buckets = categorical_buckets(counts.category_counts[feature.name], feature)
            if buckets is not None:
                scores[feature.name] = psi(*buckets)
    return scores


def build_report(
    upload: ValidatedUpload,
    results: pd.DataFrame | None,
    model: NamedModel,
    prediction_id: str | None = None,
    keys: dict[str, str | None] | None = None,
    drift_alert_psi: float = ScoringPolicy.drift_alert_psi,
) -> UploadReport:
    """The JSON summary: accounting, risk counts, per-column quality and drift, the model used."""
    counts = upload_counts(upload, results, model.profile)
    return report_from_counts(counts, model, prediction_id, keys, drift_alert_psi)


def report_from_counts(
    counts: ReportCounts,
    model: NamedModel,
    prediction_id: str | None = None,
    keys: dict[str, str | None] | None = None,
    drift_alert_psi: float = ScoringPolicy.drift_alert_psi,
) -> UploadReport:
    """The JSON summary from the counts of the whole upload (or of its chunks added up)."""
    rows, profile = counts.rows_read, model.profile
    scores = drift_from_counts(counts, profile)
    columns: dict[str, ColumnReport] = {}
    for feature in profile.features:
        quality = counts.columns.get(feature.name, ColumnQuality()).copy()
        missing = quality.pop("missing", 0)  # put back after the other counts
        columns[feature.name] = {
            **quality,
            "missing": missing,
            "missing_share": round(missing / rows, 6) if rows else 0.0,
            "training_missing_share": round(feature.missing_share, 6),
            "psi": round(scores[feature.name], 6) if feature.name in scores else None,
            "drifted": bool(scores.get(feature.name, 0.0) > drift_alert_psi),
        }
    return {
        "prediction_id": prediction_id,
        "status": "FAILED" if counts.failure else "COMPLETED",
        "error": counts.failure,
        "model_name": model.name,
        "model_version": model.version,
        "source": counts.source,
        "rows_total": counts.rows_total,
        "rows_scored": counts.rows_scored,
        "rows_rejected": counts.rows_rejected,
        "reject_reasons": counts.reject_kinds,
        "risk_counts": counts.risk_counts,
        # scored rows per tenth of churn probability, [0, 0.1) first: the web app's histogram
        "probability_histogram": [int(n) for n in counts.probability_counts],
        "unknown_categories": unknown_categories(counts.columns),
        "out_of_range": {n: c["out_of_range"] for n, c in columns.items() if c.get("out_of_range")},
        "drift_threshold": drift_alert_psi,
        "drifted_features": [n for n, c in columns.items() if c["drifted"]],
        "ignored_columns": counts.ignored_columns,
        "columns": columns,
        "files": keys or {},
    }


def _cell(value: Any) -> str:
    """A table cell's text; empty where nothing was measured (the page shows a dash)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, dict):
        return ", ".join(f"{k} ({v})" for k, v in value.items())
    return str(value)


@functools.cache
def _template() -> jinja2.Template:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("retainwise.uploads", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["cell"] = _cell
    return env.get_template("report.html")


def render_html(report: UploadReport) -> str:
    """A self-contained page (templates/report.html); Jinja2 escapes every value."""
    summary = [
        ["status", report["status"]],
        ["rows in the file", report["rows_total"]],
        ["rows scored", report["rows_scored"]],
        ["rows rejected", report["rows_rejected"]],
        ["model", f"{report['model_name']} v{report['model_version']}"],
        ["read as", ", ".join(f"{k}: {v}" for k, v in report["source"].items())],
    ]
    if report.get("error"):
        summary.append(["why it failed", report["error"]])
    risk = report["risk_counts"]
    summary.append(["HIGH / MEDIUM / LOW", f"{risk['HIGH']} / {risk['MEDIUM']} / {risk['LOW']}"])
    reasons = [[k, v] for k, v in sorted(report["reject_reasons"].items(), key=lambda kv: -kv[1])]
    columns, classes = [], []
    for name, c in report["columns"].items():
        columns.append(
            [
                name,
                c.get("kind"),
                f"{c['missing_share']:.1%}",
                f"{c['training_missing_share']:.1%}",
                c.get("unparseable"),
                c.get("out_of_range"),
                c.get("unknown_values") or c.get("unknown"),
                c.get("psi"),
            ]
        )
        classes.append("drift" if c["drifted"] else "")
    return (
        _template().render(
            report={"ignored_columns": [], **report},
            summary=summary,
            reasons=reasons,
            columns=columns,
            classes=classes,
        )
        + "\n"
    )


def summary_markdown(report: UploadReport, report_key: str) -> str:
    """The Prefect artifact: the summary as a markdown table and where the full report is."""
    risk = report["risk_counts"]
    rows = [
        ("status", report["status"]),
        ("rows total", report["rows_total"]),
        ("rows scored", report["rows_scored"]),
        ("rows rejected", report["rows_rejected"]),
        ("model", f"{report['model_name']} v{report['model_version']}"),
        ("HIGH / MEDIUM / LOW", f"{risk['HIGH']} / {risk['MEDIUM']} / {risk['LOW']}"),
        ("unknown categories", _plain(report["unknown_categories"])),
        ("out of range", _plain(report["out_of_range"])),
        (
            f"drifted features (PSI > {report['drift_threshold']})",
            ", ".join(report["drifted_features"]) or "none",
        ),
        ("report", f"`{report_key}` (`retainwise report {report.get('prediction_id')}`)"),
    ]
    table = "\n".join(f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows)
    return f"## Upload {report.get('prediction_id')}\n\n| | |\n|---|---|\n{table}\n"


def _plain(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "none"
