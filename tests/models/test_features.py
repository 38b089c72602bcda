"""Feature typing and training distributions on small frames."""

import numpy as np
import pandas as pd
import pytest

from models.features import bin_shares, infer_features, numeric_bin_edges, prepare_features
from models.profile import FeatureProfile, ModelProfile


def frame(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "customer id": [f"C{i}" for i in range(rows)],
            "Tenure Months": [str(v) for v in rng.integers(0, 72, rows)],
            "Total Charges": [
                " " if i % 10 == 0 else f"{v:.2f}"
                for i, v in enumerate(rng.uniform(10, 5000, rows))
            ],
            "Contract": rng.choice(["Month-to-month", "Two year"], rows),
            "Always": ["same"] * rows,
            "Nothing": [None] * rows,
            "Email": [f"user{i}@example.com" for i in range(rows)],
        }
    )


def test_types_are_inferred_and_useless_columns_dropped_with_a_note():
    features, notes = infer_features(frame(), exclude={"customer id"})
    kinds = {f.name: f.kind for f in features}
    assert kinds == {
        "Tenure Months": "numeric",
        "Total Charges": "numeric",
        "Contract": "categorical",
    }
    assert any(n.startswith("Always: dropped") for n in notes)
    assert any(n.startswith("Nothing: dropped") for n in notes)
    assert any(n.startswith("Email: dropped") and "identifier" in n for n in notes)


def test_blank_cells_are_missing_numbers_not_a_category():
    features, _ = infer_features(frame(), exclude={"customer id"})
    charges = next(f for f in features if f.name == "Total Charges")
    assert charges.missing_share == pytest.approx(0.1)
    prepared = prepare_features(frame(), features)
    assert prepared["Total Charges"].dtype == np.float64
    assert prepared["Total Charges"].isna().sum() == 6


def test_numeric_bins_are_deciles_with_a_missing_bucket_last():
    values = pd.Series([float(v) for v in range(100)] + [np.nan] * 25)
    edges = numeric_bin_edges(values)
    shares = bin_shares(values, edges)
    assert len(edges) == 11 and len(shares) == 11
    assert shares[-1] == pytest.approx(0.2)
    assert sum(shares) == pytest.approx(1.0)
    assert all(s == pytest.approx(0.08) for s in shares[:-1])


def test_few_valued_numbers_get_one_bin_per_value_and_outer_bins_are_open():
    edges = numeric_bin_edges(pd.Series([0.0, 1.0, 1.0, 0.0]))
    assert edges == [0.0, 0.5, 1.0]
    assert bin_shares(pd.Series([-5.0, 0.0, 1.0, 9.0]), edges) == [0.5, 0.5, 0.0]


def test_categories_carry_their_training_shares():
    features, _ = infer_features(frame(), exclude={"customer id"})
    contract = next(f for f in features if f.name == "Contract")
    assert set(contract.category_shares) == {"Month-to-month", "Two year"}
    assert sum(contract.category_shares.values()) == pytest.approx(1.0)


def test_profile_from_an_older_version_without_new_keys_still_loads():
    old = {
        "id_column": "id",
        "target": "Churn",
        "threshold": 0.4,
        "cutoffs": {"high": 0.7, "medium": 0.4},
        "features": [
            {
                "name": "tenure",
                "kind": "numeric",
                "minimum": 0,
                "maximum": 72,
                "categories": [],
                "missing_share": 0.0,
            }
        ],
    }
    profile = ModelProfile.from_dict(old)
    assert profile.features[0].bin_edges == [] and profile.features[0].category_shares == {}
    assert profile.threshold == 0.4 and profile.cutoffs.high == 0.7
    newer = {**old, "features": [{**old["features"][0], "added_later": 1}]}
    assert ModelProfile.from_dict(newer).features[0] == FeatureProfile.from_dict(old["features"][0])
    assert ModelProfile.from_dict(profile.to_dict()) == profile
