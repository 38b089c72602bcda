"""GET /customers/{id}: the account's history for a customer, newest first, and its explanation;
another account's customer answers exactly like a missing one."""

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from models.explain import Explanation
from retainwise.adapters import customers
from retainwise.adapters.accounts import Account
from retainwise.adapters.resources import Resources
from retainwise.config.settings import Settings
from retainwise.entrypoints.app import create_app
from retainwise.entrypoints.deps import current_account

NOW = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def http(migrated_engine, database_url, monkeypatch):
    monkeypatch.setenv("RETAINWISE_DATABASE_URL", database_url)
    resources = Resources(Settings())
    app = create_app(resources)
    app.dependency_overrides[current_account] = lambda: Account("acme", NOW, None, ("churn",), None)
    yield TestClient(app)
    resources.engine.dispose()


def stored(engine, prediction_id: str, account: str, days: int, probability: float):
    upload = customers.UploadScored(
        account, prediction_id, "churn", "4", NOW + timedelta(days=days)
    )
    rows = pd.DataFrame(
        {"customer_id": ["7590-VHVEG"], "churn_probability": [probability], "churn_risk": ["HIGH"]}
    )
    customers.record_scores(engine, upload, rows)
    return upload


def test_history_newest_first_with_an_explanation_that_adds_up(http, migrated_engine):
    stored(migrated_engine, "first", "acme", 0, 0.41)
    latest = stored(migrated_engine, "second", "acme", 30, 0.72)
    X = pd.DataFrame({"Contract": ["Month-to-month"], "tenure": [1.0]})
    explanation = Explanation(["Contract", "tenure"], np.array([-1.1]), np.array([[0.9, 0.5]]))
    customers.record_explanations(
        migrated_engine, latest, pd.Series(["7590-VHVEG"]), explanation, X
    )
    answer = http.get("/customers/7590-VHVEG")
    assert answer.status_code == 200
    body = answer.json()
    assert [h["prediction_id"] for h in body["history"]] == ["second", "first"]
    assert body["history"][0]["churn_probability"] == 0.72
    assert datetime.fromisoformat(body["history"][0]["completed_at"]) == NOW + timedelta(days=30)
    found = body["explanation"]
    assert found["contributions"][0] == {
        "feature": "Contract",
        "value": "Month-to-month",
        "contribution": 0.9,
    }
    total = found["base_value"] + sum(c["contribution"] for c in found["contributions"])
    assert abs(total - found["margin"]) < 1e-6


def test_another_accounts_customer_answers_like_a_missing_one(http, migrated_engine):
    stored(migrated_engine, "theirs", "bravo", 0, 0.5)
    theirs, missing = http.get("/customers/7590-VHVEG"), http.get("/customers/nobody")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.json()["detail"].replace("7590-VHVEG", "X") == missing.json()["detail"].replace(
        "nobody", "X"
    )
