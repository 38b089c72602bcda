"""Retry policy shared by every task that touches S3, SQS, MLflow or the database."""

from __future__ import annotations

from botocore.exceptions import ClientError

from retainwise.errors import PermanentError, UploadRejected
from retainwise.registry import NoChampion

PERMANENT = (UploadRejected, NoChampion, PermanentError)
MISSING_OBJECT_CODES = {"NoSuchKey", "NoSuchBucket", "404", "403", "AccessDenied"}
IO_TASK = dict(retries=3, retry_delay_seconds=[1, 2, 4], retry_jitter_factor=0.5)


def is_permanent(error: BaseException) -> bool:
    if isinstance(error, ClientError):
        return error.response.get("Error", {}).get("Code") in MISSING_OBJECT_CODES
    return isinstance(error, PERMANENT)


def is_transient(task, task_run, state) -> bool:
    """Retry network and database faults; a bad file or a missing champion fails at once."""
    return not is_permanent(state.result(raise_on_failure=False))
