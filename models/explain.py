"""Per-customer reasons: the features that raise each customer's churn score the most.

Linear model: exact. Each feature's share of the log-odds is coefficient x (transformed value -
training mean), summed over its one-hot columns; the shares add up to logit(p) - logit(p of the
average input) before calibration (a monotone sigmoid, so the order is unchanged).
Tree model: one-at-a-time replacement. A feature's share is the drop in the model's score when
that feature alone is set to its typical training value (median, or most common category); it
costs one extra prediction per feature, so it is off by default.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from models.encoding import MISSING
from models.profile import ModelProfile

TOP = 3


def base_pipeline(model):
    """The fitted scikit-learn pipeline inside a calibrated model (or the model itself)."""
    return getattr(model, "base", model)


def is_linear(model) -> bool:
    return isinstance(base_pipeline(model).steps[-1][1], LogisticRegression)


def one_hot_step(columns):
    """The fitted one-hot step: a CategoryEncoder, or (older models) a Pipeline's last step."""
    step = columns.named_transformers_["categorical"]
    return step.steps[-1][1] if hasattr(step, "steps") else step


def linear_contributions(model, profile: ModelProfile, X: pd.DataFrame) -> np.ndarray:
    """rows x features matrix of exact log-odds contributions (the linear pipeline of training)."""
    pipeline = base_pipeline(model)
    columns, classifier = pipeline.steps[0][1], pipeline.steps[-1][1]
    coef = classifier.coef_[0]
    owner, means = [], []
    for index in range(len(profile.numeric)):
        owner.append(index)
        means.append(0.0)  # standardised on the (imputed) training data: mean 0
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
    transformed = columns.transform(X)
    shift = (np.asarray(means) * coef) @ grouping
    contributions = np.asarray(transformed @ grouping) - np.asarray(shift).ravel()
    return _reorder(contributions, order, profile.feature_names)


def replacement_contributions(model, profile: ModelProfile, X: pd.DataFrame) -> np.ndarray:
    """rows x features: score(x) - score(x with that feature set to its typical value)."""
    scores = model.decision_function(X)
    result = np.zeros((len(X), len(profile.features)))
    for index, feature in enumerate(profile.features):
        changed = X.copy()
        changed[feature.name] = typical_value(feature)
        if feature.kind == "numeric":
            changed[feature.name] = changed[feature.name].astype("float64")
        else:
            changed[feature.name] = changed[feature.name].astype("object")
        result[:, index] = scores - model.decision_function(changed)
    return result


def typical_value(feature):
    if feature.kind == "numeric":
        if feature.median is not None:
            return feature.median
        return (feature.minimum + feature.maximum) / 2
    if feature.category_shares:
        return max(feature.category_shares, key=feature.category_shares.get)
    return feature.categories[0] if feature.categories else np.nan


def _reorder(matrix: np.ndarray, order: list[str], wanted: list[str]) -> np.ndarray:
    position = {name: i for i, name in enumerate(order)}
    return matrix[:, [position[name] for name in wanted]]


def contributions(model, profile: ModelProfile, X: pd.DataFrame) -> np.ndarray:
    if is_linear(model):
        return linear_contributions(model, profile, X)
    return replacement_contributions(model, profile, X)


def format_value(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "(missing)"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def top_reasons(model, profile: ModelProfile, X: pd.DataFrame, top: int = TOP) -> pd.Series:
    """'feature=value; ...' for the (up to) `top` features that raise each customer's risk most."""
    matrix = contributions(model, profile, X)
    names = profile.feature_names
    ranked = np.argsort(-matrix, axis=1, kind="stable")[:, :top]
    values = X[names].to_numpy(dtype=object)
    reasons = []
    for row, picks in enumerate(ranked):
        parts = [f"{names[j]}={format_value(values[row, j])}" for j in picks if matrix[row, j] > 0]
        reasons.append("; ".join(parts))
    return pd.Series(reasons, index=X.index, dtype="object")
