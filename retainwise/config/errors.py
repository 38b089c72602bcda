"""Errors whose message is shown to the customer as-is, and those worth retrying."""


class UploadRejected(ValueError):
    """The file cannot be scored; the message tells the customer what to fix."""


class PermanentError(RuntimeError):
    """A fault retrying will not cure (no champion model, a missing object)."""


class NoChampion(LookupError):
    """Scoring was asked of a model that has no champion version; the message says what to do."""


class PromotionRefused(RuntimeError):
    """The gate said no (or the versions cannot be compared); `details` carries the numbers."""

    def __init__(self, message: str, details: dict[str, object]):
        super().__init__(message)
        self.details = details


# Failures come in three kinds, told apart here and nowhere else:
# - customer errors: the file or the request is at fault; the message is shown as-is;
# - transient faults: the network or a service blinked; retrying may cure them;
# - everything else is permanent (a bug, a missing object, a refused write): fail at once.
CUSTOMER_ERRORS = (UploadRejected, NoChampion)
THROTTLING_CODES = {"Throttling", "ThrottlingException", "ThrottledException", "SlowDown",
                    "RequestLimitExceeded", "TooManyRequestsException",
                    "ProvisionedThroughputExceededException", "RequestThrottled",
                    "RequestTimeout", "RequestTimeoutException", "ServiceUnavailable",
                    "InternalError"}


def is_customer_error(error: BaseException) -> bool:
    return isinstance(error, CUSTOMER_ERRORS)


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
