"""What goes back to customers: result and reject tables, made safe to open in a spreadsheet."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class ResultKeys:
    results: str
    rejects: str
    report: str  # the JSON summary
    report_html: str


def result_keys(prediction_id: str) -> ResultKeys:
    """Derived from the prediction id alone, so a rerun overwrites instead of duplicating."""
    prefix = f"results/{prediction_id}"
    return ResultKeys(f"{prefix}/results.csv", f"{prefix}/rejects.csv", f"{prefix}/report.json",
                      f"{prefix}/report.html")


def neutralise_formulas(values: pd.Series) -> pd.Series:
    """Prefix a quote to text a spreadsheet would run as a formula (CSV injection)."""
    text = values.astype("object")
    risky = text.str.startswith(FORMULA_PREFIXES).fillna(False).astype(bool)
    if not risky.any():
        return text
    return text.mask(risky, "'" + text[risky].astype(str))


def neutralise_text_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Every text column neutralised: rejects echo the customer's cells back verbatim."""
    text = [c for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(
        frame[c])]
    return frame.assign(**{c: neutralise_formulas(frame[c]) for c in text}) if text else frame


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, float_format="%.6f").encode("utf-8")


def risk_counts(results: pd.DataFrame) -> dict[str, int]:
    counts = results["churn_risk"].value_counts()
    return {tier: int(counts.get(tier, 0)) for tier in ("HIGH", "MEDIUM", "LOW")}


def build_report(upload, results: pd.DataFrame, model) -> dict:
    """The JSON summary stored beside the results (kept here for callers of the first version)."""
    from retainwise.report import build_report as full_report

    return full_report(upload, results, model)
