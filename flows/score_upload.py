"""score-upload: one flow run per uploaded file, PENDING -> PROCESSING -> COMPLETED or FAILED."""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.concurrency.sync import concurrency

from retainwise.adapters import accounts, aws
from retainwise.adapters.db import Prediction, Status
from retainwise.adapters.resources import Resources
from retainwise.config.errors import CUSTOMER_ERRORS, UploadRejected
from retainwise.uploads.output import result_keys
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.report import UploadReport, summary_markdown
from tasks.history import CustomerHistory, record_explanations
from tasks.monitoring import record_upload_figures
from tasks.reaper import time_limit
from tasks.retry import describe_failure
from tasks.scoring import load_champion
from tasks.shadow import shadow_score
from tasks.status import UploadTimedOut, claim_upload, finish_upload, keep_claim, tag_run
from tasks.uploads import S3Sinks, check_upload, score_in_chunks, score_whole_file


@flow(name="score-upload", flow_run_name="score-{prediction_id}")
def score_upload(prediction_id: str) -> dict[str, Any]:
    env, logger = Resources.of_process(), get_run_logger()
    run_id = str(runtime.flow_run.id or "")
    prediction = claim_upload(env.engine, prediction_id, run_id)
    if prediction is None:
        logger.info(
            "prediction %s is not PENDING (already claimed or finished); nothing to do",
            prediction_id,
        )
        return {"prediction_id": prediction_id, "status": "SKIPPED"}
    with account_slot(prediction.account, run_id):
        return score_claimed(env, prediction, run_id)


def account_slot(
    account: str, run_id: str, timeout_seconds: float | None = None
) -> AbstractContextManager[None]:
    """One slot of the account's global concurrency limit for the whole run (the trigger sets
    it): 3 API calls per run, where a tag limit took and gave back a slot per task run."""
    holder = ConcurrencyLeaseHolder(type="flow_run", id=UUID(run_id)) if run_id else None
    return concurrency(f"account:{account}", timeout_seconds=timeout_seconds, holder=holder)


def score_claimed(env: Resources, prediction: Prediction, run_id: str) -> dict[str, Any]:
    """The claimed upload scored, its results written and its row finished, or FAILED."""
    settings, logger, prediction_id = env.settings, get_run_logger(), prediction.id
    try:
        source = aws.S3Object(env.s3, settings.bucket, prediction.input_key)
        keys = result_keys(prediction.account, prediction_id)
        sinks = S3Sinks.for_upload(env.s3, settings.bucket, keys)
        account = accounts.get_account(env.engine, prediction.account)
        policy = ScoringPolicy.from_settings(settings).for_upload(account, prediction.carry_columns)
        route = check_upload(source, policy)
        with keep_claim(
            env.engine,
            prediction_id,
            run_id,
            time_limit(route.size, settings),
            settings.claim_refresh_seconds,
        ):
            model = load_champion(prediction.model_name, settings)
            if f"model-version:{model.version}" not in (runtime.flow_run.tags or []):
                # the trigger did not know the version, or a promotion came in between
                tag_run(run_id, f"model-version:{model.version}", replacing="model-version:")
            score = score_in_chunks if route.chunked else score_whole_file
            history = CustomerHistory.for_upload(
                env.engine, prediction.account, prediction_id, model
            )
            report = score(source, model, policy, sinks, prediction_id, route, history).report
            publish_summary(prediction_id, report, keys.report_html)
        if report["error"]:  # too many rows rejected: the report and rejects say which and why
            raise UploadRejected(report["error"])
    except UploadTimedOut:
        raise  # the claim stays: the run ends TimedOut and the reaper requeues the upload
    except CUSTOMER_ERRORS as exc:
        logger.warning("upload %s failed: %s", prediction_id, exc)
        finish_upload(env.engine, prediction_id, run_id, Status.FAILED, error=str(exc))
        return {"prediction_id": prediction_id, "status": Status.FAILED.value, "error": str(exc)}
    except Exception as exc:
        # transient faults were already retried inside the tasks; if even recording FAILED
        # fails, the row stays PROCESSING and the reaper hands it back to the queue
        finish_upload(
            env.engine, prediction_id, run_id, Status.FAILED, error=describe_failure(exc, run_id)
        )
        raise
    # the objects exist (the writing returned), so COMPLETED cannot point at nothing
    finish_upload(
        env.engine,
        prediction_id,
        run_id,
        Status.COMPLETED,
        model_version=model.version,
        rows_total=report["rows_total"],
        rows_scored=report["rows_scored"],
        rows_rejected=report["rows_rejected"],
        result_key=keys.results,
        report_key=keys.report,
        error=None,
    )
    explained = record_explanations(history, return_state=True)  # for GET /customers/{id}
    if explained.is_failed():  # the upload stands; its customers keep their older explanation
        logger.warning("explanations for %s not stored: %s", prediction_id, explained.message)
    figures = record_upload_figures(
        env, report, prediction.account, model, keys.results, return_state=True
    )
    if figures.is_failed():  # the customer's results stand; only the trend misses a point
        logger.warning("monitoring figures for %s not stored: %s", prediction_id, figures.message)
    shadow_score(env, prediction, model.version, route)  # the challenger's, kept apart
    return {
        "prediction_id": prediction_id,
        "status": Status.COMPLETED.value,
        **report,
        "result_key": keys.results,
    }


def publish_summary(prediction_id: str, report: UploadReport, report_key: str) -> None:
    """A markdown artifact on the run, so operators see the outcome in the Prefect UI."""
    create_markdown_artifact(
        summary_markdown(report, report_key),
        key=f"score-{prediction_id}".lower()[:60],
        description="score-upload data-quality summary",
    )
