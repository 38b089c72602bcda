"""The runner's scaling metric: published to moto's CloudWatch, and its failures never escape."""

import socket
import threading
import uuid
from datetime import UTC, datetime, timedelta

from retainwise.adapters import aws
from retainwise.config.settings import Settings
from retainwise.runtime import scaling_reporter
from tests.retainwise.adapters.test_scaling import make_runs


def datapoints(cloudwatch, now):
    stats = cloudwatch.get_metric_statistics(
        Namespace="RetainWise",
        MetricName="ScoreUploadRunsWaiting",
        Dimensions=[{"Name": "Deployment", "Value": "score-upload"}],
        StartTime=now - timedelta(minutes=1),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum"],
    )
    return [point["Maximum"] for point in stats["Datapoints"]]


def test_in_production_a_tick_publishes_the_waiting_runs(prefect_api, stack_env, monkeypatch):
    now = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)  # own datapoint
    deployment = f"score-{uuid.uuid4().hex[:8]}/score-upload"
    make_runs(deployment, now)
    monkeypatch.setenv("RETAINWISE_DEPLOYMENT_NAME", deployment)
    monkeypatch.setenv("RETAINWISE_ENV", "production")
    reporter = scaling_reporter.for_settings(Settings())
    assert reporter.tick(now) == 2
    assert datapoints(aws.client("cloudwatch", Settings()), now) == [2.0]


def test_locally_nothing_is_published(monkeypatch):
    monkeypatch.setenv("RETAINWISE_ENV", "local")
    assert scaling_reporter.for_settings(Settings()) is None


def test_a_cloudwatch_error_is_logged_not_raised(prefect_api, stack_env, monkeypatch, caplog):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{closed}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    monkeypatch.setenv("RETAINWISE_ENV", "production")
    reporter = scaling_reporter.for_settings(Settings())
    assert reporter.tick(datetime.now(UTC)) is None
    assert "scaling metric failed" in caplog.text


def test_the_thread_keeps_reporting_after_a_failure():
    calls, done = [], threading.Event()

    def report(now):
        calls.append(now)
        if len(calls) == 1:
            raise RuntimeError("CloudWatch is down")
        if len(calls) == 3:
            done.set()
        return len(calls)

    reporter = scaling_reporter.WaitingRunsReporter(report, interval=0).start()
    try:
        assert done.wait(30)
    finally:
        reporter.close()
    assert reporter._thread is not None and not reporter._thread.is_alive()
    assert len(calls) >= 3


def test_paused_holds_reports_back():
    reporter = scaling_reporter.WaitingRunsReporter(lambda now: 1)
    with reporter.paused():
        ticked = threading.Thread(target=reporter.tick, args=(datetime.now(UTC),))
        ticked.start()
        ticked.join(0.2)
        assert ticked.is_alive()  # waits for the lock the fork holds
    ticked.join(5)
    assert not ticked.is_alive()
