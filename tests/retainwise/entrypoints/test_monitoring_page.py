"""The monitoring page's figures on real stores (SQLite and PostgreSQL, a real MLflow store): two
accounts on the same model, outcomes for one; each sees only its own uploads, labels and drift."""

import json
import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.metrics import roc_auc_score

from retainwise.adapters import accounts
from retainwise.adapters.mlflow_registry import load_version
from retainwise.adapters.resources import Resources
from retainwise.config.settings import Settings
from retainwise.entrypoints import monitoring_page
from retainwise.entrypoints.app import create_app
from retainwise.modelops.monitoring import model_figures
from tests.helpers import copied_versions, monitored_upload
from tests.retainwise.entrypoints.test_web import sign_in

START = datetime(2026, 10, 1, 9, 0, tzinfo=UTC)


def scores(seed: int, rows: int = 400):
    """Probabilities and labels drawn from them: a calibrated model's outcomes."""
    rng = np.random.default_rng(seed)
    p = rng.beta(1.2, 2.5, rows)
    return p, (rng.random(rows) < p).astype(int)


def seed_two_accounts(engine, settings, model: str, versions: list[str]) -> dict:
    """acme: three uploads (two versions), outcomes for the first two; bravo: two uploads, no
    outcomes, one column drifted far (it must never show on acme's page)."""
    profile = load_version(model, versions[0], settings.tracking_uri).profile
    data = {"acme": [], "bravo": [], "labels": {}}
    for day, (version, seed, labelled) in enumerate(
        [(versions[0], 1, True), (versions[0], 2, True), (versions[1], 3, False)]
    ):
        p, y = scores(seed)
        upload = monitored_upload(
            engine,
            "acme",
            model,
            version,
            p,
            START + timedelta(days=7 * day),
            profile=profile,
            column_psi={"tenure": 0.02 * (day + 1), "Contract": 0.1 * day},
            churned=y if labelled else None,
        )
        data["acme"].append(upload)
        data["labels"][upload] = (p, y) if labelled else None
    for day in range(2):
        p, _ = scores(10 + day)
        data["bravo"].append(
            monitored_upload(
                engine,
                "bravo",
                model,
                versions[1],
                p,
                START + timedelta(days=3 + 7 * day),
                profile=profile,
                column_psi={"tenure": 0.01, "bravo_only_column": 0.9},
            )
        )
    data["cutoffs"] = profile.cutoffs
    return data


@pytest.fixture
def monitored(database_url, mlflow_store, tmp_path):
    import migrations

    migrations.upgrade(database_url)
    settings = Settings(
        home=tmp_path, database_url=database_url, mlflow_tracking_uri=mlflow_store["uri"]
    )
    model = f"monitored-{uuid.uuid4().hex[:8]}"
    versions = copied_versions(settings, f"models:/churn/{mlflow_store['version']}", model, 2)
    env = Resources(settings)
    yield env, model, seed_two_accounts(env.engine, settings, model, versions), versions
    env.engine.dispose()


def test_each_account_sees_its_own_uploads_labels_and_drift_only(monitored):
    env, model, data, versions = monitored
    models, acme = monitoring_page.account_figures(env, "acme")
    assert models == [model] and acme.account == "acme"
    assert [u.prediction_id for u in acme.uploads] == data["acme"]  # oldest first
    for upload in acme.uploads:
        labels = data["labels"][upload.prediction_id]
        if labels is None:
            assert upload.realised_roc_auc is None and upload.labelled_rows == 0
        else:
            assert upload.realised_roc_auc == pytest.approx(
                roc_auc_score(labels[1], labels[0]), abs=1e-9
            )
        assert 0.5 < upload.estimated_roc_auc < 1.0
    assert acme.uploads[2].column_psi == {"tenure": 0.06, "Contract": 0.2}

    (version,) = acme.versions  # pooled outcomes: only the first version has any
    p = np.concatenate([data["labels"][u][0] for u in data["acme"][:2]])
    y = np.concatenate([data["labels"][u][1] for u in data["acme"][:2]])
    high = p >= data["cutoffs"].high
    assert (version.model_version, version.realised.rows) == (versions[0], 800)
    assert version.realised.tiers["HIGH"].rows == int(high.sum())
    assert version.realised.tiers["HIGH"].churn_rate == pytest.approx(y[high].mean())

    page = monitoring_page.page_context(acme)
    series = {s.label: len(s.points) for s in page.auc.series}
    assert series == {
        f"v{versions[0]} estimated": 2,
        f"v{versions[0]} realised": 2,
        f"v{versions[1]} estimated": 1,
    }  # no outcomes: the estimate alone
    assert [row.name for row in page.drift.rows] == [
        "scores (churn probability)",
        "Contract",
        "tenure",
    ]
    assert [t.version for t in page.tiers] == [versions[0]]

    models, bravo = monitoring_page.account_figures(env, "bravo", model)
    assert models == [model]
    assert [u.prediction_id for u in bravo.uploads] == data["bravo"]
    assert bravo.versions == [] and bravo.accounts == []  # acme's outcomes stay acme's
    assert all(u.labelled_rows == 0 for u in bravo.uploads)
    bravo_page = monitoring_page.page_context(bravo)
    assert bravo_page.tiers == [] and bravo_page.labelled_rows == 0
    assert bravo_page.drift.drifted_latest == ["bravo_only_column"]
    assert "bravo_only_column" not in str(monitoring_page.page_context(acme).drift)

    # the same figures as the CLI's `model monitor NAME --account A`; unscoped, they would mix
    assert model_figures(env.engine, env.settings, model, "bravo") == bravo
    everyone = model_figures(env.engine, env.settings, model, None)
    assert len(everyone.uploads) == 5 and everyone.versions != []


def test_an_unknown_model_and_a_missing_account_are_refused(monitored):
    env, model, _, _ = monitored
    with pytest.raises(monitoring_page.UnknownModel):
        monitoring_page.account_figures(env, "bravo", "someone-elses-model")
    with pytest.raises(ValueError):
        monitoring_page.account_figures(env, "", model)
    assert monitoring_page.account_figures(env, "nobody") == ([], None)


def test_the_page_and_its_json_twin_over_http_are_scoped_by_the_session(resources, mlflow_store):
    settings = resources.settings
    model = f"monitored-{uuid.uuid4().hex[:8]}"
    versions = copied_versions(settings, f"models:/churn/{mlflow_store['version']}", model, 2)
    data = seed_two_accounts(resources.engine, settings, model, versions)
    for name in ("acme", "bravo", "carol"):
        accounts.create_account(resources.engine, name)
    web = {
        name: TestClient(create_app(resources), follow_redirects=False)
        for name in ("acme", "bravo", "carol")
    }
    for name, client in web.items():
        sign_in(client, accounts.create_key(resources.engine, name)["api_key"])

    acme = web["acme"].get("/app/monitoring.json").json()
    assert [u["prediction_id"] for u in acme["uploads"]] == data["acme"]
    assert acme["versions"][0]["tiers"]["HIGH"]["rows"] > 0
    page = web["acme"].get("/app/monitoring")
    assert page.status_code == 200 and 'href="/app/monitoring"' in page.text
    assert 'data-chart="auc"' in page.text and 'data-chart="tiers-v' in page.text
    assert "No outcomes yet" not in page.text and "bravo_only_column" not in page.text

    bravo = web["bravo"].get(f"/app/monitoring.json?model={model}").json()
    assert [u["prediction_id"] for u in bravo["uploads"]] == data["bravo"]
    assert bravo["versions"] == []
    page = web["bravo"].get("/app/monitoring").text
    assert "No outcomes yet" in page and not any(upload in page for upload in data["acme"])
    assert web["bravo"].get("/app/monitoring?model=nope").status_code == 404

    assert web["carol"].get("/app/monitoring.json").json() == {
        "models": [],
        "model": None,
        "account": "carol",
    }
    assert "No monitoring figures yet" in web["carol"].get("/app/monitoring").text
    assert web["carol"].get(f"/app/monitoring?model={model}").status_code == 404
    assert (
        TestClient(create_app(resources), follow_redirects=False)
        .get("/app/monitoring.json")
        .headers["location"]
        == "/app/signin"
    )


def test_a_version_missing_from_the_registry_is_a_503_page_not_a_stack_trace(
    resources, mlflow_store
):
    from retainwise.adapters import mlflow_registry as registry

    settings, model = resources.settings, f"gone-{uuid.uuid4().hex[:8]}"
    (version,) = copied_versions(settings, f"models:/churn/{mlflow_store['version']}", model, 1)
    profile = load_version("churn", mlflow_store["version"], settings.tracking_uri).profile
    p, y = scores(5)
    monitored_upload(
        resources.engine,
        "acme",
        model,
        version,
        p,
        START,
        profile=profile,
        column_psi={"tenure": 0.1},
        churned=y,
    )
    registry.client(settings).delete_model_version(model, version)
    accounts.create_account(resources.engine, "acme")
    web = TestClient(create_app(resources), follow_redirects=False)
    sign_in(web, accounts.create_key(resources.engine, "acme")["api_key"])
    page = web.get("/app/monitoring")
    assert page.status_code == 503 and "model registry could not be read" in page.text
    assert web.get("/app/monitoring.json").status_code == 503


def test_the_page_context_and_the_json_twin_are_byte_for_byte_pinned():
    from tests.retainwise.modelops.pinned import as_json, matches_pin
    from tests.retainwise.modelops.test_monitoring import pinned_figures

    figures = pinned_figures()
    assert matches_pin("page.json", as_json(monitoring_page.page_context(figures)))
    twin = monitoring_page.plain({"models": ["churn"], **figures.to_json()})
    assert matches_pin("page-twin.json", json.dumps(twin))
