"""Which failures are worth retrying, and the retry policy of every task that touches S3, SQS,
MLflow or the database: the one place failures are classified.

Customer errors (config.errors.CUSTOMER_ERRORS) are the file's fault and shown as-is. Transient
faults (connection errors, timeouts, throttling, 5xx answers, a dropped database connection) are
retried with backoff. Everything else, a bug included, fails at once. Each failure carries the
number of tries that really happened.
"""

from __future__ import annotations

import functools
from typing import Any

import botocore.exceptions as boto
import httpx
import requests
import sqlalchemy.exc as sql
from prefect import task
from prefect.cache_policies import NO_CACHE

from retainwise.config.errors import NoChampion, PermanentError, UploadRejected

IO_TASK: dict[str, Any] = dict(retries=3, retry_delay_seconds=[1, 2, 4], retry_jitter_factor=0.5)
THROTTLING_CODES = {
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "SlowDown",
    "RequestLimitExceeded",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "RequestThrottled",
    "RequestTimeout",
    "RequestTimeoutException",
    "ServiceUnavailable",
    "InternalError",
}
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
        code = error.response.get("Error", {}).get("Code")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return code in THROTTLING_CODES or status >= 500 or status == 429
    if isinstance(error, (httpx.HTTPStatusError, requests.HTTPError)):
        status = getattr(error.response, "status_code", 0) or 0
        return status >= 500 or status == 429
    if isinstance(error, sql.DBAPIError):
        return bool(error.connection_invalidated) or isinstance(error, sql.OperationalError)
    return False


def is_transient(task, task_run, state) -> bool:
    """Prefect's retry_condition_fn: retry only what is_transient_error calls transient."""
    return is_transient_error(state.result(raise_on_failure=False))


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
    return (
        f"{cause} after {tried} ({type(error).__name__}); nothing was scored. "
        f"Upload the file again; support has the details under flow run {flow_run_id}"
    )
