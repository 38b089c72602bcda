"""Per-tree tables give LightGBM's own TreeSHAP (`pred_contrib`) to 1e-9, row for row."""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from math import prod

import numpy as np
import pytest
from lightgbm import LGBMClassifier

from models import training
from models.explain import base_pipeline
from models.features import prepare_features
from models.tree_tables import MAX_NODES, ContributionCache, build_tables, tables_for


def pred_contrib(booster, X: np.ndarray) -> np.ndarray:
    return np.asarray(booster.predict(X, pred_contrib=True), dtype=np.float64)


@pytest.fixture(scope="module")
def telco_booster(telco_trained):
    """The Telco champion's LightGBM booster and its encoded rows (numbers, then codes)."""
    frame, trained = telco_trained  # the session's: Telco picks gradient boosting
    if trained.kind != "gradient_boosting":  # trained again, that kind forced, if that changed
        chosen = training.pick_best
        training.pick_best = lambda candidates: "gradient_boosting"
        try:
            trained = training.train(frame, "Churn", "customerID")
        finally:
            training.pick_best = chosen
    pipeline = base_pipeline(trained.pipeline)
    X = prepare_features(frame, trained.profile.features)
    encoded = np.asarray(pipeline[:-1].transform(X), dtype=np.float64)
    return pipeline.steps[-1][1].booster_, encoded, len(trained.profile.numeric)


def test_tables_equal_pred_contrib_on_telco_with_categories_and_missing_values(telco_booster):
    booster, encoded, numeric = telco_booster
    X = encoded.copy()
    X[::7, numeric - 1] = np.nan  # TotalCharges (missing_type NaN)
    X[::5, 1] = 0.0  # tenure 0
    X[::11, numeric] = np.nan  # a category column: NaN goes right
    X[::13, numeric + 1] = -1  # a negative code goes right
    X[::17, numeric + 2] = 99  # a code no split names
    X[::19, numeric + 3] = 1.7  # codes are truncated, as LightGBM's int cast
    tables = tables_for(booster)
    assert tables is not None
    assert np.max(np.abs(tables.contributions(X) - pred_contrib(booster, X))) < 1e-9


def test_missing_type_zero_and_nan_splits_match_pred_contrib():
    """`zero_as_missing` makes missing_type Zero nodes: 0 (and |x| <= 1e-35) take the default
    side; NaN reads as 0 there. Infinities and tiny values land in the right bins."""
    rng = np.random.default_rng(9)
    X = rng.normal(size=(3000, 4))
    X[rng.random(X.shape) < 0.2] = 0.0
    y = (X[:, 0] + (X[:, 1] == 0) - X[:, 2] + rng.normal(size=3000) > 0).astype(int)
    for zero_as_missing in (True, False):
        model = LGBMClassifier(
            n_estimators=30, num_leaves=8, zero_as_missing=zero_as_missing, verbose=-1
        ).fit(X, y)
        booster = model.booster_
        types = {
            node["missing_type"]
            for tree in booster.dump_model()["tree_info"]
            for node in _nodes(tree["tree_structure"])
        }
        assert ("Zero" in types) == zero_as_missing
        probe = X[:500].copy()
        probe[::3, 0] = np.nan
        probe[1::7, 1] = 1e-36
        probe[2::7, 2] = -np.inf
        probe[3::7, 3] = np.inf
        tables = build_tables(booster.dump_model())
        assert tables is not None
        assert np.max(np.abs(tables.contributions(probe) - pred_contrib(booster, probe))) < 1e-9


def test_rows_sharing_every_bin_get_the_bits_each_row_gets_alone(telco_booster):
    """Rows in the same bins are computed once per call, then copied: the same bits as each row
    computed on its own (duplicates and near-duplicates of the first rows included)."""
    booster, encoded, numeric = telco_booster
    near = encoded[:150].copy()
    near[:, :numeric] += 1e-9  # the same bins, mostly: not the same numbers
    X = np.vstack([encoded[:150], near, encoded[:150][::-1]])
    tables = tables_for(booster)
    assert tables is not None
    together = tables.contributions(X)
    alone = np.vstack([tables.contributions(X[i : i + 1]) for i in range(len(X))])
    assert together.tobytes() == np.ascontiguousarray(alone).tobytes()


def test_a_cache_hit_gives_the_bits_a_miss_gives(telco_booster):
    """Chunks share bin combinations: the second call copies what the first computed, and both
    give what each gives without a cache, byte for byte."""
    booster, encoded, _ = telco_booster
    tables = tables_for(booster)
    assert tables is not None
    first, second = encoded[:2000], encoded[1000:4000]  # a third of `second` is in `first`
    cache = ContributionCache()
    assert tables.contributions(first, cache).tobytes() == tables.contributions(first).tobytes()
    kept = len(cache)
    assert 0 < kept <= len(first)
    alone = tables.contributions(second)
    assert tables.contributions(second, cache).tobytes() == alone.tobytes()
    grown = len(cache)
    assert kept < grown < kept + len(second)  # the shared combinations were not kept again
    assert tables.contributions(second[::-1], cache).tobytes() == alone[::-1].tobytes()
    assert len(cache) == grown  # all hits
    cache.clear()
    assert len(cache) == 0


def test_the_cache_keeps_at_most_its_capacity_and_answers_beyond_it(telco_booster):
    booster, encoded, _ = telco_booster
    tables = tables_for(booster)
    assert tables is not None
    cache = ContributionCache(capacity=50)
    for start in range(0, 3000, 500):
        rows = encoded[start : start + 700]
        assert tables.contributions(rows, cache).tobytes() == tables.contributions(rows).tobytes()
    assert len(cache) == 50


def test_two_threads_sharing_a_cache_get_what_each_computes_alone(telco_booster):
    """The chunked path's two scorer threads explain chunks at once with one cache."""
    booster, encoded, _ = telco_booster
    tables = tables_for(booster)
    assert tables is not None
    cache = ContributionCache()
    slices = [encoded[start : start + 900] for start in range(0, len(encoded) - 900, 300)]
    with ThreadPoolExecutor(2) as pool:
        found = list(pool.map(lambda rows: tables.contributions(rows, cache), slices))
    for rows, got in zip(slices, found, strict=True):
        assert got.tobytes() == tables.contributions(rows).tobytes()


def test_the_cache_serves_the_table_it_was_first_given_only(telco_booster):
    """Another model's rows with the same keys must not read this one's contributions."""
    booster, encoded, _ = telco_booster
    tables = tables_for(booster)
    assert tables is not None
    other = replace(tables, entries=tables.entries * 2)  # the same bins, other values
    cache = ContributionCache()
    tables.contributions(encoded[:500], cache)
    kept = len(cache)
    rows = encoded[:500]
    assert other.contributions(rows, cache).tobytes() == other.contributions(rows).tobytes()
    assert len(cache) == kept


def test_columns_with_too_many_bins_for_one_key_still_match_pred_contrib():
    """~15 split columns of ~40 bins each: their combinations pass 2**63 (one int64 key), so rows
    are not grouped."""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(3000, 30))
    y = (X[:, :15].sum(axis=1) + rng.normal(size=3000) > 0).astype(int)
    model = LGBMClassifier(n_estimators=100, num_leaves=8, verbose=-1).fit(X, y)
    tables = build_tables(model.booster_.dump_model())
    assert tables is not None
    assert prod(len(column.lookup) for column in tables.columns) >= 2**63
    probe = X[:400]
    contributions = tables.contributions(probe)
    assert np.max(np.abs(contributions - pred_contrib(model.booster_, probe))) < 1e-9


def test_trees_too_large_to_tabulate_are_left_to_pred_contrib():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(2000, 5))
    y = (X.sum(axis=1) > 0).astype(int)
    model = LGBMClassifier(n_estimators=5, num_leaves=MAX_NODES + 2, verbose=-1).fit(X, y)
    assert build_tables(model.booster_.dump_model()) is None


def _nodes(part):
    if "split_index" in part:
        yield part
        yield from _nodes(part["left_child"])
        yield from _nodes(part["right_child"])
