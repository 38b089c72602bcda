"""Only transient faults are retried, and the failure message counts the tries that happened."""

import pytest
import sqlalchemy.exc as sql
from botocore.exceptions import ClientError, EndpointConnectionError

from retainwise.config.errors import NoChampion, UploadRejected


def client_error(code: str, status: int) -> ClientError:
    return ClientError(
        {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject"
    )


@pytest.mark.parametrize(
    "error",
    [
        ConnectionRefusedError(),
        TimeoutError(),
        EndpointConnectionError(endpoint_url="http://x"),
        client_error("SlowDown", 503),
        client_error("Throttling", 400),
        client_error("Boom", 500),
        sql.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
    ],
)
def test_connection_throttling_5xx_and_dropped_connections_are_transient(error):
    from tasks.retry import is_transient_error as is_transient

    assert is_transient(error)


@pytest.mark.parametrize(
    "error",
    [
        KeyError("x"),
        MemoryError(),
        ValueError(),
        UploadRejected("bad"),
        NoChampion("none"),
        client_error("NoSuchKey", 404),
        client_error("AccessDenied", 403),
        sql.IntegrityError("INSERT", {}, Exception("duplicate key")),
    ],
)
def test_bugs_and_refusals_are_not(error):
    from tasks.retry import is_transient_error as is_transient

    assert not is_transient(error)


def test_a_transient_cause_behind_a_wrapper_is_transient():
    from tasks.retry import is_transient_error as is_transient

    try:
        try:
            raise ConnectionResetError()
        except ConnectionResetError as exc:
            raise RuntimeError("mlflow call failed") from exc
    except RuntimeError as wrapped:
        assert is_transient(wrapped)


@pytest.mark.usefixtures("prefect_api")
def test_a_bug_fails_at_once_and_a_network_fault_after_every_try():
    from prefect import flow

    from tasks.retry import describe_failure, io_task

    calls = {"bug": 0, "network": 0}

    @io_task("buggy", retry_delay_seconds=0)
    def buggy():
        calls["bug"] += 1
        raise KeyError("column")

    @io_task("flaky", retry_delay_seconds=0, retry_jitter_factor=None)
    def flaky():
        calls["network"] += 1
        raise ConnectionRefusedError("refused")

    @flow
    def both():
        messages = []
        for step in (buggy, flaky):
            try:
                step()
            except Exception as exc:
                messages.append(describe_failure(exc, "run-1"))
        return messages

    bug, network = both()
    assert calls == {"bug": 1, "network": 4}
    assert bug.startswith("internal error while scoring (KeyError)")
    assert network.startswith("a service could not be reached after 4 tries")


@pytest.mark.usefixtures("prefect_api")
def test_an_answer_botocore_retried_is_not_retried_again():
    """Throttling and 5xx answers were retried by botocore's retry mode inside the call; the
    task does not multiply its attempts, and the message counts botocore's requests."""
    from prefect import flow

    from tasks.retry import describe_failure, io_task

    calls = []

    @io_task("throttled", retry_delay_seconds=0)
    def throttled():
        calls.append(1)
        error = client_error("SlowDown", 503)
        error.response["ResponseMetadata"]["RetryAttempts"] = 2
        raise error

    @flow
    def once():
        try:
            throttled()
        except ClientError as exc:
            return describe_failure(exc, "run-1")

    message = once()
    assert len(calls) == 1
    assert message.startswith("the file store (S3) could not be reached after 1 try of 3 requests")
