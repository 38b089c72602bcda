"""Reasons in words: `Contract is Month-to-month (+0.42)`, the features that raise a score most.

Each reason names the feature, the customer's value and its signed contribution to the log-odds.
The three largest contributions come first; a negative one appears only when fewer than three
features raise the customer's risk, and its sign says so. A row whose risk rose since the previous
upload, with an earlier explanation, puts first what changed and rose, saying what it was:
`Contract is Month-to-month (+0.42, was One year)` (changed_reason_arrays; the rule in
models.changes); every other row reads exactly as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from models.changes import Earlier, Lookup, changed_picks, promoted_cells
from models.explain import EncodedRows, Explanation, NotExplainable, explain
from models.profile import ModelProfile

TOP = 3
REASON_COLUMNS = [f"reason_{n}" for n in range(1, TOP + 1)]

# (customer ids, their explanation, the prepared rows) -> None: stores what was explained
Keeper = Callable[[pd.Series | None, Explanation, pd.DataFrame], None]


class ReasonsExplainer(Protocol):
    """(prepared rows, customer ids[, which rows' risk rose]) -> the reason columns, same index."""

    def __call__(
        self, X: pd.DataFrame, ids: pd.Series | None = None, rose: np.ndarray | None = None, /
    ) -> pd.DataFrame: ...


def format_value(value: object) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "missing"
    if isinstance(value, float | np.floating):
        return f"{value:g}"
    return str(value)


def reason_columns(explanation: Explanation, X: pd.DataFrame, top: int = TOP) -> pd.DataFrame:
    """reason_1..reason_`top` per row of `X` (the prepared rows explained), largest first, as
    object columns (reason_arrays' texts)."""
    texts = reason_arrays(explanation, X, top)
    columns = {
        name: text.to_numpy(zero_copy_only=False)
        for name, text in zip(REASON_COLUMNS, texts, strict=True)
    }
    return pd.DataFrame(columns, index=X.index, dtype="object")


def reason_frame(explanation: Explanation, X: pd.DataFrame, top: int = TOP) -> pd.DataFrame:
    """reason_columns with Arrow string columns (no Python string per row: what the actions list
    spills and writes)."""
    texts = reason_arrays(explanation, X, top)
    columns = {
        name: pd.arrays.ArrowExtensionArray(text)
        for name, text in zip(REASON_COLUMNS, texts, strict=True)
    }
    return pd.DataFrame(columns, index=X.index)


def reason_arrays(explanation: Explanation, X: pd.DataFrame, top: int = TOP) -> list[pa.Array]:
    """reason_1..reason_`top` per row of `X` as Arrow strings, largest contribution first."""
    matrix = np.asarray(explanation.contributions, dtype=np.float64)
    width = min(top, matrix.shape[1])
    picks = np.argsort(-matrix, axis=1, kind="stable")[:, :width].T  # reason x row
    return worded(matrix, explanation.features, X, picks, top)


def worded(
    matrix: np.ndarray, names: list[str], X: pd.DataFrame, picks: np.ndarray, top: int = TOP
) -> list[pa.Array]:
    """The reasons of `picks` (reason x row: the feature picked) in words, blank past them.

    Each cell is (feature, the customer's value, the share rounded to a hundredth): the
    "feature is value" words are made once per distinct value picked, the share's once per signed
    hundredth, and Arrow takes and joins them into the rows (no Python string per row)."""
    rows, width = len(matrix), len(picks)
    blank = pa.array([""], pa.string()).take(pa.array(np.zeros(rows, dtype=np.int64)))
    if not rows or not width:
        return [blank] * top
    values = np.empty(picks.size, dtype=np.int64)  # into `words`: the picked values
    words: list[str] = []
    for feature, cells in _by_feature(picks):
        codes, texts = value_words(X[names[feature]], cells % rows)
        values[cells] = codes + len(words)
        words += [f"{names[feature]} is {text}" for text in texts]
    shares, share_texts = share_codes(np.take_along_axis(matrix.T, picks, axis=0).ravel())
    said = pa.array(words, pa.string()).take(pa.array(values))
    signed = pa.array(share_texts, pa.string()).take(pa.array(shares))
    joined = pc.binary_join_element_wise(said, signed, "")
    return [joined.slice(k * rows, rows) for k in range(width)] + [blank] * (top - width)


def _by_feature(picks: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """Each picked feature (ascending) and its cells in `picks` (flat positions, ascending): one
    stable radix sort of the small feature numbers instead of a pass over `picks` per feature."""
    flat = picks.ravel()
    small = flat.astype(np.uint16) if flat.max(initial=0) < 2**16 else flat
    cells = np.argsort(small, kind="stable")
    ordered = flat[cells]
    starts = np.flatnonzero(np.diff(ordered, prepend=-1))
    stops = np.append(starts[1:], len(cells))
    return [
        (int(ordered[start]), cells[start:stop])
        for start, stop in zip(starts.tolist(), stops.tolist(), strict=True)
    ]


def value_words(column: pd.Series, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """The cells at positions `rows` as indices into their distinct values in words
    (format_value of each once; a missing cell: "missing", last)."""
    if isinstance(column.dtype, pd.CategoricalDtype):
        codes, distinct = column.cat.codes.to_numpy()[rows], list(column.cat.categories)
    else:
        codes, found = pd.factorize(column.to_numpy()[rows], use_na_sentinel=True)
        if found.dtype.kind == "f":  # format_value of each, at once (NaN is the sentinel)
            texts = [f"{value:g}" for value in found.tolist()] + ["missing"]
            return np.where(codes < 0, len(texts) - 1, codes).astype(np.int64), texts
        distinct = list(found)
    texts = [format_value(value) for value in distinct] + ["missing"]
    return np.where(codes < 0, len(texts) - 1, codes).astype(np.int64), texts


def signed_shares(shares: np.ndarray) -> np.ndarray:
    """f" ({share:+.2f})" of every share (share_codes' words by row)."""
    codes, words = share_codes(shares)
    texts: np.ndarray = np.asarray(words, dtype=object)[codes]
    return texts


def share_codes(shares: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each share's index into its distinct words f" ({share:+.2f})", formatted once per signed
    hundredth: a share not within 1e-6 of a rounding tie rounds as the format does; the rest
    (ties, non-finite) are formatted one by one."""
    shares = np.asarray(shares, dtype=np.float64).reshape(-1)
    scaled = shares * 100
    with np.errstate(invalid="ignore"):  # NaN and inf are formatted one by one below
        away = np.abs(scaled - np.floor(scaled) - 0.5) > 1e-6
    clear = np.isfinite(scaled) & away
    codes = np.where(clear, np.abs(np.rint(scaled)) * 2 + np.signbit(shares), 0).astype(np.int64)
    distinct, where = np.unique(codes, return_inverse=True)
    words = [f" ({'-' if c % 2 else '+'}{c // 2 / 100:.2f})" for c in distinct.tolist()]
    where = where.reshape(-1)
    unclear = np.flatnonzero(~clear)
    where[unclear] = np.arange(len(words), len(words) + len(unclear))
    words += [f" ({share:+.2f})" for share in shares[unclear].tolist()]
    return where, words


def reasons_for(
    model: Any,
    profile: ModelProfile,
    keep: Keeper | None = None,
    encoded: EncodedRows | None = None,
    *,
    earlier: Lookup | None = None,
) -> ReasonsExplainer:
    """The explainer the actions list calls: (prepared rows, customer ids[, rose]) -> reason
    columns; `keep(ids, explanation, X)`, when given, receives every explanation (to store it);
    `encoded`: rows the scorer encoded already, of which the explained rows are taken by index;
    `earlier`: the customers' earlier explanations, read (once a call) for the rows `rose` marks,
    whose reasons then name what changed (changed_reason_arrays)."""

    def explainer(
        X: pd.DataFrame, ids: pd.Series | None = None, rose: np.ndarray | None = None, /
    ) -> pd.DataFrame:
        found = explain(model, profile, X, None if encoded is None else encoded.of(X))
        if keep is not None:
            keep(ids, found, X)
        if earlier is None or ids is None or rose is None or not rose.any():
            return reason_frame(found, X)
        return compared_frame(found, X, ids, rose, earlier)

    return explainer


def compared_frame(
    explanation: Explanation, X: pd.DataFrame, ids: pd.Series, rose: np.ndarray, earlier: Lookup
) -> pd.DataFrame:
    """reason_frame, where the rows `rose` marks that have an earlier explanation (one `earlier`
    read for them) name what changed; every other row's texts are reason_arrays' own."""
    rows = np.flatnonzero(rose)
    then = earlier(ids.iloc[rows]).aligned(ids.iloc[rows].astype(str), explanation.features)
    rows, then = rows[then.found], _taken(then, then.found)
    if not len(rows):
        return reason_frame(explanation, X)
    others = np.setdiff1d(np.arange(len(X)), rows)
    compared = changed_reason_arrays(_rows(explanation, rows), X.iloc[rows], then)
    plain = reason_arrays(_rows(explanation, others), X.iloc[others])
    where = np.empty(len(X), dtype=np.int64)  # each row's place in plain + compared
    where[others], where[rows] = np.arange(len(others)), len(others) + np.arange(len(rows))
    texts = [
        pa.concat_arrays([kept, named]).take(pa.array(where))
        for kept, named in zip(plain, compared, strict=True)
    ]
    columns = {
        name: pd.arrays.ArrowExtensionArray(text)
        for name, text in zip(REASON_COLUMNS, texts, strict=True)
    }
    return pd.DataFrame(columns, index=X.index)


def _rows(explanation: Explanation, rows: np.ndarray) -> Explanation:
    return Explanation(
        explanation.features, explanation.base[rows], explanation.contributions[rows]
    )


def _taken(earlier: Earlier, rows: np.ndarray) -> Earlier:
    return Earlier(
        [i for i, keep in zip(earlier.ids, rows, strict=True) if keep],
        earlier.features,
        {name: values[rows] for name, values in earlier.values.items()},
        earlier.contributions[rows],
    )


def changed_reason_arrays(
    explanation: Explanation, X: pd.DataFrame, earlier: Earlier, top: int = TOP
) -> list[pa.Array]:
    """reason_1..reason_`top` per row of `X` as Arrow strings, for rows whose risk rose: the
    features whose value changed and whose contribution rose first (models.changes), each
    saying what it was; `earlier` aligned to X's rows and the explanation's features."""
    now = np.asarray(explanation.contributions, dtype=np.float64)
    width = min(top, now.shape[1])
    promoted = promoted_cells(explanation, X, earlier)
    with np.errstate(invalid="ignore"):
        rise = now - earlier.contributions
    picks = changed_picks(now, rise, promoted, width)
    texts = worded(now, explanation.features, X, picks, top)
    said = np.take_along_axis(promoted, picks.T, axis=1).T  # reason x row: promoted cells
    if not said.any():
        return texts
    changed = [_with_was(texts[k], said[k], picks[k], earlier) for k in range(width)]
    return changed + texts[width:]


def _with_was(text: pa.Array, said: np.ndarray, picked: np.ndarray, earlier: Earlier) -> pa.Array:
    """One reason column with ", was <earlier value>" inside the parentheses of the cells
    `said`: each feature's earlier values in words once per distinct value."""
    rows = np.flatnonzero(said)
    if not len(rows):
        return text
    codes = np.empty(len(rows), dtype=np.int64)
    words: list[str] = []
    for feature in np.unique(picked[rows]).tolist():
        cells = picked[rows] == feature
        values = earlier.values[earlier.features[feature]][rows[cells]]
        found, distinct = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
        texts = [format_value(value) for value in distinct] + ["missing"]
        codes[cells] = np.where(found < 0, len(texts) - 1, found) + len(words)
        words += texts
    was = pa.array(words, pa.string()).take(pa.array(codes))
    cut = pc.utf8_slice_codeunits(text.take(pa.array(rows)), 0, -1)  # without its ")"
    named = pc.binary_join_element_wise(cut, ", was ", was, ")", "")
    where = np.full(len(text), -1, dtype=np.int64)
    where[rows] = np.arange(len(rows))
    placed = named.take(pa.array(where, mask=where < 0))
    return pc.if_else(pa.array(said), placed, text)


def top_reasons(model: Any, profile: ModelProfile, X: pd.DataFrame) -> pd.Series:
    """The three reasons in words joined by "; " (the optional results column of older settings)."""
    try:
        words = reason_columns(explain(model, profile, X), X)
    except NotExplainable:
        return pd.Series("", index=X.index, dtype="object")
    joined: pd.Series = words.apply(lambda row: "; ".join(text for text in row if text), axis=1)
    return joined
