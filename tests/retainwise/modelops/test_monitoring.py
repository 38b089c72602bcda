"""Per-upload figures and alerts from frames: no stores."""

import json

import numpy as np
import pandas as pd

from models.profile import FeatureProfile, ModelProfile
from retainwise.modelops.monitoring import (
    alerts,
    auc_chart,
    monitor_model,
    terminal_table,
    upload_figures,
    version_table,
)
from retainwise.modelops.outcomes import gate_retraining
from tests.retainwise.modelops.pinned import PROFILES, matches_pin, monitoring_frames

PROFILE = ModelProfile(
    id_column="id",
    target="Churn",
    features=[FeatureProfile("plan", "categorical", categories=["a", "b"])],
    threshold=0.4,
    score_shares=[0.1] * 10,
)


def test_upload_figures_hold_the_estimate_score_psi_and_drift():
    report = {
        "prediction_id": "p1",
        "model_name": "churn",
        "model_version": 3,
        "rows_scored": 100,
        "unknown_categories": {"plan": 25},
        "columns": {"plan": {"psi": 0.31}},
    }
    uniform = np.linspace(0.005, 0.995, 100)
    metrics, drift = upload_figures(report, uniform, "acme", PROFILE)
    assert metrics["model_version"] == "3" and metrics["score_psi"] < 1e-9
    assert metrics["est_churn_count"] == uniform.sum()
    assert metrics["est_roc_auc_low"] < metrics["est_roc_auc"] < metrics["est_roc_auc_high"]
    assert drift == [{"column_name": "plan", "psi": 0.31, "unseen_share": 0.25}]
    skewed, _ = upload_figures(report, np.full(100, 0.95), "acme", PROFILE)
    assert skewed["score_psi"] > 0.25


def labelled(prediction_id, y, p):
    return pd.DataFrame(
        {
            "prediction_id": prediction_id,
            "account": "acme",
            "model_version": "1",
            "churned": y,
            "churn_probability": p,
        }
    )


def test_realised_degradation_on_the_latest_upload_alerts_but_few_labels_do_not():
    rng = np.random.default_rng(0)
    p = rng.random(300)
    metrics = pd.DataFrame(
        [
            {
                "prediction_id": "p1",
                "account": "acme",
                "model_version": "1",
                "completed_at": None,
                "rows_scored": 300,
                "score_psi": 0.01,
                "est_roc_auc": 0.8,
                "est_roc_auc_low": 0.75,
                "est_roc_auc_high": 0.85,
                "est_churn_count": p.sum(),
            }
        ]
    )
    drift = pd.DataFrame(
        {"prediction_id": ["p1"], "column_name": ["plan"], "psi": [0.1], "unseen_share": [0.0]}
    )
    good = monitor_model(
        metrics,
        drift,
        labelled("p1", (rng.random(300) < p).astype(int), p),
        lambda version: PROFILE,
    )
    assert good["alerts"] == [] and good["uploads"][0]["labelled_rows"] == 300
    assert good["uploads"][0]["column_psi"] == {"plan": 0.1}  # the page's drift over time
    inverted = monitor_model(
        metrics, drift, labelled("p1", (p < 0.3).astype(int), p), lambda version: PROFILE
    )
    assert {a["event"] for a in inverted["alerts"]} == {"retainwise.model.degraded"}
    few = monitor_model(
        metrics, drift, labelled("p1", (p < 0.3).astype(int), p)[:50], lambda version: PROFILE
    )
    assert few["alerts"] == []
    chart = auc_chart("churn", "1", version_table(inverted)["1"])
    assert "real" in chart and "est" in chart


def test_drift_above_the_limit_on_the_latest_upload_alerts():
    figures = {
        "versions": [],
        "uploads": [
            {
                "prediction_id": "p2",
                "model_version": "1",
                "labelled_rows": 0,
                "estimated_roc_auc": 0.8,
                "score_psi": 0.4,
            }
        ],
        "drift": {
            "plan": {"psi": 0.3, "unseen_share": 0.0},
            "age": {"psi": 0.1, "unseen_share": 0.0},
        },
        "drift_alert_psi": 0.25,
    }
    (alert,) = alerts(figures)
    assert alert["event"] == "retainwise.data.drifted"
    assert alert["columns"] == {"plan": 0.3, "churn_probability": 0.4}


def pinned_figures():
    """model_figures' document on the pinned frames (what `model monitor` prints as JSON)."""
    metrics, drift, outcomes = monitoring_frames()
    figures = monitor_model(metrics, drift, outcomes, PROFILES.__getitem__, 0.25)
    return {"model": "churn", "account": None, **figures}


def test_the_printed_figures_table_artifacts_and_alerts_are_byte_for_byte_pinned():
    figures = pinned_figures()
    assert matches_pin("monitor.json", json.dumps(figures, default=str))
    assert matches_pin("monitor.txt", terminal_table(figures))
    tables = version_table(figures)
    assert matches_pin("monitor-tables.json", json.dumps(tables))
    charts = "\n".join(auc_chart("churn", version, rows) for version, rows in tables.items())
    assert matches_pin("monitor-charts.md", charts)
    assert matches_pin("monitor-gated.json", json.dumps(gate_retraining(figures), default=str))


def test_the_stored_upload_rows_are_pinned():
    report = {
        "prediction_id": "p1",
        "model_name": "churn",
        "model_version": 3,
        "rows_scored": 100,
        "unknown_categories": {"plan": 25},
        "columns": {"plan": {"psi": 0.31}, "age": {"psi": None}},
    }
    p = np.random.default_rng(4).beta(1.2, 3, 100)
    metrics, drift = upload_figures(report, p, "acme", PROFILES["1"])
    assert matches_pin("upload-rows.json", json.dumps([metrics, drift]))
