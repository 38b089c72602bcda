"""What changed, in words: the reasons of a customer whose risk rose name what moved it.

For a row whose risk rose since the previous upload and whose customer has an earlier
explanation, the features whose value changed since then and whose contribution rose (now minus
then > 0) come first among its reasons, the largest rise first, each saying what it was:
`Contract is Month-to-month (+0.42, was One year)`. The other slots take the usual largest
contributions (no feature twice). A feature whose value did not change never says "was"; a row
with nothing promoted reads exactly as models.reasons.reason_arrays words it.
Pure: numpy, pandas and pyarrow; the earlier explanations are read by adapters.customers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.explain import Explanation


@dataclass(frozen=True)
class Earlier:
    """Earlier explanations, a row per customer in `ids`: each feature's value then (object
    arrays, None where missing) and contribution then (NaN where it was not explained)."""

    ids: list[str]
    features: list[str]
    values: dict[str, np.ndarray]
    contributions: np.ndarray

    @classmethod
    def none(cls, ids: Sequence[str], features: Sequence[str]) -> Earlier:
        """No earlier explanation for any of `ids`."""
        rows = len(ids)
        return cls(
            list(ids),
            list(features),
            {name: np.full(rows, None, dtype=object) for name in features},
            np.full((rows, len(features)), np.nan),
        )

    @property
    def found(self) -> np.ndarray:
        """Which rows have an earlier explanation."""
        found: np.ndarray = ~np.isnan(self.contributions).all(axis=1)
        return found

    def aligned(self, ids: Sequence[str], features: Sequence[str]) -> Earlier:
        """The rows of `ids` in that order (a customer not here: no explanation), over `features`
        in that order (a feature not here: not explained then)."""
        at = pd.Index(self.ids).get_indexer(list(ids)) if self.ids else np.full(len(ids), -1)
        missing = at < 0
        result = Earlier.none(ids, features)
        for j, name in enumerate(features):
            if name not in self.values:
                continue
            column = self.features.index(name)
            values = self.values[name][np.where(missing, 0, at)]
            values[missing] = None
            result.values[name][:] = values
            shares = self.contributions[np.where(missing, 0, at), column]
            result.contributions[:, j] = np.where(missing, np.nan, shares)
        return result


# customer ids -> their earlier explanations (one read per call: a chunk's risen rows, the pool)
Lookup = Callable[[pd.Series], Earlier]


def changed_cells(X: pd.DataFrame, earlier: Earlier, features: Sequence[str]) -> np.ndarray:
    """Rows x features: whether the row's value differs from its earlier one (rows with no
    earlier explanation: False). Missing both times is the same; otherwise the values compare
    as Python values (2 and 2.0 are one value; "2" and 2 are not), a column at a time."""
    changed = np.zeros((len(X), len(features)), dtype=bool)
    found = earlier.found
    for j, name in enumerate(features):
        now, then = X[name].to_numpy(dtype=object), earlier.values[name]
        now_missing, then_missing = pd.isna(now), pd.isna(then)
        equal = np.asarray(now == then, dtype=bool)
        same = (now_missing & then_missing) | (~now_missing & ~then_missing & equal)
        changed[:, j] = ~same & found
    return changed


def promoted_cells(explanation: Explanation, X: pd.DataFrame, earlier: Earlier) -> np.ndarray:
    """Rows x features: the value changed and the contribution rose since the earlier
    explanation (`earlier` aligned to the rows and features)."""
    now = np.asarray(explanation.contributions, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        rose = (now - earlier.contributions) > 0  # NaN (not explained then): False
    promoted: np.ndarray = rose & changed_cells(X, earlier, explanation.features)
    return promoted


def changed_picks(
    now: np.ndarray, rise: np.ndarray, promoted: np.ndarray, width: int
) -> np.ndarray:
    """reason x row: the promoted features first, the largest rise first, then the largest
    contributions (no feature twice); with nothing promoted, reason_arrays' picks (the same
    stable sort of the contributions)."""
    by_contribution = np.argsort(-now, axis=1, kind="stable")
    promoted_first = np.argsort(
        ~np.take_along_axis(promoted, by_contribution, axis=1), axis=1, kind="stable"
    )
    rest = np.take_along_axis(by_contribution, promoted_first, axis=1)  # promoted, then the rest
    by_rise = np.argsort(-np.where(promoted, rise, -np.inf), axis=1, kind="stable")
    count = promoted.sum(axis=1)[:, None]
    picks: np.ndarray = np.where(np.arange(now.shape[1]) < count, by_rise, rest)[:, :width].T
    return picks
