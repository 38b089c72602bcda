"""Per-upload figures and alerts from frames: no stores."""

import json
from dataclasses import asdict, replace

import numpy as np
import pandas as pd

from models.monitoring import ScoreCounts
from models.profile import FeatureProfile, ModelProfile
from retainwise.adapters.monitoring import ColumnDrift
from retainwise.modelops.monitoring import (
    Event,
    ModelFigures,
    ScoredUpload,
    UploadFigures,
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


REPORT = {  # what monitoring reads of a report.json
    "prediction_id": "p1",
    "model_name": "churn",
    "model_version": 3,
    "rows_scored": 100,
    "unknown_categories": {"plan": 25},
    "columns": {"plan": {"psi": 0.31}},
}


def test_upload_figures_hold_the_estimate_score_psi_and_drift():
    uniform = np.linspace(0.005, 0.995, 100)
    upload = ScoredUpload.from_report(REPORT)
    metrics, drift = upload_figures(upload, uniform, "acme", PROFILE)
    row = metrics.row()
    assert row["model_version"] == "3" and row["score_psi"] < 1e-9
    assert row["est_churn_count"] == uniform.sum()
    assert row["est_roc_auc_low"] < row["est_roc_auc"] < row["est_roc_auc_high"]
    assert drift == [ColumnDrift("plan", psi=0.31, unseen_share=0.25)]
    skewed, _ = upload_figures(upload, np.full(100, 0.95), "acme", PROFILE)
    assert skewed.score_psi > 0.25


def test_upload_figures_of_scores_counted_by_chunk_are_those_of_the_array():
    p = np.round(np.random.default_rng(2).beta(1.2, 3, 30_000), 6)
    counted = ScoreCounts()
    for chunk in np.array_split(p, 7):
        counted.add(chunk)
    upload = ScoredUpload.from_report(REPORT)
    assert upload_figures(upload, counted, "acme", PROFILE) == upload_figures(
        upload, p, "acme", PROFILE
    )


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
    assert good.alerts == [] and good.uploads[0].labelled_rows == 300
    assert good.uploads[0].column_psi == {"plan": 0.1}  # the page's drift over time
    inverted = monitor_model(
        metrics, drift, labelled("p1", (p < 0.3).astype(int), p), lambda version: PROFILE
    )
    assert {a.event for a in inverted.alerts} == {Event.DEGRADED}
    few = monitor_model(
        metrics, drift, labelled("p1", (p < 0.3).astype(int), p)[:50], lambda version: PROFILE
    )
    assert few.alerts == []
    chart = auc_chart("churn", "1", version_table(inverted)["1"])
    assert "real" in chart and "est" in chart


def upload(prediction_id: str, score_psi: float | None, estimated_roc_auc: float | None = 0.8):
    """An unlabelled upload's figures (only what the alerts read is realistic)."""
    return UploadFigures(
        prediction_id=prediction_id,
        account="acme",
        model_version="1",
        completed_at=None,
        rows_scored=100,
        score_psi=score_psi,
        estimated_roc_auc=estimated_roc_auc,
        estimated_roc_auc_band=(None, None),
        estimated_churn_count=None,
        labelled_rows=0,
        realised_roc_auc=None,
        realised_churn_count=None,
        realised_calibration_error=None,
        column_psi={},
    )


def test_drift_above_the_limit_on_the_latest_upload_alerts():
    figures = ModelFigures(
        uploads=[upload("p1", 0.9), upload("p2", 0.4)],
        versions=[],
        accounts=[],
        drift={
            "plan": ColumnDrift("plan", psi=0.3, unseen_share=0.0),
            "age": ColumnDrift("age", psi=0.1, unseen_share=0.0),
        },
        drift_alert_psi=0.25,
        alerts=[],
    )
    (alert,) = alerts(figures)
    assert alert.event == Event.DRIFTED and alert.prediction_id == "p2"
    assert alert.columns == {"plan": 0.3, "churn_probability": 0.4}


def test_an_estimate_under_the_floor_on_the_latest_upload_alerts():
    figures = ModelFigures([upload("p1", None, 0.65)], [], [], {}, 0.25, [])
    (alert,) = alerts(figures)
    assert alert.to_json() == {
        "event": "retainwise.model.degraded",
        "model_version": "1",
        "reasons": ["estimated ROC AUC 0.650 < 0.7 on upload p1"],
    }


def pinned_figures():
    """model_figures' document on the pinned frames (what `model monitor` prints as JSON)."""
    metrics, drift, outcomes = monitoring_frames()
    figures = monitor_model(metrics, drift, outcomes, PROFILES.__getitem__, 0.25)
    return replace(figures, model="churn")


def test_the_printed_figures_table_artifacts_and_alerts_are_byte_for_byte_pinned():
    figures = pinned_figures()
    assert matches_pin("monitor.json", json.dumps(figures.to_json(), default=str))
    assert matches_pin("monitor.txt", terminal_table(figures))
    tables = version_table(figures)
    shown = {version: [row.to_json() for row in rows] for version, rows in tables.items()}
    assert matches_pin("monitor-tables.json", json.dumps(shown))
    charts = "\n".join(auc_chart("churn", version, rows) for version, rows in tables.items())
    assert matches_pin("monitor-charts.md", charts)
    gated = [alert.to_json() for alert in gate_retraining(figures)]
    assert matches_pin("monitor-gated.json", json.dumps(gated, default=str))


def test_the_stored_upload_rows_are_pinned():
    report = {**REPORT, "columns": {"plan": {"psi": 0.31}, "age": {"psi": None}}}
    p = np.random.default_rng(4).beta(1.2, 3, 100)
    metrics, drift = upload_figures(ScoredUpload.from_report(report), p, "acme", PROFILES["1"])
    assert matches_pin("upload-rows.json", json.dumps([metrics.row(), [asdict(d) for d in drift]]))
