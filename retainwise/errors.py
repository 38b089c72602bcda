"""Errors whose message is shown to the customer as-is, and those worth retrying."""


class UploadRejected(ValueError):
    """The file cannot be scored; the message tells the customer what to fix."""


class PermanentError(RuntimeError):
    """A fault retrying will not cure (no champion model, a missing object)."""
