"""What goes back to customers: result and reject tables, made safe to open in a spreadsheet."""

from __future__ import annotations

import pandas as pd

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def neutralise_formulas(values: pd.Series) -> pd.Series:
    """Prefix a quote to text a spreadsheet would run as a formula (CSV injection)."""
    text = values.astype("object")
    risky = text.map(lambda v: isinstance(v, str) and v.startswith(FORMULA_PREFIXES))
    return text.mask(risky, "'" + text.astype(str))


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False, float_format="%.6f").encode("utf-8")


def risk_counts(results: pd.DataFrame) -> dict[str, int]:
    counts = results["churn_risk"].value_counts()
    return {tier: int(counts.get(tier, 0)) for tier in ("HIGH", "MEDIUM", "LOW")}


def build_report(upload, results: pd.DataFrame, model) -> dict:
    """The JSON summary stored beside the results: row accounting, risk counts, model used."""
    return {**upload.report, "rows_scored": len(results), "risk_counts": risk_counts(results),
            "model_name": model.name, "model_version": model.version}
