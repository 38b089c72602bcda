"""The leakage guard on small frames: copies of the label go, honest and id-like columns stay."""

import numpy as np
import pandas as pd

from models.features import infer_features, prepare_features
from models.leakage import leaking_columns


def labeled(rows: int = 400, seed: int = 1):
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < 0.3).astype(int)
    table = pd.DataFrame(
        {
            "honest": (y * 0.8 + rng.normal(0, 1, rows)).round(3).astype(str),
            "Churn Label": np.where(y == 1, "Yes", "No"),
            "days_since_cancel": np.where(y == 1, rng.integers(1, 30, rows).astype(str), ""),
            "noisy copy": np.where(rng.random(rows) < 0.995, y, 1 - y).astype(str),
            "ticket": [f"T{i:05d}x" for i in rng.permutation(rows)],
            "plan": rng.choice(["a", "b", "c"], rows),
        }
    )
    return table, y


def test_label_copies_and_answer_only_fields_are_reported():
    table, y = labeled()
    features, _ = infer_features(table, exclude=set())
    leaks = leaking_columns(prepare_features(table, features), y, features)
    assert set(leaks) == {"Churn Label", "days_since_cancel", "noisy copy"}
    assert "ROC AUC" in leaks["Churn Label"]


def test_a_rare_label_does_not_make_a_dull_column_look_like_a_copy():
    rng = np.random.default_rng(2)
    y = (rng.random(1000) < 0.01).astype(int)
    table = pd.DataFrame({"flag": rng.choice(["x", "y"], 1000, p=[0.99, 0.01])})
    features, _ = infer_features(table, exclude=set())
    assert leaking_columns(prepare_features(table, features), y, features) == {}


def test_distinct_text_is_not_leakage_when_encoded_out_of_fold():
    """Unique values would predict perfectly in-sample; out of fold they carry nothing."""
    from models.leakage import single_feature_auc

    table, y = labeled()
    assert single_feature_auc(table["ticket"], y, "categorical") < 0.7
