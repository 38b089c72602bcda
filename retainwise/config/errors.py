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


# Failures come in three kinds: customer errors (the file or request is at fault; the message is
# shown as-is), transient faults (tasks/retry.py is_transient_error: retrying may cure them) and
# everything else, permanent (a bug, a missing object, a refused write): fail at once.
CUSTOMER_ERRORS = (UploadRejected, NoChampion)
