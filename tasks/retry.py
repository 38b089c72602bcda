"""Which failures are worth retrying, and the retry policy of every task that touches S3, SQS,
MLflow or the database: the one place failures are classified.

Customer errors (config.errors.CUSTOMER_ERRORS) are the file's fault and shown as-is. Transient
faults (connection errors, timeouts, throttling, 5xx answers, a dropped database connection) are
retried with backoff: S3 and SQS answers by botocore's retry mode alone (adapters.aws.client),
everything else by the task. Everything else, a bug included, fails at once. Each failure carries
the number of tries that really happened. Tasks that compute (cpu_task) are never retried: the
I/O inside them is.
"""

from __future__ import annotations

import functools
from typing import TypedDict

import botocore.exceptions as boto
import botocore.retries.standard as botocore_retries
import httpx
import requests
import sqlalchemy.exc as sql
from prefect import task
from prefect.cache_policies import NO_CACHE

from retainwise.config.errors import NoChampion, PermanentError, UploadRejected


class RetryOptions(TypedDict):
    """The retry arguments of Prefect's @task that every I/O task shares."""

    retries: int
    retry_delay_seconds: list[float]
    retry_jitter_factor: float


IO_TASK = RetryOptions(retries=3, retry_delay_seconds=[1, 2, 4], retry_jitter_factor=0.5)
NETWORK = (
    ConnectionError,
    TimeoutError,
    requests.ConnectionError,
    requests.Timeout,
    httpx.TransportError,
    sql.DisconnectionError,
    sql.TimeoutError,
    boto.ConnectionError,
    boto.HTTPClientError,
)


def is_transient_error(error: BaseException | None) -> bool:
    """Worth retrying: a connection refused or dropped, a timeout, throttling, a 5xx answer, a
    dropped database connection; also when any of these is the cause of what was raised."""
    seen = 0
    while error is not None and seen < 8:
        if _transient_itself(error):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def _transient_itself(error: BaseException) -> bool:
    if isinstance(error, (UploadRejected, NoChampion, PermanentError)):
        return False
    if isinstance(error, NETWORK):
        return True
    if isinstance(error, boto.ClientError):
        return botocore_retried(error)
    if isinstance(error, (httpx.HTTPStatusError, requests.HTTPError)):
        status = getattr(error.response, "status_code", 0) or 0
        return status >= 500 or status == 429
    if isinstance(error, sql.DBAPIError):
        return bool(error.connection_invalidated) or isinstance(error, sql.OperationalError)
    return False


def botocore_retried(error: boto.ClientError) -> bool:
    """An answer botocore's retry mode retries itself (throttling, 5xx, its transient codes):
    botocore's own checkers, so no list of codes is kept here."""
    context = botocore_retries.RetryContext(1, parsed_response=error.response)
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return (
        status >= 500
        or status == 429
        or botocore_retries.ThrottledRetryableChecker().is_retryable(context)
        or botocore_retries.TransientRetryableChecker().is_retryable(context)
    )


def is_transient(task, task_run, state) -> bool:
    """Prefect's retry_condition_fn: what is_transient_error calls transient, except an S3 or
    SQS answer botocore has already retried (a task retry would multiply its attempts)."""
    error = state.result(raise_on_failure=False)
    return is_transient_error(error) and not isinstance(error, boto.ClientError)


def io_task(name: str, **options):
    """A Prefect task with the retry policy, whose exceptions carry `tries` (the run_count of
    the task run when it gave up), so the failure message counts tries that happened."""

    def decorate(function):
        @functools.wraps(function)
        def counted(*args, **kwargs):
            try:
                return function(*args, **kwargs)
            except Exception as exc:
                from prefect.runtime import task_run

                exc.tries = task_run.run_count or 1
                raise

        return task(
            name=name,
            cache_policy=NO_CACHE,
            retry_condition_fn=is_transient,
            **{**IO_TASK, **options},
        )(counted)

    return decorate


def retried(function, *args, **kwargs):
    """`function(*args, **kwargs)` with an io_task's policy (the same tries, waits and transient
    faults), for I/O that runs outside any task run (after the flow run: tasks.background)."""
    return retrying()(function, *args, **kwargs)


def retried_in_run(logger, function, *args, **kwargs):
    """`function(*args, **kwargs)` with an io_task's policy inside the flow run itself (a small
    upload's lifecycle, no task run of its own): each retry is a WARNING on `logger` (the run's
    logs show the tries and waits, as a task run's states would), and the exception it gives
    up with carries `tries`, as an io_task's does."""
    tries = 0

    def counted():
        nonlocal tries
        tries += 1
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            exc.tries = tries
            raise

    return retrying(logger)(counted)


def retrying(logger=None):
    """tenacity's Retrying with an io_task's tries, waits and transient faults; with `logger`,
    a WARNING before each wait naming the try, the fault and the wait."""
    import tenacity

    delays, jitter = IO_TASK["retry_delay_seconds"], IO_TASK["retry_jitter_factor"]
    waits = [tenacity.wait_fixed(d) + tenacity.wait_random(0, d * jitter) for d in delays]
    attempts = 1 + IO_TASK["retries"]

    def log_retry(state: tenacity.RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        logger.warning(
            "try %d of %d failed (%s: %s); retrying in %.2f s",
            state.attempt_number,
            attempts,
            type(error).__name__,
            error,
            state.upcoming_sleep,
        )

    return tenacity.Retrying(
        stop=tenacity.stop_after_attempt(attempts),
        wait=tenacity.wait_chain(*waits),
        retry=tenacity.retry_if_exception(
            lambda error: is_transient_error(error) and not isinstance(error, boto.ClientError)
        ),
        before_sleep=log_retry if logger is not None else None,
        reraise=True,
    )


def cpu_task(name: str, **options):
    """A Prefect task that is never retried (reading, validating, scoring: work a retry would
    repeat); the I/O inside it retries itself (botocore, and io_tasks it calls)."""
    return io_task(name, retries=0, **options)


def describe_failure(error: BaseException, flow_run_id: str | None) -> str:
    """What a customer reads on a FAILED upload that was not their file's fault; no traceback."""
    tries = getattr(error, "tries", 1)
    if not is_transient_error(error):
        return (
            f"internal error while scoring ({type(error).__name__}); "
            f"support has the details under flow run {flow_run_id}"
        )
    cause = (
        "the database could not be reached"
        if isinstance(error, sql.SQLAlchemyError)
        else "the file store (S3) could not be reached"
        if isinstance(error, (boto.BotoCoreError, boto.ClientError))
        else "a service could not be reached"
    )
    tried = "1 try" if tries == 1 else f"{tries} tries"
    if isinstance(error, boto.ClientError):
        requests = error.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) + 1
        tried += f" of {requests} requests" if requests > 1 else ""
    return (
        f"{cause} after {tried} ({type(error).__name__}); nothing was scored. "
        f"Upload the file again; support has the details under flow run {flow_run_id}"
    )
