"""Reasons in words: `Contract is Month-to-month (+0.42)`, the features that raise a score most.

Each reason names the feature, the customer's value and its signed contribution to the log-odds.
The three largest contributions come first; a negative one appears only when fewer than three
features raise the customer's risk, and its sign says so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from models.explain import Explanation, NotExplainable, explain
from models.profile import ModelProfile

TOP = 3
REASON_COLUMNS = [f"reason_{n}" for n in range(1, TOP + 1)]

# (customer ids, their explanation, the prepared rows) -> None: stores what was explained
Keeper = Callable[[pd.Series | None, Explanation, pd.DataFrame], None]
# (prepared rows, customer ids) -> the reason columns on the same index
ReasonsExplainer = Callable[[pd.DataFrame, pd.Series | None], pd.DataFrame]


def format_value(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "missing"
    if isinstance(value, float | np.floating):
        return f"{value:g}"
    return str(value)


def reason_columns(explanation: Explanation, X: pd.DataFrame, top: int = TOP) -> pd.DataFrame:
    """reason_1..reason_`top` per row of `X` (the prepared rows explained), largest first.

    Vectorised: each distinct value is put in words once, and the texts are joined as object
    arrays (a row-wise f-string cost more than the exact contributions)."""
    matrix, names = explanation.contributions, np.asarray(explanation.features, dtype=object)
    picks = np.argsort(-matrix, axis=1, kind="stable")[:, :top]
    values = X[list(names)].to_numpy(dtype=object)
    rows = np.arange(len(X))
    texts: dict[str, np.ndarray] = {}
    for k, column in enumerate(REASON_COLUMNS[:top]):
        if k >= picks.shape[1]:
            texts[column] = np.full(len(X), "", dtype=object)
            continue
        chosen = picks[:, k]
        shares = signed_shares(matrix[rows, chosen])
        texts[column] = names[chosen] + " is " + in_words(values[rows, chosen]) + shares
    return pd.DataFrame(texts, index=X.index, dtype="object")


def signed_shares(shares: np.ndarray) -> np.ndarray:
    """f" ({share:+.2f})" of every share, formatted once per signed hundredth: a share not within
    1e-6 of a rounding tie rounds as the format does; the rest are formatted one by one."""
    scaled = shares * 100
    with np.errstate(invalid="ignore"):  # NaN and inf are formatted one by one below
        away = np.abs(scaled - np.floor(scaled) - 0.5) > 1e-6
    clear = np.isfinite(scaled) & away
    codes = np.where(clear, np.abs(np.rint(scaled)) * 2 + np.signbit(shares), 0).astype(np.int64)
    distinct, where = np.unique(codes, return_inverse=True)
    words = [f" ({'-' if c % 2 else '+'}{c // 2 / 100:.2f})" for c in distinct.tolist()]
    texts: np.ndarray = np.asarray(words, dtype=object)[where.reshape(-1)]
    for row in np.flatnonzero(~clear).tolist():
        texts[row] = f" ({shares[row]:+.2f})"
    return texts


def in_words(cells: np.ndarray) -> np.ndarray:
    """format_value of every cell, computed once per distinct value."""
    codes, distinct = pd.factorize(cells, use_na_sentinel=True)
    words = np.asarray([format_value(v) for v in distinct] + ["missing"], dtype=object)
    found: np.ndarray = words[codes]  # code -1 (a missing cell) takes the last word
    return found


def reasons_for(model: Any, profile: ModelProfile, keep: Keeper | None = None) -> ReasonsExplainer:
    """The explainer the actions list calls: (prepared rows, customer ids) -> reason columns;
    `keep(ids, explanation, X)`, when given, receives every explanation (to store it)."""

    def explainer(X: pd.DataFrame, ids: pd.Series | None = None) -> pd.DataFrame:
        found = explain(model, profile, X)
        if keep is not None:
            keep(ids, found, X)
        return reason_columns(found, X)

    return explainer


def top_reasons(model: Any, profile: ModelProfile, X: pd.DataFrame) -> pd.Series:
    """The three reasons in words joined by "; " (the optional results column of older settings)."""
    try:
        words = reason_columns(explain(model, profile, X), X)
    except NotExplainable:
        return pd.Series("", index=X.index, dtype="object")
    joined: pd.Series = words.apply(lambda row: "; ".join(text for text in row if text), axis=1)
    return joined
