"""Exact per-customer contributions: each feature's share of the model's margin (log-odds).

For every row, base value + the sum of its contributions = the margin before calibration (a
monotone sigmoid maps it to the probability, so the order of reasons is the score's own).
Linear model: coefficient x (transformed value - training mean), summed over a feature's one-hot
columns. Boosted trees: LightGBM's TreeSHAP, exact with category splits, read from per-tree
tables (models.tree_tables, ~8 us a row) or, for trees too large to tabulate, `pred_contrib`.
Versions with scikit-learn's HistGradientBoosting (before LightGBM) have no exact explainer here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from models.boosting import ChurnBooster
from models.encoding import MISSING
from models.profile import ModelProfile
from models.tree_tables import ContributionCache, tables_for


class NotExplainable(TypeError):
    """The model version has no exact explainer (trained before LightGBM); retrain it."""


@dataclass(frozen=True)
class Explanation:
    """Rows x features contributions in `features` order; `base` per row (constant per model)."""

    features: list[str]
    base: np.ndarray
    contributions: np.ndarray

    @property
    def margin(self) -> np.ndarray:
        margin: np.ndarray = self.base + self.contributions.sum(axis=1)
        return margin


@dataclass(frozen=True)
class EncodedRows:
    """Prepared rows the scorer encoded already (models.compiled.Remembering), by their unique
    index: explaining some of them takes their rows instead of encoding them again."""

    index: pd.Index
    matrix: np.ndarray

    def of(self, X: pd.DataFrame) -> np.ndarray | None:
        """X's rows (by index), or None when one of them is not here."""
        positions = self.index.get_indexer(X.index)
        return None if (positions < 0).any() else self.matrix[positions]


def base_pipeline(model: Any) -> Any:
    """The fitted scikit-learn pipeline inside a calibrated or compiled model (or the model)."""
    model = getattr(model, "sklearn", model)
    return getattr(model, "base", model)


def is_linear(model: Any) -> bool:
    return isinstance(base_pipeline(model).steps[-1][1], LogisticRegression)


def explain(
    model: Any,
    profile: ModelProfile,
    X: pd.DataFrame,
    encoded: np.ndarray | None = None,
    cache: ContributionCache | None = None,
) -> Explanation:
    """Exact contributions of every feature for the prepared rows `X` (models.features);
    `encoded`: the same rows as the trees read them, when the scorer encoded them already;
    `cache`: tree contributions kept across calls (an upload's chunks). A linear model uses
    neither."""
    pipeline = base_pipeline(model)
    classifier = pipeline.steps[-1][1]
    if isinstance(classifier, LogisticRegression):
        return linear_explanation(pipeline, profile, X)
    if isinstance(classifier, ChurnBooster):
        return tree_explanation(pipeline, profile, X, encoded, cache)
    raise NotExplainable(f"no exact explanation for {type(classifier).__name__}; retrain")


def one_hot_step(columns: Any) -> Any:
    """The fitted one-hot step: a CategoryEncoder, or (older models) a Pipeline's last step."""
    step = columns.named_transformers_["categorical"]
    return step.steps[-1][1] if hasattr(step, "steps") else step


def linear_explanation(pipeline: Any, profile: ModelProfile, X: pd.DataFrame) -> Explanation:
    """coef x (value - training mean) per feature; the base is the margin of the average input."""
    columns, classifier = pipeline.steps[0][1], pipeline.steps[-1][1]
    coef = classifier.coef_[0]
    owner, means = list(range(len(profile.numeric))), [0.0] * len(profile.numeric)  # standardised
    onehot = one_hot_step(columns) if profile.categorical else None
    for offset, feature in enumerate(f for f in profile.features if f.kind == "categorical"):
        assert onehot is not None  # built above when there is a categorical feature
        shares = dict(feature.category_shares)
        shares[MISSING] = shares.get(MISSING, 0.0) + feature.missing_share
        for category in onehot.categories_[offset]:
            owner.append(len(profile.numeric) + offset)
            means.append(shares.get(str(category), 0.0))
    order = profile.numeric + profile.categorical
    grouping = sparse.csr_matrix(
        (coef, (np.arange(len(coef)), owner)), shape=(len(coef), len(order))
    )
    shift = np.asarray((np.asarray(means) * coef) @ grouping).ravel()
    matrix = np.asarray(columns.transform(X) @ grouping) - shift
    base = np.full(len(X), float(classifier.intercept_[0]) + float(shift.sum()))
    return Explanation(profile.feature_names, base, _reorder(matrix, order, profile.feature_names))


def tree_explanation(
    pipeline: Any,
    profile: ModelProfile,
    X: pd.DataFrame,
    encoded: np.ndarray | None = None,
    cache: ContributionCache | None = None,
) -> Explanation:
    """LightGBM's TreeSHAP on the encoded columns (numbers, then category codes)."""
    encoded = pipeline[:-1].transform(X) if encoded is None else encoded
    booster = pipeline.steps[-1][1]
    tables = tables_for(booster.booster_)
    if tables is None:
        matrix = booster.contributions(encoded)
    else:
        matrix = tables.contributions(encoded, cache)
    order = profile.numeric + profile.categorical
    contributions = _reorder(matrix[:, :-1], order, profile.feature_names)
    return Explanation(profile.feature_names, matrix[:, -1], contributions)


def _reorder(matrix: np.ndarray, order: list[str], wanted: list[str]) -> np.ndarray:
    position = {name: i for i, name in enumerate(order)}
    reordered: np.ndarray = matrix[:, [position[name] for name in wanted]]
    return reordered
