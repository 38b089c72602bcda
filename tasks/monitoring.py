"""Monitoring tasks: store an upload's figures when it completes; compute a model's figures."""

from __future__ import annotations

import pandas as pd
import sqlalchemy as sa
from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from models.monitoring import ScoreCounts
from retainwise.adapters import aws
from retainwise.adapters import monitoring as monitoring_tables
from retainwise.adapters.mlflow_registry import LoadedModel
from retainwise.adapters.monitoring import UploadMetrics
from retainwise.adapters.resources import Resources
from retainwise.modelops.monitoring import ModelFigures, ScoredUpload, upload_figures
from retainwise.uploads.report import UploadReport
from tasks.retry import IO_TASK, is_transient, retried


def record_upload_figures(
    env,
    report: UploadReport,
    account: str,
    model: LoadedModel,
    results_key: str,
    logger=None,
    probabilities: ScoreCounts | None = None,
) -> UploadMetrics | None:
    """Score PSI, the label-free estimate and per-column drift, in upload_metrics/upload_drift.

    Run after the upload is COMPLETED (tasks.background), outside any task run, so its I/O is
    retried here. `probabilities`: every scored row's, counted at the results file's 6 decimals
    (else the results' column is read back from S3). A database without those tables (not
    migrated yet) skips this with a warning: monitoring must never fail a customer's upload.
    """
    logger = logger or get_run_logger()
    table = monitoring_tables.upload_metrics.name
    if not retried(lambda: sa.inspect(env.engine).has_table(table)):
        logger.warning(
            "no upload_metrics table: run `retainwise migrate`; "
            "this upload's monitoring figures are not stored"
        )
        return None
    if probabilities is None:
        probabilities = ScoreCounts.of(
            retried(aws.csv_column, env.s3, env.settings.bucket, results_key, "churn_probability")
        )
    upload = ScoredUpload.from_report(dict(report))  # the report as report.json holds it
    metrics, drift = upload_figures(upload, probabilities, account, model.profile)
    retried(monitoring_tables.record_upload, env.engine, metrics, drift)
    return metrics


@task(name="monitor-figures", cache_policy=NO_CACHE, retry_condition_fn=is_transient, **IO_TASK)
def monitor_figures(env: Resources, name: str, account: str | None) -> ModelFigures:
    from retainwise.modelops.monitoring import model_figures

    return model_figures(env.engine, env.settings, name, account)


@task(
    name="pool-labelled-outcomes", cache_policy=NO_CACHE, retry_condition_fn=is_transient, **IO_TASK
)
def pool_labelled_outcomes(env: Resources, name: str) -> pd.DataFrame:
    """Every labelled scored row of `name`'s uploads, read back from the uploads' input files."""
    from retainwise.adapters import db
    from retainwise.adapters.mlflow_registry import load_version
    from retainwise.adapters.outcomes import labelled_rows
    from retainwise.modelops.pooling import labelled_upload_rows, pooled_table

    labelled = labelled_rows(env.engine, name)
    parts = {}
    for prediction_id, labels in labelled.groupby("prediction_id", sort=False):
        row = db.get_prediction(env.engine, prediction_id)
        assert row is not None  # outcomes are stored against an existing prediction
        profile = load_version(name, row.model_version, env.settings.tracking_uri).profile
        data = aws.get_bytes(env.s3, env.settings.bucket, row.input_key)
        parts[prediction_id] = labelled_upload_rows(data, profile, labels)
    return pooled_table(parts)
