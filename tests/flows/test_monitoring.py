"""Monitoring end to end on Telco with real stores: train and promote, score the holdout, upload the
true outcomes, read realised vs estimated figures; then a shifted upload raises a drift alert."""

import io
import json

import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from flows.deployments import retrain_when_degraded
from flows.monitor import monitor
from flows.score_upload import score_upload
from flows.train_model import train_model
from models.training import LABEL_COLUMN
from retainwise.adapters import mlflow_registry as registry
from retainwise.adapters.monitoring import drift_rows, metrics_rows
from retainwise.config.settings import Settings
from retainwise.entrypoints import cli, service
from tests.helpers import submit


@pytest.fixture
def telco_model(stack_env, monkeypatch, tmp_path, telco_trained):
    """A Telco champion in a store of this test's own; returns its held-out rows."""
    uri = f"sqlite:///{tmp_path / 'telco-mlflow.db'}"
    monkeypatch.setenv("RETAINWISE_MLFLOW_TRACKING_URI", uri)
    _, trained = telco_trained
    settings = Settings()
    registry.promote("churn", registry.register(trained, "churn", settings), settings)
    return trained


def csv_bytes(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(index=False).encode()


def figures_from_the_results_file(resources, prediction_id: str, trained) -> dict:
    """The upload_metrics row computed from the results file read back from S3 (how the figures
    were computed before the scoring's own probabilities were kept for them)."""
    from retainwise.adapters import aws, db
    from retainwise.modelops.monitoring import ScoredUpload, upload_figures

    row = db.get_prediction(resources.engine, prediction_id)
    bucket = resources.settings.bucket
    report = json.loads(aws.get_bytes(resources.s3, bucket, row.report_key))
    probabilities = aws.csv_column(resources.s3, bucket, row.result_key, "churn_probability")
    metrics, _ = upload_figures(
        ScoredUpload.from_report(report), probabilities, row.account, trained.profile
    )
    return {k: v for k, v in metrics.row().items() if k != "prediction_id"}


def monitor_json(capsys, *args) -> dict:
    assert cli.main(["model", "monitor", "churn", *args]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0].startswith("upload") and "est. AUC" in out[0]  # the table comes first
    return json.loads(out[-1])


@pytest.mark.usefixtures("prefect_api")
def test_realised_auc_equals_the_files_and_a_shift_is_flagged(
    telco_model, resources, tmp_path, capsys
):
    holdout = telco_model.evaluation
    features = holdout.drop(columns=[LABEL_COLUMN, "Churn"])
    upload = submit(resources, csv_bytes(features), account="acme")
    assert score_upload(upload)["status"] == "COMPLETED"
    stored = metrics_rows(resources.engine, "churn").set_index("prediction_id").loc[upload]
    assert stored["rows_scored"] == len(holdout) and stored["score_psi"] < 0.1
    from_file = figures_from_the_results_file(resources, upload, telco_model)
    assert {name: stored[name] for name in from_file} == from_file

    outcomes = tmp_path / "outcomes.csv"
    outcomes.write_bytes(
        csv_bytes(
            pd.DataFrame(
                {
                    "customer_id": holdout["customerID"],
                    "churned": holdout[LABEL_COLUMN].map({1: "yes", 0: "no"}),
                }
            )
        )
    )
    assert (
        cli.main(["outcomes", "upload", str(outcomes), "--prediction", upload, "--account", "acme"])
        == 0
    )
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["matched"] == len(holdout)

    results = pd.read_csv(
        io.BytesIO(service.download_results(resources, upload)), dtype={"customer_id": str}
    )
    labels = pd.read_csv(outcomes, dtype={"customer_id": str})
    merged = results.merge(labels, on="customer_id")
    direct_auc = roc_auc_score(merged["churned"] == "yes", merged["churn_probability"])

    figures = monitor_json(capsys, "--account", "acme")
    row = figures["uploads"][0]
    assert row["realised_roc_auc"] == pytest.approx(direct_auc, abs=1e-9)
    assert figures["versions"][0]["roc_auc"] == pytest.approx(direct_auc, abs=1e-9)
    assert abs(row["estimated_roc_auc"] - row["realised_roc_auc"]) < 0.03
    assert (
        row["estimated_roc_auc_band"][0]
        <= row["realised_roc_auc"]
        <= row["estimated_roc_auc_band"][1]
    )
    high = figures["versions"][0]["tiers"]["HIGH"]
    assert high["rows"] > 0 and high["churn_rate"] >= 0.5
    assert figures["alerts"] == []

    shifted = features[features["Contract"] == "Month-to-month"].assign(
        MonthlyCharges=lambda f: f["MonthlyCharges"].astype(float) * 1.6
    )
    later = submit(resources, csv_bytes(shifted), account="acme")
    assert score_upload(later)["status"] == "COMPLETED"
    drift = drift_rows(resources.engine, "churn").set_index(["prediction_id", "column_name"])
    assert drift.loc[(later, "Contract"), "psi"] > 0.25
    assert drift.loc[(later, "MonthlyCharges"), "psi"] > 0.25
    figures = monitor_json(capsys)
    drifted = [a for a in figures["alerts"] if a["event"] == "retainwise.data.drifted"]
    assert drifted and {"Contract", "MonthlyCharges"} <= set(drifted[0]["columns"])
    assert monitor_json(capsys, "--account", "globex")["uploads"] == []

    # concept shift: on the shifted customers the old scores no longer rank who churns
    upload_flipped_outcomes(resources, later, "acme", tmp_path)
    capsys.readouterr()
    automation_deployment = train_model.to_deployment(
        name="train-model", triggers=retrain_when_degraded()
    ).apply()
    # one account's outcomes alone say "degraded" only for an operator to review
    alone = monitor("churn")
    review = [a for a in alone["alerts"] if a["event"] == "retainwise.model.degraded-review"]
    assert review and review[0]["accounts"] == ["acme"]
    assert "retainwise.model.degraded" not in {a["event"] for a in alone["alerts"]}

    # a second account sees the same: now the automation retrains
    other = submit(resources, csv_bytes(shifted), account="globex")
    assert score_upload(other)["status"] == "COMPLETED"
    upload_flipped_outcomes(resources, other, "globex", tmp_path)
    capsys.readouterr()
    summary = monitor("churn")
    events = {alert["event"] for alert in summary["alerts"]}
    assert events == {"retainwise.model.degraded", "retainwise.data.drifted"}
    assert events <= emitted_events(events)

    started = wait_for_run_of(automation_deployment)  # created by the automation, no worker here
    assert started.parameters == {"name": "churn", "outcomes_of": "churn"}

    # what that run does when a worker picks it up: train-model on the pooled labelled outcomes
    retrained = train_model(name="churn", outcomes_of="churn")
    assert retrained.version == "2"
    settings = Settings()
    assert registry.alias_version("churn", "challenger", settings) == "2"
    assert registry.alias_version("churn", "champion", settings) == "1"  # the gate decides


def upload_flipped_outcomes(resources, upload: str, account: str, tmp_path) -> None:
    """Outcomes on which the upload's scores no longer rank who churns (a concept shift)."""
    results = pd.read_csv(
        io.BytesIO(service.download_results(resources, upload)), dtype={"customer_id": str}
    )
    flipped = tmp_path / f"flipped-{account}.csv"
    flipped.write_bytes(
        csv_bytes(
            pd.DataFrame(
                {
                    "customer_id": results["customer_id"],
                    "churned": (results["churn_probability"] < 0.3).astype(int),
                }
            )
        )
    )
    arguments = ["outcomes", "upload", str(flipped), "--prediction", upload, "--account", account]
    assert cli.main(arguments) == 0


def wait_for_run_of(deployment_id, timeout: float = 90.0):
    """The first flow run of a deployment; polls the API (the automation acts asynchronously)."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline:
            runs = client.read_flow_runs(
                deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
            )
            if runs:
                return runs[0]
            time.sleep(0.5)
    raise AssertionError(f"no flow run of deployment {deployment_id} within {timeout:.0f} s")


def emitted_events(expected: set[str], timeout: float = 60.0) -> set[str]:
    """retainwise.* event names the Prefect API has stored; polls until `expected` are there
    (the server persists events in batches)."""
    import time

    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter
    from prefect.events.worker import EventsWorker

    EventsWorker.drain_all()
    deadline, names = time.monotonic() + timeout, set()
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline and not expected <= names:
            page = client.read_events(
                EventFilter(event=EventNameFilter(prefix=["retainwise."])), limit=50
            )  # the server caps it at 50; the default is 100
            names = {event.event for event in page.events}
            time.sleep(0.5)
    return names
