"""Exact contributions: base value + contributions = the margin, for every model family trained."""

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from threadpoolctl import threadpool_limits

from models import explain, reasons, training
from models.calibration import CalibratedModel
from models.features import infer_features, prepare_features
from models.profile import ModelProfile
from models.training import build_boosted, build_linear


@pytest.fixture(scope="module")
def telco(telco_trained):
    """The Telco table, prepared, with each candidate trained on it through `train` (the one it
    picks is the session's)."""
    frame, picked = telco_trained
    models = {picked.kind: picked}
    for kind in training.CANDIDATES.keys() - models.keys():
        chosen = training.pick_best
        training.pick_best = lambda candidates, kind=kind: kind  # force each kind in turn
        try:
            models[kind] = training.train(frame, "Churn", "customerID")
        finally:
            training.pick_best = chosen
    return frame, models


@pytest.mark.parametrize("kind", list(training.CANDIDATES))
def test_base_plus_contributions_is_the_margin_on_telco(telco, kind):
    frame, models = telco
    trained = models[kind]
    assert trained.profile.categorical  # Telco's category columns are in play
    X = prepare_features(frame, trained.profile.features)
    found = explain.explain(trained.pipeline, trained.profile, X)
    assert found.contributions.shape == (len(X), len(trained.profile.features))
    assert np.max(np.abs(found.margin - trained.pipeline.decision_function(X))) < 1e-6
    assert np.ptp(found.base) < 1e-9  # one base value per model


def test_unseen_categories_and_missing_numbers_are_explained_exactly(telco):
    frame, models = telco
    trained = models["gradient_boosting"]
    rows = frame.head(50).copy()
    rows["Contract"] = "Two-year plus"
    rows["MonthlyCharges"] = ""
    X = prepare_features(rows, trained.profile.features)
    found = explain.explain(trained.pipeline, trained.profile, X)
    assert np.max(np.abs(found.margin - trained.pipeline.decision_function(X))) < 1e-6


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
    return prepare_features(table, features), y, profile


def fitted(build, data) -> CalibratedModel:
    X, y, profile = data
    with threadpool_limits(limits=1, user_api="openmp"):  # as training does on a busy box
        return CalibratedModel(build(profile).fit(X, y), 1.0, 0.0)


@pytest.mark.parametrize("build", [build_linear, build_boosted])
def test_month_to_month_raises_risk_and_two_year_lowers_it(data, build):
    _, _, profile = data
    model = fitted(build, data)
    rows = pd.DataFrame(
        {"tenure": [1.0, 1.0], "Contract": ["Month-to-month", "Two year"], "gender": ["F", "F"]}
    )
    shares = explain.explain(model, profile, rows).contributions
    contract = profile.feature_names.index("Contract")
    assert shares[0, contract] > 0 > shares[1, contract]


def test_a_plain_pipeline_from_an_older_version_is_explained_too(data):
    X, y, profile = data
    pipeline: Pipeline = build_linear(profile).fit(X, y)
    found = explain.explain(pipeline, profile, X.head(5))
    assert np.max(np.abs(found.margin - pipeline.decision_function(X.head(5)))) < 1e-9


def test_a_histgradientboosting_version_is_not_explained_and_gets_no_reasons(data):
    X, y, profile = data
    pipeline = build_boosted(profile)
    pipeline.steps[-1] = ("classifier", HistGradientBoostingClassifier(max_iter=5))
    pipeline.fit(X, y)
    with pytest.raises(explain.NotExplainable, match="retrain"):
        explain.explain(pipeline, profile, X.head(5))
    assert (reasons.top_reasons(pipeline, profile, X.head(5)) == "").all()
