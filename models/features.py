"""Feature typing and preparation shared by training and scoring, so both see the same columns."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.profile import FeatureProfile

NUMERIC_SHARE = 0.95  # a column is numeric when this share of its non-blank cells parse as numbers
MIN_ROWS_FOR_IDENTIFIER = (
    50  # below this a column of distinct text values may just be a small table
)
FEW_VALUES = 10  # numeric columns with at most this many values get one bin per value


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
    return bool(pd.to_numeric(present, errors="coerce").notna().mean() >= NUMERIC_SHARE)


def looks_like_identifier(raw: pd.Series) -> bool:
    """Text whose every value is distinct (a customer number, an e-mail) cannot generalise."""
    present = raw.dropna()
    return len(present) >= MIN_ROWS_FOR_IDENTIFIER and present.nunique() == len(present)


def numeric_bin_edges(values: pd.Series) -> list[float]:
    """Decile edges; for a column with few values, one bin per value (edges at the midpoints)."""
    present = np.sort(values.dropna().unique())
    if len(present) <= FEW_VALUES:
        middles = (present[:-1] + present[1:]) / 2
        return [float(present[0]), *map(float, middles), float(present[-1])]
    return sorted({float(q) for q in np.quantile(values.dropna(), np.linspace(0, 1, 11))})


def bin_shares(values: pd.Series, edges: list[float]) -> list[float]:
    """Share of rows per bin (outer bins open-ended) followed by the share of missing values."""
    numbers = to_number(values) if not pd.api.types.is_float_dtype(values) else values
    if len(numbers) == 0:
        return [0.0] * len(edges)
    inner = np.asarray(edges[1:-1], dtype=float)
    present = numbers.dropna().to_numpy()
    counts = np.bincount(
        np.searchsorted(inner, present, side="right"), minlength=max(len(edges) - 1, 1)
    )
    shares = list(counts / len(numbers)) + [float(numbers.isna().mean())]
    return [float(s) for s in shares]


def profile_column(name: str, raw: pd.Series) -> FeatureProfile:
    """Type, range, categories and the training distribution of one usable column."""
    missing = float(raw.isna().mean())
    if is_numeric(raw):
        values = to_number(raw)
        edges = numeric_bin_edges(values)
        return FeatureProfile(
            name,
            "numeric",
            float(values.min()),
            float(values.max()),
            missing_share=missing,
            bin_edges=edges,
            bin_shares=bin_shares(values, edges),
            median=float(values.median()),
        )
    text = raw.dropna().astype(str)
    shares = text.value_counts(normalize=False) / len(raw)
    return FeatureProfile(
        name,
        "categorical",
        categories=sorted(text.unique()),
        missing_share=missing,
        category_shares={str(k): float(v) for k, v in sorted(shares.items())},
    )


def infer_features(
    frame: pd.DataFrame, exclude: set[str]
) -> tuple[list[FeatureProfile], list[str]]:
    """Profile every usable column; return the profiles and notes on the columns dropped."""
    profiles, notes = [], []
    for name in frame.columns:
        if name in exclude:
            continue
        raw = blank_to_missing(frame[name])
        if raw.isna().all():
            notes.append(f"{name}: dropped, every value is empty")
            continue
        if raw.nunique(dropna=False) <= 1:  # one value and blanks is a yes/no signal: kept
            notes.append(f"{name}: dropped, it has a single value")
            continue
        if not is_numeric(raw) and looks_like_identifier(raw):
            notes.append(
                f"{name}: dropped, every value is distinct (an identifier? pass it as --id)"
            )
            continue
        profiles.append(profile_column(name, raw))
    return profiles, notes


def prepare_features(frame: pd.DataFrame, features: list[FeatureProfile]) -> pd.DataFrame:
    """Columns in model order: numbers as float64, categories as object strings, NaN for missing."""
    prepared = {}
    for feature in features:
        column = frame[feature.name]
        if feature.kind == "numeric":
            prepared[feature.name] = column if column.dtype == np.float64 else to_number(column)
        else:
            prepared[feature.name] = as_category_text(column)
    return pd.DataFrame(prepared, index=frame.index)


def as_category_text(column: pd.Series) -> pd.Series:
    """Object strings, blanks as NaN; the string work runs once per distinct value, not per cell.

    A Categorical of clean text (what upload validation hands over) passes through as it is."""
    if isinstance(column.dtype, pd.CategoricalDtype) and all(
        isinstance(value, str) and value.strip() for value in column.cat.categories
    ):
        return column
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    text = [str(value) if str(value).strip() else np.nan for value in uniques]
    return pd.Series(
        np.array(text + [np.nan], dtype=object)[codes], index=column.index, dtype="object"
    )
