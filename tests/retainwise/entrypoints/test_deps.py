"""The routes' dependencies can be overridden (`app.dependency_overrides`): a test swaps the
signed-in account or the API key's account without issuing a key, on a real migrated database."""

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from retainwise.adapters import db
from retainwise.adapters.accounts import Account
from retainwise.adapters.resources import Resources
from retainwise.config.settings import Settings
from retainwise.entrypoints import web
from retainwise.entrypoints.app import create_app
from retainwise.entrypoints.deps import current_account

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def account(name: str) -> Account:
    return Account(name, NOW, None, ("churn",), None)


@pytest.fixture
def app(migrated_engine, database_url, monkeypatch):
    monkeypatch.setenv("RETAINWISE_DATABASE_URL", database_url)
    resources = Resources(Settings())
    app = create_app(resources)
    yield app
    resources.engine.dispose()


def upload_of(engine, name: str) -> str:
    return db.create_prediction(engine, account=name, model_name="churn", input_key=f"k/{name}")


def test_the_api_key_account_is_a_dependency_a_test_overrides(app, migrated_engine):
    ours, theirs = upload_of(migrated_engine, "acme"), upload_of(migrated_engine, "bravo")
    http = TestClient(app)
    assert http.get("/uploads").status_code == 401  # no key, no override
    app.dependency_overrides[current_account] = lambda: account("acme")
    assert [u["id"] for u in http.get("/uploads").json()["uploads"]] == [ours]
    assert http.get(f"/uploads/{ours}").json()["status"] == "PENDING"
    assert http.get(f"/uploads/{theirs}").status_code == 404


def test_the_web_session_account_is_a_dependency_a_test_overrides(app, migrated_engine):
    ours = upload_of(migrated_engine, "bravo")
    page = TestClient(app, follow_redirects=False)
    assert page.get("/app/uploads").headers["location"] == "/app/signin"
    app.dependency_overrides[web.signed_in] = lambda: account("bravo")
    listed = page.get("/app/uploads.json").json()
    assert [(u["id"], u["status"]) for u in listed] == [(ours, "PENDING")]
