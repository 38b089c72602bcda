"""compare_on_outcomes on frames: which version scored which rows, shadow joins, the paired pool."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from models.profile import RiskCutoffs
from retainwise.modelops.compare import compare_on_outcomes


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
    by_id = {u["prediction_id"]: u for u in figures["uploads"]}
    assert set(by_id["u2"]["versions"]) == {"1"}  # no shadow file: the challenger did not score it
    joined = first.merge(shadow, on="customer_id", suffixes=("", "_shadow"))
    assert by_id["u1"]["versions"]["2"]["source"] == "shadow"
    assert by_id["u1"]["versions"]["2"]["roc_auc"] == pytest.approx(
        roc_auc_score(joined["churned"], joined["churn_probability_shadow"]), abs=1e-12
    )
    assert figures["paired"]["labelled_rows"] == 80
    assert figures["paired"]["versions"]["1"]["roc_auc"] == pytest.approx(
        roc_auc_score(first["churned"], first["churn_probability"]), abs=1e-12
    )


def test_no_shadow_leaves_the_paired_pool_empty():
    figures = compare_on_outcomes(
        labelled("u1", "1", 40, seed=3), ["1", "2"], lambda *key: None, lambda v: Profile()
    )
    assert figures["paired"] == {"labelled_rows": 0, "versions": {}}
