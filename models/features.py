"""Feature typing and preparation shared by training and scoring, so both see the same columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.profile import FeatureProfile

NUMERIC_SHARE = 0.95  # a column is numeric when this share of its non-blank cells parse as numbers


def blank_to_missing(column: pd.Series) -> pd.Series:
    """Whitespace-only cells are missing values, not categories (Telco's TotalCharges has ' ')."""
    if not (pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)):
        return column
    blank = column.astype("string").str.strip().eq("").fillna(False).astype(bool)
    return column.astype("object").mask(blank, np.nan)


def to_number(column: pd.Series) -> pd.Series:
    return pd.to_numeric(blank_to_missing(column), errors="coerce").astype("float64")


def is_numeric(column: pd.Series) -> bool:
    present = blank_to_missing(column).dropna()
    if present.empty:
        return False
    return pd.to_numeric(present, errors="coerce").notna().mean() >= NUMERIC_SHARE


def infer_features(frame: pd.DataFrame, exclude: set[str]) -> tuple[list[FeatureProfile], list[str]]:
    """Profile every usable column; return the profiles and notes on the columns dropped."""
    profiles, notes = [], []
    for name in frame.columns:
        if name in exclude:
            continue
        raw = blank_to_missing(frame[name])
        if raw.isna().all():
            notes.append(f"{name}: dropped, every value is empty")
            continue
        if raw.nunique(dropna=True) <= 1:
            notes.append(f"{name}: dropped, it has a single value")
            continue
        missing = float(raw.isna().mean())
        if is_numeric(raw):
            values = to_number(raw)
            profiles.append(FeatureProfile(name, "numeric", float(values.min()),
                                           float(values.max()), missing_share=missing))
        else:
            cats = sorted(str(v) for v in raw.dropna().unique())
            profiles.append(FeatureProfile(name, "categorical", categories=cats,
                                           missing_share=missing))
    return profiles, notes


def prepare_features(frame: pd.DataFrame, features: list[FeatureProfile]) -> pd.DataFrame:
    """Columns in model order: numbers as float64, categories as object strings with NaN for missing."""
    prepared = {}
    for feature in features:
        column = frame[feature.name]
        if feature.kind == "numeric":
            prepared[feature.name] = to_number(column)
        else:
            text = blank_to_missing(column)
            prepared[feature.name] = text.where(text.isna(), text.astype(str)).astype("object")
    return pd.DataFrame(prepared, index=frame.index)
