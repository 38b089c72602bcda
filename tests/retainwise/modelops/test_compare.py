"""compare_on_outcomes on frames: which version scored which rows, shadow joins, the paired pool."""

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.profile import RiskCutoffs
from retainwise.modelops.compare import (
    Comparison,
    Holdout,
    Source,
    compare_on_outcomes,
    terminal_table,
)
from tests.retainwise.modelops import pinned


class Profile:
    threshold, cutoffs = 0.5, RiskCutoffs(high=0.7, medium=0.4)


def labelled(prediction_id: str, version: str, n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "prediction_id": prediction_id,
            "account": "acme",
            "model_version": version,
            "customer_id": [f"c{i}" for i in range(n)],
            "churned": rng.integers(0, 2, n),
            "churn_probability": rng.random(n),
        }
    )


def test_shadow_rows_join_by_customer_and_only_shadowed_uploads_are_paired():
    first, second = labelled("u1", "1", 80, seed=1), labelled("u2", "1", 50, seed=2)
    shadow = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(80)][::-1],
            "churn_probability": np.linspace(0.01, 0.99, 80),
        }
    )
    shadows = {("acme", "u1", "2"): shadow}
    figures = compare_on_outcomes(
        pd.concat([first, second]),
        ["1", "2"],
        lambda a, p, v: shadows.get((a, p, v)),
        lambda v: Profile(),
    )
    by_id = {u.prediction_id: u for u in figures.uploads}
    assert set(by_id["u2"].versions) == {"1"}  # no shadow file: the challenger did not score it
    joined = first.merge(shadow, on="customer_id", suffixes=("", "_shadow"))
    assert by_id["u1"].versions["2"].source == Source.SHADOW
    assert by_id["u1"].versions["2"].roc_auc == pytest.approx(
        roc_auc_score(joined["churned"], joined["churn_probability_shadow"]), abs=1e-12
    )
    assert figures.paired.labelled_rows == 80
    assert figures.paired.versions["1"].roc_auc == pytest.approx(
        roc_auc_score(first["churned"], first["churn_probability"]), abs=1e-12
    )


def test_no_shadow_leaves_the_paired_pool_empty():
    figures = compare_on_outcomes(
        labelled("u1", "1", 40, seed=3), ["1", "2"], lambda *key: None, lambda v: Profile()
    )
    assert figures.paired.to_json() == {"labelled_rows": 0, "versions": {}}


def test_the_printed_comparison_is_byte_for_byte_pinned():
    rng = np.random.default_rng(5)
    p = rng.random(120)
    outcomes = pd.concat(
        [
            pinned.labelled("u1-aaaaaaaa", "acme", "1", rng.random(120) < p, p),
            pinned.labelled("u2-bbbbbbbb", "bravo", "2", np.zeros(60), p[:60]),
            pinned.labelled("u3-cccccccc", "acme", "1", rng.random(40) < p[:40], p[:40]),
        ]
    )
    shadows = {
        ("acme", "u1-aaaaaaaa", "2"): pd.DataFrame(
            {"customer_id": [f"c{i}" for i in range(100)], "churn_probability": p[:100] ** 2}
        ),
        ("bravo", "u2-bbbbbbbb", "1"): pd.DataFrame(
            {"customer_id": [f"c{i}" for i in range(60)], "churn_probability": p[60:]}
        ),
    }
    outcomes_figures = compare_on_outcomes(
        outcomes, ["1", "2"], lambda *key: shadows.get(key), pinned.PROFILES.__getitem__
    )
    holdout = Holdout(
        "test split stored with version 2 (400 rows)",
        {
            "1": {"roc_auc": 0.8123, "brier": 0.151, "rows": 400.0},
            "2": {"roc_auc": 0.8234, "brier": 0.149, "rows": 400.0},
        },
    )
    figures = Comparison("churn", "acme", "1", "2", holdout, outcomes_figures)
    assert pinned.matches_pin("compare.json", json.dumps(figures.to_json(), default=str))
    assert pinned.matches_pin("compare.txt", terminal_table(figures))
