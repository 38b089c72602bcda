"""Per-customer reasons: exact shares for the linear model, replacement effects for trees."""

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from models import explain
from models.calibration import CalibratedModel
from models.features import infer_features, prepare_features
from models.profile import ModelProfile
from models.training import build_boosted, build_linear


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(4)
    rows = 400
    tenure = rng.integers(0, 72, rows)
    contract = rng.choice(["Month-to-month", "Two year"], rows)
    y = (
        rng.random(rows) < 1 / (1 + np.exp(-(1.5 * (contract == "Month-to-month") - 0.05 * tenure)))
    ).astype(int)
    table = pd.DataFrame(
        {"tenure": tenure.astype(str), "Contract": contract, "gender": rng.choice(["F", "M"], rows)}
    )
    features, _ = infer_features(table, exclude=set())
    profile = ModelProfile(id_column=None, target="Churn", features=features)
    return table, prepare_features(table, features), y, profile


def fitted(build, data) -> CalibratedModel:
    _, X, y, profile = data
    with threadpool_limits(limits=1, user_api="openmp"):  # as training does on a busy box
        return CalibratedModel(build(profile).fit(X, y), 1.0, 0.0)


def test_linear_shares_add_up_to_the_score_minus_a_constant(data):
    _, X, _, profile = data
    model = fitted(build_linear, data)
    shares = explain.linear_contributions(model, profile, X)
    remainder = model.decision_function(X) - shares.sum(axis=1)
    assert np.ptp(remainder) < 1e-9
    assert shares.shape == (len(X), 3)


def test_short_month_to_month_customers_are_explained_by_contract_and_tenure(data):
    _, X, _, profile = data
    model = fitted(build_linear, data)
    customer = pd.DataFrame({"tenure": [1.0], "Contract": ["Month-to-month"], "gender": ["F"]})
    reasons = explain.top_reasons(model, profile, customer).iloc[0]
    assert set(reasons.split("; ")[:2]) == {"Contract=Month-to-month", "tenure=1"}


def test_tree_reasons_use_replacement_and_only_name_risk_raising_features(data):
    _, X, _, profile = data
    model = fitted(build_boosted, data)
    assert not explain.is_linear(model)
    loyal = pd.DataFrame({"tenure": [70.0], "Contract": ["Two year"], "gender": ["M"]})
    risky = pd.DataFrame({"tenure": [1.0], "Contract": ["Month-to-month"], "gender": ["M"]})
    assert "Contract=Month-to-month" in explain.top_reasons(model, profile, risky).iloc[0]
    assert "Contract" not in explain.top_reasons(model, profile, loyal).iloc[0]


def test_a_plain_pipeline_from_an_older_version_is_explained_too(data):
    _, X, y, profile = data
    pipeline: Pipeline = build_linear(profile).fit(X, y)
    assert len(explain.top_reasons(pipeline, profile, X.head(5))) == 5
