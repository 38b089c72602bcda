"""Which failures of the external systems (S3/SQS, the database, HTTP APIs) are worth retrying.

The one place that knows each client library's error types; tasks/retry.py turns it into Prefect's
retry condition.
"""

from __future__ import annotations

from retainwise.config.errors import NoChampion, PermanentError, UploadRejected

THROTTLING_CODES = {"Throttling", "ThrottlingException", "ThrottledException", "SlowDown",
                    "RequestLimitExceeded", "TooManyRequestsException",
                    "ProvisionedThroughputExceededException", "RequestThrottled",
                    "RequestTimeout", "RequestTimeoutException", "ServiceUnavailable",
                    "InternalError"}



def is_transient(error: BaseException | None) -> bool:
    """Worth retrying: a connection refused or dropped, a timeout, throttling, a 5xx answer, a
    dropped database connection; also when any of these is the cause of what was raised."""
    seen = 0
    while error is not None and seen < 8:
        if _transient_itself(error):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False


def _transient_itself(error: BaseException) -> bool:
    import botocore.exceptions as boto
    import httpx
    import requests
    import sqlalchemy.exc as sql

    if isinstance(error, (UploadRejected, NoChampion, PermanentError)):
        return False
    if isinstance(error, (ConnectionError, TimeoutError, requests.ConnectionError,
                          requests.Timeout, httpx.TransportError, sql.DisconnectionError,
                          sql.TimeoutError, boto.ConnectionError, boto.HTTPClientError)):
        return True
    if isinstance(error, boto.ClientError):
        code = error.response.get("Error", {}).get("Code")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        return code in THROTTLING_CODES or status >= 500 or status == 429
    if isinstance(error, httpx.HTTPStatusError):
        return error.response.status_code >= 500 or error.response.status_code == 429
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return error.response.status_code >= 500 or error.response.status_code == 429
    if isinstance(error, sql.DBAPIError):
        return bool(error.connection_invalidated) or isinstance(error, sql.OperationalError)
    return False
