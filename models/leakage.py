"""Leakage guard: a column that alone predicts the label almost perfectly copies the answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from models.profile import FeatureProfile

LEAKAGE_AUC = 0.98  # single-feature ROC AUC on the training split at or above this is leakage
COPY_AGREEMENT = 0.98  # balanced accuracy at which a column of <= 3 values is a copy of the label
COPY_MAX_VALUES = 3
SEED = 42


def out_of_fold_rates(values: pd.Series, y: np.ndarray, folds: int = 5) -> np.ndarray:
    """Churn rate of each row's category, learned on the other folds (so identifiers score ~0.5)."""
    text = values.astype(object).fillna("(missing)").astype(str).to_numpy()
    encoded = np.full(len(text), float(np.mean(y)))
    splits = StratifiedKFold(min(folds, int(np.bincount(y).min())), shuffle=True, random_state=SEED)
    for fit, held in splits.split(text, y):
        rates = pd.Series(y[fit]).groupby(text[fit]).mean()
        encoded[held] = pd.Series(text[held]).map(rates).fillna(float(np.mean(y[fit]))).to_numpy()
    return encoded


def single_feature_auc(values: pd.Series, y: np.ndarray, kind: str) -> float:
    """How well this column alone ranks churners, direction-free (0.5 = useless, 1.0 = perfect)."""
    if kind == "numeric":
        numbers = values.astype("float64")
        score = numbers.fillna(numbers.median() if numbers.notna().any() else 0.0).to_numpy()
        # missing-ness itself can leak (a reason filled in only for churners)
        if numbers.isna().any():
            score = np.where(numbers.isna(), score.max() + 1, score)
    else:
        score = out_of_fold_rates(values, y)
    auc = roc_auc_score(y, score)
    return float(max(auc, 1 - auc))


def copies_label(values: pd.Series, y: np.ndarray) -> bool:
    """A low-cardinality column whose values map onto the label (Churn Label, Churn Value...)."""
    text = values.astype(object).fillna("(missing)").astype(str)
    if text.nunique() > COPY_MAX_VALUES:
        return False
    majority = pd.Series(y).groupby(text.to_numpy()).agg(lambda s: int(s.mean() >= 0.5))
    guess = text.map(majority).to_numpy()
    # balanced, so "always No" does not look like a copy of a rare label
    recalls = [np.mean(guess[y == label] == label) for label in (0, 1) if (y == label).any()]
    return float(np.mean(recalls)) >= COPY_AGREEMENT


def leaking_columns(
    X: pd.DataFrame, y: np.ndarray, features: list[FeatureProfile]
) -> dict[str, str]:
    """Columns to exclude, each with the reason in words and numbers."""
    y = np.asarray(y, dtype=int)
    found = {}
    for feature in features:
        column = X[feature.name]
        auc = single_feature_auc(column, y, feature.kind)
        if auc >= LEAKAGE_AUC:
            found[feature.name] = (
                f"leakage: alone it predicts the target with ROC AUC {auc:.3f} "
                f"(limit {LEAKAGE_AUC})"
            )
        elif copies_label(column, y):
            found[feature.name] = "leakage: a near copy of the target"
    return found
