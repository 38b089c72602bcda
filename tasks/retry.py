"""Retry policy shared by every task that touches S3, SQS, MLflow or the database.

Transient faults (a refused connection, a throttled call, a dropped database connection) are
retried with backoff; a bad file, a missing champion or a missing object fails at once.
"""

from __future__ import annotations

from botocore.exceptions import (
    ClientError, ConnectionClosedError, ConnectTimeoutError, EndpointConnectionError,
    ReadTimeoutError,
)
from sqlalchemy.exc import DBAPIError

from retainwise.config.errors import PermanentError, UploadRejected
from retainwise.config.errors import NoChampion

PERMANENT = (UploadRejected, NoChampion, PermanentError)
MISSING_OBJECT_CODES = {"NoSuchKey", "NoSuchBucket", "404", "403", "AccessDenied"}
AWS_UNREACHABLE = (EndpointConnectionError, ConnectionClosedError, ConnectTimeoutError,
                   ReadTimeoutError)
IO_TASK = dict(retries=3, retry_delay_seconds=[1, 2, 4], retry_jitter_factor=0.5)
TRIES = 1 + IO_TASK["retries"]


def is_permanent(error: BaseException) -> bool:
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code") in MISSING_OBJECT_CODES
    return isinstance(error, PERMANENT)


def is_transient(task, task_run, state) -> bool:
    """Retry network and database faults; a bad file or a missing champion fails at once."""
    return not is_permanent(state.result(raise_on_failure=False))


def describe_failure(error: BaseException, flow_run_id: str | None) -> str:
    """What a customer reads on a FAILED upload that was not their file's fault; no traceback."""
    if isinstance(error, AWS_UNREACHABLE) or isinstance(error, ClientError):
        cause = "the file store (S3) could not be reached"
    elif isinstance(error, DBAPIError):
        cause = "the database could not be reached"
    else:
        return (f"internal error while scoring ({type(error).__name__}); "
                f"support has the details under flow run {flow_run_id}")
    return (f"{cause} after {TRIES} tries ({type(error).__name__}); nothing was scored. "
            f"Upload the file again; support has the details under flow run {flow_run_id}")
