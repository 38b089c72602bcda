"""MLflow round trip and the promotion gate on a temporary SQLite MLflow store and database."""

import dataclasses
import logging
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import pytest
import sqlalchemy as sa

import migrations
from models.calibration import CalibratedModel
from models.features import prepare_features
from models.training import LABEL_COLUMN, build_boosted, encode_target, train
from retainwise.adapters import mlflow_registry as registry
from retainwise.adapters import promotions
from retainwise.adapters.db import make_engine
from retainwise.config import errors
from retainwise.config.settings import Settings
from retainwise.local.sample import synthetic_customers
from retainwise.modelops import promotion

NAME = "churn-test"
# a promotion record's first keys once both versions are evaluated (the JSON shows them in order)
EVALUATED = [
    "model",
    "challenger_version",
    "champion_version",
    "evaluated_on",
    "challenger_metrics",
    "champion_metrics",
]


def labeled_table():
    table = synthetic_customers(1200, seed=21).astype(str)
    return table.assign(**{"Churn Label": table["Churn"].map({"Yes": "churned", "No": "stayed"})})


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    home = tmp_path_factory.mktemp("registry")
    settings = Settings(
        home=home,
        mlflow_tracking_uri=f"sqlite:///{home / 'mlflow.db'}",
        database_url=f"sqlite:///{home / 'retainwise.db'}",
    )
    migrations.upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    table = labeled_table()
    honest = train(table, "Churn", "customer_id")
    leaky = train(table, "Churn", "customer_id", allow_columns=["Churn Label"])
    yield {"settings": settings, "engine": engine, "honest": honest, "leaky": leaky}
    engine.dispose()


def test_a_registered_version_loads_back_with_the_same_scores_and_profile(store):
    settings, trained = store["settings"], store["honest"]
    version = registry.register(trained, NAME, settings, {"data": "synthetic"}, "synthetic.csv")
    loaded = registry.load_version(NAME, version, settings.tracking_uri)
    rows = trained.evaluation.drop(columns=[LABEL_COLUMN])
    X = prepare_features(rows, trained.profile.features)
    assert np.allclose(loaded.pipeline.predict_proba(X), trained.pipeline.predict_proba(X))
    assert loaded.profile == trained.profile
    assert registry.alias_version(NAME, registry.CHALLENGER, settings) == version

    client = registry.client(settings)
    run_id = client.get_model_version(NAME, version).run_id
    paths = {
        a.path
        for folder in ("", "plots", "evaluation")
        for a in client.list_artifacts(run_id, folder or None)
    }
    assert {
        "model_card.md",
        "profile.json",
        "plots/roc.png",
        "plots/calibration.png",
        "evaluation/holdout.csv",
    } <= paths
    run = client.get_run(run_id)
    assert {
        "roc_auc",
        "pr_auc",
        "brier",
        "lift_top_decile",
        "recall_at_threshold",
        "precision_at_threshold",
    } <= set(run.data.metrics)
    assert run.data.params["model_kind"] == trained.kind
    assert {  # the params' text as MLflow stores it
        key: run.data.params[key]
        for key in ("seed", "test_share", "linear_C", "boosted_deterministic", "boosted_reg_lambda")
    } == {
        "seed": "42",
        "test_share": "0.2",
        "linear_C": "1.0",
        "boosted_deterministic": "True",
        "boosted_reg_lambda": "1.0",
    }
    assert "boosted_verbose" not in run.data.params
    card = client.download_artifacts(run_id, "model_card.md", str(settings.home_dir))
    assert "Churn Label" in open(card).read()

    rows_back, labels = registry.evaluation_set(NAME, version, settings)
    assert len(rows_back) == len(labels) == len(trained.evaluation)
    assert labels.tolist() == trained.evaluation[LABEL_COLUMN].tolist()


def test_the_store_is_reached_through_the_settings_never_mlflows_process_uri(store, tmp_path):
    """Another store set as MLflow's process-wide URI is neither used nor changed."""
    import mlflow

    settings, elsewhere = store["settings"], f"sqlite:///{tmp_path / 'elsewhere.db'}"
    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(elsewhere)
    try:
        version = registry.register(store["honest"], NAME + "-uri", settings)
        loaded = registry.load_version(NAME + "-uri", version, settings.tracking_uri)
        assert mlflow.get_tracking_uri() == elsewhere
    finally:
        mlflow.set_tracking_uri(before)
    assert loaded.version == version and not (tmp_path / "elsewhere.db").exists()


def boosted(trained):
    """The same training rows fitted with the boosted candidate, whatever CV picked."""
    rows = labeled_table()
    X = prepare_features(rows, trained.profile.features)
    base = build_boosted(trained.profile).fit(X, encode_target(rows["Churn"]).to_numpy())
    return dataclasses.replace(
        trained, pipeline=CalibratedModel(base, 1.3, -0.2), kind="gradient_boosting"
    )


def test_a_boosted_version_scores_with_its_compiled_trees(store):
    settings, trained = store["settings"], boosted(store["honest"])
    version = registry.register(trained, NAME, settings)
    loaded = registry.load_version(NAME, version, settings.tracking_uri)
    assert loaded.compiled is not None and loaded.scorer is loaded.compiled
    X = prepare_features(labeled_table(), trained.profile.features)
    expected = trained.pipeline.predict_proba(X)[:, 1]
    assert np.max(np.abs(loaded.scorer.predict_proba(X)[:, 1] - expected)) <= 1e-6


def test_a_version_registered_before_compiling_loads_with_scikit_learn_and_a_warning(store, caplog):
    settings, trained = store["settings"], boosted(store["honest"])
    version = registry.register(trained, NAME, settings)
    registry.client(settings).delete_model_version_tag(NAME, version, registry.COMPILED_TAG)
    with caplog.at_level(logging.WARNING, logger=registry.__name__):
        loaded = registry.load_version.__wrapped__(NAME, version, settings.tracking_uri)
    assert loaded.compiled is None and loaded.scorer is loaded.pipeline
    assert "has no compiled trees; scoring with scikit-learn" in caplog.text
    X = prepare_features(labeled_table().head(300), trained.profile.features)
    assert np.allclose(loaded.scorer.predict_proba(X), trained.pipeline.predict_proba(X))


def test_gate_accepts_refuses_forces_and_rollback_walks_back(store):
    settings, engine = store["settings"], store["engine"]
    name = NAME + "-gate"
    leaky = registry.register(store["leaky"], name, settings)
    first = promotion.promote_version(name, settings, engine, actor="ana")
    assert first.status == promotion.Change.PROMOTED and first.report.gate == "first champion"

    honest = registry.register(store["honest"], name, settings)
    with pytest.raises(errors.PromotionRefused) as refused:
        promotion.promote_version(name, settings, engine, actor="ana")
    details = refused.value.details
    assert list(details) == [*EVALUATED, "outcomes", "gate"]
    assert details["champion_metrics"]["roc_auc"] - details["challenger_metrics"]["roc_auc"] > 0.005
    assert "ROC AUC" in str(refused.value)
    assert registry.champion_version(name, settings) == leaky

    with pytest.raises(ValueError, match="--reason"):
        promotion.promote_version(name, settings, engine, force=True)
    forced = promotion.promote_version(
        name, settings, engine, force=True, reason="champion leaks Churn Label", actor="ana"
    )
    assert forced.forced and registry.champion_version(name, settings) == honest
    assert "ROC AUC" in forced.report.gate  # the gate's finding, overridden

    again = registry.register(store["honest"], name, settings)
    passed = promotion.promote_version(name, settings, engine, actor="bo")
    assert passed.report.gate == "passed" and not passed.report.outcomes.used  # no outcomes yet
    assert list(passed.to_json()) == [
        *EVALUATED,
        "outcomes",
        "gate",
        "status",
        "champion",
        "forced",
    ]
    assert registry.champion_version(name, settings) == again

    rolled = promotion.rollback(name, settings, engine, reason="bad week", actor="bo")
    assert rolled.to_json() == {
        "model": name,
        "status": "rolled back",
        "champion": honest,
        "from_version": again,
    }
    assert registry.champion_version(name, settings) == honest
    promotion.rollback(name, settings, engine, actor="bo")
    assert registry.champion_version(name, settings) == leaky
    with pytest.raises(errors.PromotionRefused, match="no earlier champion"):
        promotion.rollback(name, settings, engine)

    history = promotions.history(engine, name)
    assert [(h["action"], h["from_version"], h["to_version"], h["forced"]) for h in history] == [
        ("promote", None, leaky, False),
        ("promote", leaky, honest, True),
        ("promote", honest, again, False),
        ("rollback", again, honest, False),
        ("rollback", honest, leaky, False),
    ]
    assert history[1]["reason"] == "champion leaks Churn Label"
    assert history[1]["metrics"]["champion_metrics"]["roc_auc"] > 0.98
    assert promotions.champion_at(engine, name, history[2]["created_at"]) == again

    listed = {row.version: row for row in registry.list_versions(name, settings)}
    assert "champion" in listed[leaky].aliases
    assert "challenger" in listed[again].aliases
    assert listed[honest].figures["roc_auc"] is not None


def test_a_failed_record_puts_the_alias_back(store, tmp_path):
    settings = store["settings"]
    name = NAME + "-atomic"
    registry.register(store["honest"], name, settings)
    unmigrated = make_engine(f"sqlite:///{tmp_path / 'old.db'}")
    migrations.upgrade(f"sqlite:///{tmp_path / 'old.db'}")
    with unmigrated.begin() as conn:
        conn.execute(sa.text("DROP TABLE model_promotions"))
        conn.execute(sa.text("CREATE TABLE model_promotions (id INTEGER PRIMARY KEY)"))
    with pytest.raises(sa.exc.DBAPIError):
        promotion.promote_version(name, settings, unmigrated, actor="ana")
    unmigrated.dispose()
    assert registry.alias_version(name, registry.CHAMPION, settings) is None


def test_versions_without_a_stored_evaluation_set_are_refused(store):
    """A version logged before the gate existed cannot be compared; the message says so."""
    settings = store["settings"]
    name = NAME + "-old"
    version = registry.register(store["honest"], name, settings)
    client = registry.client(settings)
    artifact_root = urlparse(
        client.get_run(client.get_model_version(name, version).run_id).info.artifact_uri
    ).path
    (Path(artifact_root) / registry.EVALUATION_ARTIFACT).unlink()  # as a pre-gate version
    with pytest.raises(errors.PromotionRefused, match="no stored evaluation set"):
        promotion.promote_version(name, settings, store["engine"])
    assert registry.alias_version(name, registry.CHAMPION, settings) is None
