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


class MissingSetting(RuntimeError):
    """A production process lacks a URL it must not guess (database, MLflow); names the variable."""


# Failures come in three kinds, told apart here and nowhere else:
# - customer errors: the file or the request is at fault; the message is shown as-is;
# - transient faults: the network or a service blinked; retrying may cure them
#   (retainwise.adapters.faults.is_transient knows each client library's errors);
# - everything else is permanent (a bug, a missing object, a refused write): fail at once.
CUSTOMER_ERRORS = (UploadRejected, NoChampion)


def is_customer_error(error: BaseException) -> bool:
    return isinstance(error, CUSTOMER_ERRORS)
