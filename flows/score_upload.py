"""score-upload: one flow run per uploaded file, PENDING -> PROCESSING -> COMPLETED or FAILED.

A small upload (its stored object up to `small_upload_bytes`) runs in the flow run itself, with
no task run: its stages each log a line with their rows and seconds, and a transient fault retries
the whole lifecycle with a WARNING per retry (tasks.retry.retried_in_run). A task run cost three
state changes and the task engine per upload, more than a small file's scoring. A larger upload runs
a task run per stage (claim-upload, check-upload, load-champion, score-whole-file or
score-upload-in-chunks, finish-upload), each retried on its own. Either way the customers'
explanations and the monitoring figures are stored after COMPLETED (tasks.background).
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from typing import Any
from uuid import UUID

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_markdown_artifact
from prefect.client.schemas.objects import ConcurrencyLeaseHolder
from prefect.client.schemas.responses import ConcurrencyLimitWithLeaseResponse
from prefect.context import FlowRunContext
from prefect.logging.loggers import flow_run_logger

from retainwise.adapters import accounts, aws, db
from retainwise.adapters.db import Prediction, Status
from retainwise.adapters.mlflow_registry import LoadedModel
from retainwise.adapters.resources import Resources
from retainwise.config.errors import CUSTOMER_ERRORS, UploadRejected
from retainwise.uploads.output import ResultKeys, result_keys
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.report import UploadReport, summary_markdown
from retainwise.uploads.scoring import Remembered, Route, ScoredObject
from tasks.background import after_run
from tasks.history import CustomerHistory, record_explanations
from tasks.monitoring import record_upload_figures
from tasks.reaper import time_limit
from tasks.retry import describe_failure, retried_in_run
from tasks.scoring import load_champion
from tasks.shadow import shadow_score
from tasks.status import UploadTimedOut, claim_upload, finish_upload, keep_claim, tag_run
from tasks.uploads import S3Sinks, check_upload, score_in_chunks, score_whole_file

log = logging.getLogger("retainwise.flows.score_upload")


@dataclass(frozen=True)
class Steps:
    """The lifecycle's steps: task runs of their own, or plain calls in the flow run."""

    check: Callable[..., Route]
    load: Callable[..., LoadedModel]
    score_whole: Callable[..., ScoredObject]
    score_chunks: Callable[..., ScoredObject]
    tag: Callable[..., None]
    finish: Callable[..., bool]
    as_tasks: bool


TASK_RUNS = Steps(
    check_upload, load_champion, score_whole_file, score_in_chunks, tag_run, finish_upload, True
)
PLAIN_CALLS = Steps(
    check_upload.fn,
    load_champion.fn,
    score_whole_file.fn,
    score_in_chunks.fn,
    tag_run.fn,
    finish_upload.fn,
    False,
)


@dataclass(frozen=True)
class Scored:
    """A claimed upload scored and written: what COMPLETED records and the work after it needs."""

    prediction: Prediction
    model: LoadedModel
    route: Route
    keys: ResultKeys
    report: UploadReport
    history: CustomerHistory


@flow(name="score-upload", flow_run_name="score-{prediction_id}")
def score_upload(prediction_id: str, stored_bytes: int | None = None) -> dict[str, Any]:
    """`stored_bytes`: the uploaded object's size as the trigger found it when routing the
    upload (so the run need not ask S3 again); None asks."""
    env, run_id = Resources.of_process(), str(runtime.flow_run.id or "")
    scored = score_by_size(env, prediction_id, run_id, stored_bytes)
    if not isinstance(scored, Scored):
        return scored
    after_completed(env, scored)
    return {
        "prediction_id": prediction_id,
        "status": Status.COMPLETED.value,
        **scored.report,
        "result_key": scored.keys.results,
    }


def score_by_size(
    env: Resources, prediction_id: str, run_id: str, stored_bytes: int | None = None
) -> Scored | dict[str, Any]:
    """The upload COMPLETED, or why not (SKIPPED, FAILED) as the flow's result."""
    small, prediction = is_small(env, prediction_id, stored_bytes), None
    if not small:
        prediction = claim_upload(env.engine, prediction_id, run_id)
        if prediction is None:
            return skipped(prediction_id)
    try:
        if prediction is None:
            scored = retried_in_run(
                get_run_logger(), score_small_upload, env, prediction_id, run_id
            )
        else:
            scored = score_by_stage(env, prediction, run_id)
    except Exception as exc:
        return record_failure(env, prediction_id, run_id, exc)
    return scored or skipped(prediction_id)


def skipped(prediction_id: str) -> dict[str, Any]:
    get_run_logger().info(
        "prediction %s is not PENDING (already claimed or finished); nothing to do",
        prediction_id,
    )
    return {"prediction_id": prediction_id, "status": "SKIPPED"}


def is_small(env: Resources, prediction_id: str, stored_bytes: int | None = None) -> bool:
    """The upload's stored object is at most `small_upload_bytes` and not one to score in
    chunks (its size as the trigger passed it, else a read and a HEAD; no task run); anything
    unclear (no row, no object, a fault) takes the task run per stage."""
    size = stored_bytes
    if size is None:
        try:
            row = db.get_prediction(env.engine, prediction_id)
            size = aws.object_size(env.s3, env.settings.bucket, row.input_key) if row else 0
        except Exception:  # the stage tasks meet the fault again, and retry it on their own
            return False
    settings = env.settings
    return 0 < size <= min(settings.small_upload_bytes, settings.chunked_above_bytes)


def score_small_upload(env: Resources, prediction_id: str, run_id: str) -> Scored | None:
    """A small upload's whole lifecycle in the flow run, no task run; None if another run holds
    it.

    The caller retries it as a whole on a transient fault: each step is safe to repeat (the
    claim recognises this run's own, the history restarts, the writes replace), and repeating a
    small file's scoring costs less than a task run per stage costs every upload.
    """
    started = time.perf_counter()
    prediction = claim_upload.fn(env.engine, prediction_id, run_id)
    if prediction is None:
        return None
    get_run_logger().info(
        "claimed: %s (account %s) in %.2f s",
        prediction_id,
        prediction.account,
        time.perf_counter() - started,
    )
    stored = aws.S3Object(env.s3, env.settings.bucket, prediction.input_key)
    source = Remembered.whole(stored).fetch_ahead()  # one GET, meanwhile the slot and account
    with account_slot(prediction.account, run_id):
        scored = score_claimed(env, prediction, run_id, PLAIN_CALLS, source)
        complete(env, scored, run_id, PLAIN_CALLS)
        summary_after_completed(scored)
    return scored


def score_by_stage(env: Resources, prediction: Prediction, run_id: str) -> Scored:
    """A larger claimed upload's lifecycle, a task run per stage."""
    with account_slot(prediction.account, run_id):
        scored = score_claimed(env, prediction, run_id, TASK_RUNS)
        complete(env, scored, run_id, TASK_RUNS)
        summary_after_completed(scored)
    return scored


LEASE_SECONDS = 300  # a killed run's slot comes back after this; a live run renews it


@contextmanager
def account_slot(
    account: str,
    run_id: str,
    timeout_seconds: float | None = None,
    lease_seconds: float = LEASE_SECONDS,
    renew_seconds: float | None = None,
) -> Iterator[None]:
    """One slot of the account's global concurrency limit for the whole run (the trigger sets
    it), taken and given back with this process's Prefect client: 2 API calls per run.

    Prefect's `concurrency()` made each call on its event-loop thread with clients of its own,
    renewed the lease at once (a third call, from a thread with yet another client) and emitted
    an event for each end. Here the lease is renewed every `renew_seconds` (3/4 of
    `lease_seconds`) once the run has held it that long, and a renewal that fails is logged,
    as Prefect does with strict=False. A limit that does not exist caps nothing (Prefect's
    behaviour too)."""
    from prefect.context import SyncClientContext

    holder = ConcurrencyLeaseHolder(type="flow_run", id=UUID(run_id)) if run_id else None
    with SyncClientContext.get_or_create() as context:
        client = context.client
        lease = take_slot(client, f"account:{account}", holder, lease_seconds, timeout_seconds)
        if lease is None:
            yield
            return
        stop = threading.Event()
        renewer = threading.Thread(  # in this context: the caller's Prefect settings
            target=contextvars.copy_context().run,
            args=(renew_lease, lease, lease_seconds, renew_seconds or lease_seconds * 0.75, stop),
            name="account-slot",
            daemon=True,
        )
        renewer.start()
        try:
            yield
        finally:
            stop.set()
            renewer.join()
            try:
                client.release_concurrency_slots_with_lease(lease)
            except Exception:  # the upload's outcome stands; the slot lapses with its lease
                log.warning("giving back account slot lease %s failed", lease, exc_info=True)


def take_slot(
    client: Any,
    name: str,
    holder: ConcurrencyLeaseHolder | None,
    lease_seconds: float,
    timeout_seconds: float | None,
) -> UUID | None:
    """The lease of one slot of `name`, waiting (the server's Retry-After) while it is full;
    None if no such limit exists. TimeoutError after `timeout_seconds`."""
    import httpx

    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while True:
        try:
            response = client.increment_concurrency_slots_with_lease(
                [name], 1, "concurrency", lease_seconds, holder
            )
        except httpx.HTTPStatusError as exc:
            if exc.response.status_code != 423:  # 423 Locked: every slot is held
                raise
            wait = float(exc.response.headers.get("Retry-After", 1))
            if deadline is not None and time.monotonic() + wait > deadline:
                raise TimeoutError(f"no free slot of {name} within {timeout_seconds} s") from None
            time.sleep(wait)
            continue
        granted = ConcurrencyLimitWithLeaseResponse.model_validate(response.json())
        return granted.lease_id if granted.limits else None


def renew_lease(lease: UUID, lease_seconds: float, every: float, stop: threading.Event) -> None:
    """Renew the lease every `every` seconds until `stop`; its own client, opened only when a
    run lasts that long (the run's client is busy in the run's thread)."""
    from prefect.client.orchestration import get_client

    while not stop.wait(every):
        try:
            with get_client(sync_client=True) as client:
                client.renew_concurrency_lease(lease, lease_seconds)
        except Exception:  # the next renewal may get through; the slot may lapse meanwhile
            log.warning("renewing account slot lease %s failed", lease, exc_info=True)


def score_claimed(
    env: Resources,
    prediction: Prediction,
    run_id: str,
    steps: Steps,
    source: aws.S3Object | Remembered | None = None,
) -> Scored:
    """The claimed upload scored and its results written; raises what the row's FAILED says.
    `source`: the stored object as the caller reads it (default: read as each step asks)."""
    settings, logger, prediction_id = env.settings, get_run_logger(), prediction.id
    source = source or aws.S3Object(env.s3, settings.bucket, prediction.input_key)
    keys = result_keys(prediction.account, prediction_id)
    sinks = S3Sinks.for_upload(env.s3, settings.bucket, keys, write_as_task=steps.as_tasks)
    account = accounts.get_account(env.engine, prediction.account)
    policy = ScoringPolicy.from_settings(settings).for_upload(account, prediction.carry_columns)
    started = time.perf_counter()
    route = steps.check(source, policy)
    if not steps.as_tasks:
        logger.info(
            "checked: %d bytes, %s, in %.2f s",
            route.size,
            "in chunks" if route.chunked else "whole file",
            time.perf_counter() - started,
        )
    limit = time_limit(route.size, settings)
    with keep_claim(env.engine, prediction_id, run_id, limit, settings.claim_refresh_seconds):
        started = time.perf_counter()
        model = steps.load(prediction.model_name, settings)
        if not steps.as_tasks:
            logger.info(
                "model: %s version %s in %.2f s",
                model.name,
                model.version,
                time.perf_counter() - started,
            )
        if f"model-version:{model.version}" not in (runtime.flow_run.tags or []):
            # the trigger did not know the version, or a promotion came in between
            steps.tag(run_id, f"model-version:{model.version}", replacing="model-version:")
        score = steps.score_chunks if route.chunked else steps.score_whole
        history = CustomerHistory.for_upload(env.engine, prediction.account, prediction_id, model)
        report = score(source, model, policy, sinks, prediction_id, route, history).report
    if report["error"]:  # too many rows rejected: the report and rejects say which and why
        publish_summary(prediction_id, report, keys.report_html)
        raise UploadRejected(report["error"])
    return Scored(prediction, model, route, keys, report, history)


def complete(env: Resources, scored: Scored, run_id: str, steps: Steps) -> None:
    """COMPLETED: the objects exist (the writing returned), so it cannot point at nothing."""
    report, keys = scored.report, scored.keys
    started = time.perf_counter()
    steps.finish(
        env.engine,
        scored.prediction.id,
        run_id,
        Status.COMPLETED,
        model_version=scored.model.version,
        rows_total=report["rows_total"],
        rows_scored=report["rows_scored"],
        rows_rejected=report["rows_rejected"],
        result_key=keys.results,
        report_key=keys.report,
        error=None,
    )
    if not steps.as_tasks:
        get_run_logger().info("COMPLETED in %.2f s", time.perf_counter() - started)


def record_failure(
    env: Resources, prediction_id: str, run_id: str, exc: Exception
) -> dict[str, Any]:
    """FAILED on the row with a message the customer can act on; raises again unless the file
    was at fault. A timed-out run keeps its claim: the reaper requeues the upload."""
    if isinstance(exc, UploadTimedOut):
        raise exc
    if isinstance(exc, CUSTOMER_ERRORS):
        get_run_logger().warning("upload %s failed: %s", prediction_id, exc)
        finish_upload(env.engine, prediction_id, run_id, Status.FAILED, error=str(exc))
        return {"prediction_id": prediction_id, "status": Status.FAILED.value, "error": str(exc)}
    # transient faults were already retried inside the tasks; if even recording FAILED
    # fails, the row stays PROCESSING and the reaper hands it back to the queue
    finish_upload(
        env.engine, prediction_id, run_id, Status.FAILED, error=describe_failure(exc, run_id)
    )
    raise exc


def after_completed(env: Resources, scored: Scored) -> None:
    """What the customer does not wait for, after COMPLETED: on a warm runner child's background
    thread (its next run starts at once), else now. The challenger's shadow score stays in the
    run: it validates and scores, which the next run does at the same time in the same process."""
    context = FlowRunContext.get()  # the run's own logger, also once the run has ended
    logger = flow_run_logger(context.flow_run, context.flow) if context else get_run_logger()
    after_run(partial(store_after_completed, env, scored, logger))
    shadow_score(env, scored.prediction, scored.model.version, scored.route)


def store_after_completed(env: Resources, scored: Scored, logger: Any) -> None:
    """The customers' explanations (GET /customers/{id}) and the upload's monitoring figures;
    either failing leaves the upload as it is, with a warning on its run."""
    prediction_id, started = scored.prediction.id, time.perf_counter()
    try:
        stored = record_explanations(scored.history)
        logger.info("after COMPLETED: %d explanations stored", stored)
    except Exception as exc:  # its customers keep their older explanation
        logger.warning("explanations for %s not stored: %s", prediction_id, exc)
    try:
        record_upload_figures(
            env,
            scored.report,
            scored.prediction.account,
            scored.model,
            scored.keys.results,
            logger=logger,
            probabilities=scored.history.scores,  # kept by the history, else from S3
        )
    except Exception as exc:  # the customer's results stand; only the trend misses a point
        logger.warning("monitoring figures for %s not stored: %s", prediction_id, exc)
    logger.info("after COMPLETED: stored in %.2f s", time.perf_counter() - started)


def summary_after_completed(scored: Scored) -> None:
    """The run's artifact once the customer has the results (COMPLETED is not kept waiting for
    it); failing to publish it leaves the upload as it is, with a warning on the run."""
    try:
        publish_summary(scored.prediction.id, scored.report, scored.keys.report_html)
    except Exception as exc:  # the operators' summary only; the upload stands
        get_run_logger().warning(
            "summary artifact of %s not published: %s", scored.prediction.id, exc
        )


def publish_summary(prediction_id: str, report: UploadReport, report_key: str) -> None:
    """A markdown artifact on the run, so operators see the outcome in the Prefect UI."""
    create_markdown_artifact(
        summary_markdown(report, report_key),
        key=f"score-{prediction_id}".lower()[:60],
        description="score-upload data-quality summary",
    )
