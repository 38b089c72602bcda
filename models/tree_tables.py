"""Exact TreeSHAP contributions from per-tree tables: ~20x cheaper per row than `pred_contrib`.

Path-dependent TreeSHAP of one tree depends on a row only through the row's decision (left or
right) at each of the tree's internal nodes: off its own path too, since a node whose feature is
"known" follows the row and an unknown one is weighted by the training counts. An 8-leaf tree has
7 internal nodes, so at most 128 decision patterns. Each tree's contributions are computed once
per pattern, as the exact Shapley values of that cover-weighted game (the values LightGBM's own
TreeSHAP gives, tests/models/test_tree_tables.py checks them against `pred_contrib`); a row then
costs one lookup per input column (each column cut where any node decides differently, every
bin naming the bits it sets in every tree's pattern: a byte per tree) and, per feature, a
gather-add of the 256-entry columns of only the trees that use it (~5 features a tree of 19: a
quarter of the work of adding whole table rows), in tree order (the same bits as adding whole
rows). Rows of a call in the same bin of every column (the same patterns) are computed once.
Missing values, LightGBM's missing types and category codes no split names go where LightGBM's
Numerical/CategoricalDecision sends them.
Larger trees (more than MAX_NODES internal nodes) are left to `pred_contrib` (`tables_for`: None).
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from math import factorial, prod
from typing import Any

import numpy as np

MAX_NODES = 8  # internal nodes per tree: 2**8 patterns, one byte each
ROWS = 16_384  # rows gathered at a time (one call per (tree, feature) column: larger amortises it)
PATTERN_ROWS = 4_096  # rows whose patterns are ORed at a time (rows x trees bytes stay in cache)
CACHE_ROWS = 65_536  # bin combinations a ContributionCache keeps (~10 MB with 19 features)
ZERO = 1e-35  # LightGBM's kZeroThreshold: |x| at most this is "zero" for missing_type Zero


@dataclass(frozen=True)
class Node:
    feature: int
    numeric: bool
    threshold: float  # numeric splits: left when value <= threshold
    categories: frozenset[int]  # category splits: left when the code is one of these
    default_left: bool  # where a missing value goes (numeric splits)
    missing: str  # LightGBM's missing_type: None, Zero or NaN


@dataclass(frozen=True)
class Leaf:
    value: float
    path: tuple[tuple[int, bool, float], ...]  # (node, went left, child count / node count)


@dataclass(frozen=True)
class FeatureBins:
    """One input column cut where any node decides differently, and the decision bits each bin
    sets in every tree's pattern (so a row's patterns are an OR of one lookup per column)."""

    feature: int
    numeric: bool
    bounds: np.ndarray  # numeric: sorted cut points (bin i holds bounds[i-1] < x <= bounds[i])
    lookup: np.ndarray  # bins x trees, uint8; numeric: the last bin is NaN; category: "other"

    def bins(self, column: np.ndarray) -> np.ndarray:
        if self.numeric:
            found = np.searchsorted(self.bounds, column, side="left")
            return np.where(np.isnan(column), len(self.bounds) + 1, found)
        other = len(self.lookup) - 1  # NaN, negative or a code no split names: right everywhere
        named = (column >= 0) & (column < other)  # False for NaN
        return np.where(named, column, other).astype(np.int64)  # truncated, as C++


@dataclass(frozen=True)
class TreeTables:
    """Every tree's contributions per decision pattern, and the columns' bins that give them.

    The table is kept as its non-zero (tree, feature) columns, grouped by feature: `entries` x
    2**MAX_NODES values, `entry_tree` each one's tree, `feature_entries[f]` the slice of feature
    f's entries (in tree order)."""

    columns: list[FeatureBins]
    entries: np.ndarray  # (tree, feature) columns x 2**MAX_NODES contributions
    entry_tree: np.ndarray  # each entry's tree
    feature_entries: list[tuple[int, int]]  # per feature: its entries' [start, stop)
    base: float  # the expected margin (the sum of the trees' expected values)
    trees: int

    @classmethod
    def of(cls, columns: list[FeatureBins], table: np.ndarray, base: float) -> TreeTables:
        """From the full table ((trees * 2**MAX_NODES) x features)."""
        trees, width = len(table) >> MAX_NODES, table.shape[1]
        blocks = table.reshape(trees, 1 << MAX_NODES, width)
        used = np.any(blocks != 0, axis=1)  # trees x features: a column with a non-zero value
        feature_of, tree_of = np.nonzero(used.T)  # by feature, then tree: the order of the sums
        entries = np.ascontiguousarray(blocks[tree_of, :, feature_of])
        stops = np.cumsum(np.bincount(feature_of, minlength=width))
        bounds = [
            (int(stop - count), int(stop))
            for stop, count in zip(stops, used.sum(axis=0), strict=True)
        ]
        return cls(columns, entries, tree_of.astype(np.intp), bounds, base, trees)

    @property
    def features(self) -> int:
        return len(self.feature_entries)

    def contributions(self, X: np.ndarray, cache: ContributionCache | None = None) -> np.ndarray:
        """rows x (features + 1), as `pred_contrib` gives them: the base value last. Rows in the
        same bin of every column have the same patterns, so the same values: each such group is
        computed once (about half the rows of a Telco upload's explained rows share one), and
        once per upload with `cache` (its chunks' explained rows fall in a fifth as many groups)."""
        X = np.asarray(X, dtype=np.float64)
        bins = [column.bins(X[:, column.feature]) for column in self.columns]
        distinct, inverse, keys = self._distinct(bins)
        if distinct is not None:
            bins = [column_bins[distinct] for column_bins in bins]
        rows = len(bins[0]) if bins else len(X)
        out = np.empty((self.features + 1, rows))  # feature-major: each sum is a contiguous row
        out[-1] = self.base
        if cache is None or keys is None:
            self._compute(bins, out[:-1])
        else:
            cache.fill(
                self,
                keys,
                out[:-1],
                lambda fresh, missing: self._compute(
                    [column_bins[missing] for column_bins in bins], fresh
                ),
            )
        return (out if inverse is None else out[:, inverse]).T

    def _compute(self, bins: list[np.ndarray], out: np.ndarray) -> None:
        """Into `out` (features x rows) the contributions of the rows given by their bins."""
        rows = out.shape[1]
        for start in range(0, rows, ROWS):
            block = [column_bins[start : start + ROWS] for column_bins in bins]
            width = min(ROWS, rows - start)
            self._gather(self._patterns(block, width), out[:, start : start + width])

    def _distinct(
        self, bins: list[np.ndarray]
    ) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
        """(one row per distinct combination of bins, each row's combination, the combinations'
        keys ascending), or Nones when the combinations do not fit one int64 key."""
        if not bins or prod(len(column.lookup) for column in self.columns) >= 2**63:
            return None, None, None
        key = np.zeros(len(bins[0]), dtype=np.int64)
        for column, column_bins in zip(self.columns, bins, strict=True):
            key *= len(column.lookup)
            key += column_bins
        order = np.argsort(key)  # unstable: any row of a combination has its bins
        ordered = key[order]
        starts = np.empty(len(key), dtype=bool)
        starts[:1] = True
        np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
        inverse = np.empty(len(key), dtype=np.intp)
        inverse[order] = np.cumsum(starts) - 1
        return order[starts], inverse, ordered[starts]

    def _patterns(self, bins: list[np.ndarray], rows: int) -> np.ndarray:
        """rows x trees: each tree's decisions as a byte (bit j: the row goes left at node j), of
        the rows given by their bin in each of `columns`."""
        patterns = np.zeros((rows, self.trees), dtype=np.uint8)
        for start in range(0, rows, PATTERN_ROWS):
            block = patterns[start : start + PATTERN_ROWS]
            for column, column_bins in zip(self.columns, bins, strict=True):
                block |= column.lookup[column_bins[start : start + PATTERN_ROWS]]
        return patterns

    def _gather(self, patterns: np.ndarray, out: np.ndarray) -> None:
        """Into `out` (features x rows): per feature, the sum over the trees that use it of the
        tree's value for the row's pattern, added in tree order from zero."""
        index = np.ascontiguousarray(patterns.T)  # trees x rows (bytes: take reads them as fast)
        picked = np.empty(index.shape[1])
        tree = self.entry_tree  # mode "clip": bytes never pass 2**MAX_NODES; "raise" buffers out
        for feature, (start, stop) in enumerate(self.feature_entries):
            total = out[feature]
            total[:] = 0.0
            for entry in range(start, stop):
                np.take(self.entries[entry], index[tree[entry]], out=picked, mode="clip")
                total += picked


class ContributionCache:
    """Contributions by bin combination (TreeTables' int64 key), shared by an upload's chunks and
    their threads: a 1M-row Telco upload's 220k explained rows fall in 126k combinations counted
    chunk by chunk, 24k across the upload. Bit-equal to computing them (a row's sums depend on
    its bins alone). Keeps at most `capacity` (the first met; ~160 bytes each), for one table.

    What is kept is one snapshot (sorted keys, their slots, the rows): a lookup reads it without
    the lock; keeping writes new rows into free slots, then publishes a new snapshot."""

    def __init__(self, capacity: int = CACHE_ROWS):
        self.capacity = capacity
        self._lock = threading.Lock()  # for keeping; a lookup reads the snapshot as it is
        self._tables: TreeTables | None = None
        self._kept = _NOTHING  # keys ascending, each one's slot, slots x features

    def __len__(self) -> int:
        return len(self._kept[0])

    def fill(
        self,
        tables: TreeTables,
        keys: np.ndarray,
        out: np.ndarray,
        compute: Callable[[np.ndarray, np.ndarray], None],
    ) -> None:
        """Into `out` (features x keys) the contributions of `keys` (ascending, distinct): the
        kept ones copied, the others computed by `compute(into, positions in keys)` and kept."""
        held, slots, rows = self._kept if self._serves(tables) else _NOTHING
        known = np.zeros(len(keys), dtype=bool)
        if len(held):
            at = np.minimum(np.searchsorted(held, keys), len(held) - 1)
            known = held[at] == keys
            hits = np.flatnonzero(known)
            out[:, hits] = rows[slots[at[hits]]].T
        missing = np.flatnonzero(~known)
        if not len(missing):
            return
        fresh = np.empty((out.shape[0], len(missing)))
        compute(fresh, missing)
        out[:, missing] = fresh
        self._keep(tables, keys[missing], fresh)

    def _keep(self, tables: TreeTables, keys: np.ndarray, fresh: np.ndarray) -> None:
        """Keep `keys`' contributions (features x keys) while there is room; another thread may
        have kept some of them meanwhile."""
        with self._lock:
            if not self._serves(tables):
                return
            self._tables = tables
            held, slots, rows = self._kept
            if len(held):
                at = np.minimum(np.searchsorted(held, keys), len(held) - 1)
                new = np.flatnonzero(held[at] != keys)
            else:
                new = np.arange(len(keys))
            new = new[: self.capacity - len(held)]
            if not len(new):
                return
            if not len(rows):
                rows = np.empty((self.capacity, len(fresh)))  # pages touched as they fill
            placed = np.arange(len(held), len(held) + len(new))
            rows[placed] = fresh.T[new]  # free slots: no snapshot names them yet
            merged = np.concatenate([held, keys[new]])
            order = np.argsort(merged, kind="stable")
            self._kept = (merged[order], np.concatenate([slots, placed])[order], rows)

    def _serves(self, tables: TreeTables) -> bool:
        """One table's contributions only (the first that asked)."""
        return self._tables is None or self._tables is tables

    def clear(self) -> None:
        """Let the kept contributions go (the upload's rows are all explained)."""
        with self._lock:
            self._kept = _NOTHING


_NOTHING = (np.empty(0, dtype=np.int64), np.empty(0, dtype=np.intp), np.empty((0, 0)))


Placed = tuple[int, int, "Node"]  # (tree, bit, node)


def numeric_bins(feature: int, placed: list[Placed], trees: int) -> FeatureBins:
    """Cut at every threshold and at +-ZERO (a missing_type Zero node treats that band as
    missing); one more bin for NaN (LightGBM reads it as 0 unless the node's type is NaN)."""
    low = np.nextafter(-ZERO, -np.inf)
    bounds = np.unique([node.threshold for _, _, node in placed] + [low, ZERO])
    where = {float(b): i for i, b in enumerate(bounds)}
    bins = np.arange(len(bounds) + 1)
    zero = (bins > where[float(low)]) & (bins <= where[ZERO])
    lookup = np.zeros((len(bounds) + 2, trees), dtype=np.uint8)
    for tree, bit, node in placed:
        below = bins <= where[node.threshold]
        left = np.where(zero, node.default_left, below) if node.missing == "Zero" else below
        on_nan = node.default_left if node.missing != "None" else 0.0 <= node.threshold
        lookup[:, tree] |= np.append(left, on_nan).astype(np.uint8) << bit
    return FeatureBins(feature, True, bounds, lookup)


def category_bins(feature: int, placed: list[Placed], trees: int) -> FeatureBins:
    """One bin per category code any split names, and a last bin for every other value."""
    width = 1 + max(max(node.categories, default=0) for _, _, node in placed)
    lookup = np.zeros((width + 1, trees), dtype=np.uint8)
    for tree, bit, node in placed:
        lookup[sorted(node.categories), tree] |= np.uint8(1 << bit)
    return FeatureBins(feature, False, np.empty(0), lookup)


def feature_bins(placed: list[Placed], trees: int) -> list[FeatureBins]:
    """The bins of every column some node splits on."""
    by_feature: dict[tuple[int, bool], list[Placed]] = {}
    for entry in placed:
        by_feature.setdefault((entry[2].feature, entry[2].numeric), []).append(entry)
    return [
        (numeric_bins if numeric else category_bins)(feature, entries, trees)
        for (feature, numeric), entries in sorted(by_feature.items())
    ]


def read_tree(structure: dict[str, Any]) -> tuple[list[Node], list[Leaf]]:
    """A dumped LightGBM tree's internal nodes (pre-order) and leaves with their paths."""
    nodes: list[Node] = []
    leaves: list[Leaf] = []

    def count(part: dict[str, Any]) -> int:
        return int(part["internal_count"] if "split_index" in part else part["leaf_count"])

    def visit(part: dict[str, Any], path: tuple[tuple[int, bool, float], ...]) -> None:
        if "split_index" not in part:
            leaves.append(Leaf(float(part["leaf_value"]), path))
            return
        numeric = part["decision_type"] == "<="
        threshold = part["threshold"]
        here = len(nodes)
        nodes.append(
            Node(
                feature=int(part["split_feature"]),
                numeric=numeric,
                threshold=float(threshold) if numeric else 0.0,
                categories=frozenset() if numeric else frozenset(_codes(threshold)),
                default_left=bool(part["default_left"]),
                missing=str(part["missing_type"]),
            )
        )
        total = count(part)
        for child, went_left in ((part["left_child"], True), (part["right_child"], False)):
            visit(child, (*path, (here, went_left, count(child) / total)))

    visit(structure, ())
    return nodes, leaves


def _codes(threshold: Any) -> list[int]:
    return [int(code) for code in str(threshold).split("||")]


def tree_table(nodes: list[Node], leaves: list[Leaf]) -> tuple[np.ndarray, list[int], float]:
    """(patterns x the tree's features) Shapley values, those features, the tree's expected value.

    v(pattern, S) = sum over leaves of value x product over the leaf's path of: the row's own
    decision when the node's feature is in S, else the share of training rows going that way."""
    features = sorted({node.feature for node in nodes})
    local = {feature: i for i, feature in enumerate(features)}
    m, k = len(nodes), len(features)
    bits = (np.arange(2**m)[:, None] >> np.arange(m)) & 1 == 1  # patterns x nodes
    known = (np.arange(2**k)[:, None] >> np.arange(k)) & 1 == 1  # subsets x features
    game = np.zeros((2**m, 2**k))
    for leaf in leaves:
        weight = np.ones((2**m, 2**k))
        for node, went_left, share in leaf.path:
            follows = (bits[:, node] == went_left)[:, None]
            weight = weight * np.where(known[None, :, local[nodes[node].feature]], follows, share)
        game += leaf.value * weight
    return game @ shapley_weights(known), features, float(game[0, 0])


def shapley_weights(known: np.ndarray) -> np.ndarray:
    """subsets x features: phi_i = sum_S weights[S, i] v(S), i.e. |S|!(k-|S|-1)!/k! for the
    subset with i minus the same weight for the subset without it."""
    k = known.shape[1]
    sizes = known.sum(axis=1)
    weight = np.array([factorial(s) * factorial(k - s - 1) / factorial(k) for s in range(k)])
    with_i = weight[np.clip(sizes - 1, 0, k - 1)][:, None]
    without_i = weight[np.clip(sizes, 0, k - 1)][:, None]
    weights: np.ndarray = np.where(known, with_i, -without_i)
    return weights


def build_tables(dump: dict[str, Any]) -> TreeTables | None:
    """The tables of a dumped binary LightGBM model, or None when a tree is too large."""
    if dump.get("num_tree_per_iteration", 1) != 1:
        return None
    width = int(dump["max_feature_idx"]) + 1
    trees = dump["tree_info"]
    table = np.zeros((len(trees) << MAX_NODES, width))
    placed: list[Placed] = []
    base = 0.0
    for t, tree in enumerate(trees):
        tree_nodes, leaves = read_tree(tree["tree_structure"])
        if len(tree_nodes) > MAX_NODES:
            return None
        if not tree_nodes:
            base += leaves[0].value
            continue
        values, features, expected = tree_table(tree_nodes, leaves)
        base += expected
        block = table[t << MAX_NODES : (t << MAX_NODES) + len(values)]
        block[:, features] = values
        placed += [(t, bit, node) for bit, node in enumerate(tree_nodes)]
    return TreeTables.of(feature_bins(placed, len(trees)), table, base)


_TABLES: weakref.WeakKeyDictionary[Any, TreeTables | None] = weakref.WeakKeyDictionary()
_BUILDING = threading.Lock()  # the chunked path's scorer threads ask for them at once


def tables_for(booster: Any) -> TreeTables | None:
    """The fitted LightGBM booster's tables, built once per booster object (~0.2 CPU s for
    the Telco champion's 200 trees): a second thread asking meanwhile waits for them instead of
    building them again (both scorer threads did, on an upload's first chunks)."""
    with _BUILDING:
        if booster not in _TABLES:
            _TABLES[booster] = build_tables(booster.dump_model())
        return _TABLES[booster]
