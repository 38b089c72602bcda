"""The data-quality report every upload gets: a JSON summary and an HTML page beside the results.

Row accounting, per-column missing shares, unknown categories, out-of-range counts, and drift of
each feature against the training profile (PSI, flagged above 0.2).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import jinja2
import numpy as np
import numpy.typing as npt
import pandas as pd

from models.features import bin_shares
from models.profile import FeatureProfile, ModelProfile
from retainwise.uploads.validation import top_counts, unknown_categories

PROBABILITY_BINS = 10
PSI_FLAG = 0.2  # population stability index above this: the feature has drifted
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


def upload_counts(upload, results: pd.DataFrame | None, profile: ModelProfile) -> dict[str, Any]:
    """Everything the report needs from an upload, or from one chunk of it, as counts that add
    up across chunks (merge_counts), so a file scored in pieces gets the same report."""
    numeric = {}
    for feature in profile.features:
        if feature.kind == "numeric" and feature.name in upload.accepted.columns:
            values = upload.accepted[feature.name]
            shares = numeric_shares(values, feature)
            if shares is not None:
                numeric[feature.name] = shares * len(values)
    tiers = ("HIGH", "MEDIUM", "LOW")
    return {
        "rows_total": upload.rows_total,
        "rows_read": upload.quality.get("rows_read", upload.rows_total),
        "rows_scored": 0 if results is None else len(results),
        "rows_rejected": upload.rows_rejected,
        "risk_counts": {
            tier: 0 if results is None else int((results["churn_risk"] == tier).sum())
            for tier in tiers
        },
        "columns": upload.quality.get("columns", {}),
        "reject_kinds": upload.quality.get("reject_kinds", {}),
        "ignored_columns": upload.quality.get("ignored_columns", []),
        "source": dict(upload.source),
        "failure": upload.failure,
        "category_counts": upload.category_counts,
        "numeric_counts": numeric,
        "probability_counts": np.histogram(
            [] if results is None else results["churn_probability"],
            bins=PROBABILITY_BINS,
            range=(0.0, 1.0),
        )[0],
    }


def add_counts(total: dict[str, Any] | None, part: dict[str, Any]) -> dict[str, Any]:
    """Numbers add up (nested dicts key by key); anything else is the first part's. The chunked
    path keeps this running sum, not every chunk's counts."""
    if total is None:
        return dict(part)
    return {key: _add(value, part.get(key)) for key, value in total.items()}


def merge_counts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The parts added up (add_counts), each column's unseen values cut to the largest."""
    merged = dict(parts[0])
    for part in parts[1:]:
        merged = add_counts(merged, part)
    merged["columns"] = {
        name: {**column, "unknown_values": top_counts(column["unknown_values"])}
        if "unknown_values" in column
        else column
        for name, column in merged["columns"].items()
    }
    return merged


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


def drift_from_counts(counts: dict[str, Any], profile: ModelProfile) -> dict[str, float]:
    """PSI of the scored rows per feature for which the profile holds a training distribution."""
    scores = {}
    for feature in profile.features:
        numeric = counts["numeric_counts"].get(feature.name)
        if numeric is not None and numeric.sum() > 0:
            scores[feature.name] = psi(feature.bin_shares, numeric / numeric.sum())
        elif feature.name in counts["category_counts"]:
            buckets = categorical_buckets(counts["category_counts"][feature.name], feature)
            if buckets is not None:
                scores[feature.name] = psi(*buckets)
    return scores


def build_report(
    upload,
    results: pd.DataFrame | None,
    model,
    prediction_id: str | None = None,
    keys: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The JSON summary: accounting, risk counts, per-column quality and drift, the model used."""
    return report_from_counts(
        upload_counts(upload, results, model.profile), model, prediction_id, keys
    )


def report_from_counts(
    counts: dict[str, Any],
    model,
    prediction_id: str | None = None,
    keys: dict[str, str] | None = None,
) -> dict[str, Any]:
    rows, profile = counts["rows_read"], model.profile
    scores = drift_from_counts(counts, profile)
    columns = {}
    for feature in profile.features:
        quality = dict(counts["columns"].get(feature.name, {}))
        missing = quality.pop("missing", 0)
        columns[feature.name] = {
            **quality,
            "missing": missing,
            "missing_share": round(missing / rows, 6) if rows else 0.0,
            "training_missing_share": round(feature.missing_share, 6),
            "psi": round(scores[feature.name], 6) if feature.name in scores else None,
            "drifted": bool(scores.get(feature.name, 0.0) > PSI_FLAG),
        }
    return {
        "prediction_id": prediction_id,
        "status": "FAILED" if counts["failure"] else "COMPLETED",
        "error": counts["failure"],
        "model_name": model.name,
        "model_version": model.version,
        "source": counts["source"],
        "rows_total": counts["rows_total"],
        "rows_scored": counts["rows_scored"],
        "rows_rejected": counts["rows_rejected"],
        "reject_reasons": counts["reject_kinds"],
        "risk_counts": counts["risk_counts"],
        # scored rows per tenth of churn probability, [0, 0.1) first: the web app's histogram
        "probability_histogram": [int(n) for n in counts.get("probability_counts", [])],
        "unknown_categories": unknown_categories(counts["columns"]),
        "out_of_range": {n: c["out_of_range"] for n, c in columns.items() if c.get("out_of_range")},
        "drift_threshold": PSI_FLAG,
        "drifted_features": [n for n, c in columns.items() if c["drifted"]],
        "ignored_columns": counts["ignored_columns"],
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


def render_html(report: dict[str, Any]) -> str:
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


def summary_markdown(report: dict[str, Any], report_key: str) -> str:
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
        ("drifted features (PSI > 0.2)", ", ".join(report["drifted_features"]) or "none"),
        ("report", f"`{report_key}` (`retainwise report {report.get('prediction_id')}`)"),
    ]
    table = "\n".join(f"| {k} | {str(v).replace('|', '/')} |" for k, v in rows)
    return f"## Upload {report.get('prediction_id')}\n\n| | |\n|---|---|\n{table}\n"


def _plain(counts: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in counts.items()) or "none"
