"""Behaviour of the default model on the public Telco table (trained once for the module)."""

import numpy as np
import pytest

from models.features import prepare_features
from models.scoring import score_frame
from models.training import LABEL_COLUMN


@pytest.fixture(scope="module")
def telco(telco_trained):
    return telco_trained


def test_holdout_auc_is_in_the_honest_range(telco):
    _, trained = telco
    # published honest results are 0.84-0.85; above 0.87 would mean a leak
    assert 0.84 <= trained.metrics["roc_auc"] <= 0.87
    assert trained.excluded == {}
    assert "customerID" not in trained.profile.feature_names


def test_probabilities_are_calibrated_on_the_test_set(telco):
    _, trained = telco
    curve = trained.curves["reliability"]
    gaps = np.abs(np.array(curve["predicted"]) - np.array(curve["observed"]))
    assert gaps.max() < 0.1
    assert trained.metrics["brier"] < 0.145


def test_changing_customer_ids_changes_nothing(telco):
    _, trained = telco
    rows = trained.evaluation.drop(columns=[LABEL_COLUMN]).head(300)
    renamed = rows.assign(customerID=[f"X-{i}" for i in range(len(rows))])
    before = score_frame(trained.pipeline, trained.profile, rows, rows["customerID"])
    after = score_frame(trained.pipeline, trained.profile, renamed, renamed["customerID"])
    assert np.array_equal(before["churn_probability"], after["churn_probability"])
    assert after["customer_id"].tolist() == renamed["customerID"].tolist()


def test_month_to_month_raises_risk_over_two_year_all_else_equal(telco):
    _, trained = telco
    rows = trained.evaluation.drop(columns=[LABEL_COLUMN])
    features = trained.profile.features
    monthly = trained.pipeline.predict_proba(
        prepare_features(rows.assign(Contract="Month-to-month"), features)
    )[:, 1]
    two_year = trained.pipeline.predict_proba(
        prepare_features(rows.assign(Contract="Two year"), features)
    )[:, 1]
    assert np.mean(monthly > two_year) > 0.95
    assert np.mean(monthly - two_year) > 0.1
