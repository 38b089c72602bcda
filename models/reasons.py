"""Reasons in words: `Contract is Month-to-month (+0.42)`, the features that raise a score most.

Each reason names the feature, the customer's value and its signed contribution to the log-odds.
The three largest contributions come first; a negative one appears only when fewer than three
features raise the customer's risk, and its sign says so.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.explain import Explanation, explain
from models.profile import ModelProfile

TOP = 3
REASON_COLUMNS = [f"reason_{n}" for n in range(1, TOP + 1)]


def format_value(value) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "missing"
    if isinstance(value, float | np.floating):
        return f"{value:g}"
    return str(value)


def reason_columns(explanation: Explanation, X: pd.DataFrame, top: int = TOP) -> pd.DataFrame:
    """reason_1..reason_`top` per row of `X` (the prepared rows explained), largest first."""
    matrix, names = explanation.contributions, explanation.features
    picks = np.argsort(-matrix, axis=1, kind="stable")[:, :top]
    values = X[names].to_numpy(dtype=object)
    rows = np.arange(len(X))
    texts = {}
    for k, column in enumerate(REASON_COLUMNS[:top]):
        chosen = picks[:, k] if k < picks.shape[1] else None
        if chosen is None:
            texts[column] = [""] * len(X)
            continue
        shares = matrix[rows, chosen]
        cells = values[rows, chosen]
        texts[column] = [
            f"{names[j]} is {format_value(v)} ({s:+.2f})"
            for j, v, s in zip(chosen.tolist(), cells.tolist(), shares.tolist(), strict=True)
        ]
    return pd.DataFrame(texts, index=X.index, dtype="object")


def reasons_for(model, profile: ModelProfile, keep=None):
    """The explainer the actions list calls: (prepared rows, customer ids) -> reason columns;
    `keep(ids, explanation, X)`, when given, receives every explanation (to store it)."""

    def explainer(X: pd.DataFrame, ids: pd.Series | None = None) -> pd.DataFrame:
        found = explain(model, profile, X)
        if keep is not None:
            keep(ids, found, X)
        return reason_columns(found, X)

    return explainer
