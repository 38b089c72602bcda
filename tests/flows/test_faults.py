"""Faults a production queue sees: many uploads at once, S3 going away mid-run."""

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import pytest
import sqlalchemy as sa
from botocore.exceptions import BotoCoreError

from flows.score_upload import score_upload
from retainwise.adapters import db
from tests.conftest import free_port
from tests.helpers import customers_csv, results_of, submit, wait_for

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.fixture
def resources_on(resources, database_url, monkeypatch):
    """The test's moto bucket and queue with the parametrised database behind every flow run."""
    import migrations
    from retainwise.adapters.db import make_engine

    monkeypatch.setenv("RETAINWISE_DATABASE_URL", database_url)
    migrations.upgrade(database_url)
    resources.engine = make_engine(database_url)
    yield resources
    resources.engine.dispose()


# PostgreSQL, the production database; the claim race itself runs on both in
# tests/retainwise/adapters/test_db.py
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_twenty_uploads_at_once_each_complete_exactly_once(resources_on):
    uploads = {submit(resources_on, customers_csv(10 + i, seed=i)): 10 + i for i in range(20)}
    # every upload is run twice, concurrently, as a redelivered message would
    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(lambda pid: score_upload(pid)["status"], list(uploads) * 2))
    assert sorted(outcomes) == ["COMPLETED"] * 20 + ["SKIPPED"] * 20

    with resources_on.engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                db.predictions.c.id,
                db.predictions.c.status,
                db.predictions.c.attempts,
                db.predictions.c.rows_scored,
            )
        ).all()
    assert len(rows) == 20
    assert {r.id: (r.status, r.attempts, r.rows_scored) for r in rows} == {
        pid: ("COMPLETED", 1, n) for pid, n in uploads.items()
    }
    for pid, n in list(uploads.items())[:3]:
        assert len(results_of(resources_on, pid)) == n


@pytest.fixture
def s3_going_away(monkeypatch, stack_env, resources):
    """A moto server of its own that stops once the run has claimed the upload (in the claim,
    so the run's next S3 call meets it gone, on either path); the Resources using it."""
    from moto.server import ThreadedMotoServer

    from retainwise.adapters import aws
    from retainwise.adapters.resources import Resources
    from retainwise.config.settings import Settings

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retries off: ours show
    env = Resources(Settings())
    aws.ensure_resources(env.settings)
    claim, stopped = db.claim_or_resume, threading.Event()

    def claim_then_stop_s3(*args, **kwargs):
        claimed = claim(*args, **kwargs)
        if not stopped.is_set():
            stopped.set()
            moto.stop()
        return claimed

    monkeypatch.setattr(db, "claim_or_resume", claim_then_stop_s3)
    yield env
    if not stopped.is_set():
        moto.stop()
    env.engine.dispose()


def s3_fails_the_run(env) -> db.Prediction:
    """A 20-row upload run while S3 goes away after the claim: FAILED, with the message a
    customer reads (4 tries, no traceback, the flow run named)."""
    prediction_id = submit(env, customers_csv(20))
    with pytest.raises(BotoCoreError):  # S3 unreachable: connection refused or cut
        score_upload(prediction_id)
    row = db.get_prediction(env.engine, prediction_id)
    assert row.status == "FAILED"
    assert row.error.startswith("the file store (S3) could not be reached after 4 tries")
    assert "Traceback" not in row.error and row.flow_run_id in row.error
    return row


def test_s3_going_away_mid_small_run_is_retried_in_the_flow_then_fails_clearly(s3_going_away):
    """A small upload has no task run: its retries are WARNING lines in the flow run's logs,
    one per retry, with a backoff (1, 2, 4 s, jittered by up to half) between the tries."""
    row = s3_fails_the_run(s3_going_away)
    # no task run but the one recording FAILED (which the API may not show yet): the retries
    # are the flow's own
    assert {name.rsplit("-", 1)[0] for name in run_counts(row.flow_run_id)} <= {"finish-upload"}
    retries = wait_for(
        lambda: logs if len(logs := retry_logs(row.flow_run_id)) >= 3 else None,
        30,
        "the run's retry log lines",
    )
    assert [log.level for log in retries] == [30, 30, 30]  # WARNING
    assert [log.message.split(" failed")[0] for log in retries] == [
        f"try {n} of 4" for n in (1, 2, 3)
    ]
    assert all("EndpointConnectionError" in log.message for log in retries), retries[0].message
    waits = [float(log.message.rsplit("retrying in ", 1)[1].split()[0]) for log in retries]
    assert [wait >= least for wait, least in zip(waits, (1, 2, 4), strict=True)] == [True] * 3
    # the waits happened: each retry line is at least the previous line's wait after it
    times = [log.timestamp for log in retries]
    gaps = [(later - earlier).total_seconds() for earlier, later in itertools.pairwise(times)]
    assert all(gap >= wait for gap, wait in zip(gaps, waits, strict=False)), (gaps, waits)


def test_s3_going_away_mid_staged_run_is_retried_by_its_task_then_fails_clearly(
    s3_going_away, monkeypatch
):
    """A larger upload runs a task run per stage: the S3 task is tried 4 times by Prefect, with
    a backoff between the tries, not four instant failures."""
    from retainwise.adapters.resources import forget_process_resources

    monkeypatch.setenv("RETAINWISE_SMALL_UPLOAD_BYTES", "1")  # every upload takes the stages
    forget_process_resources()
    row = s3_fails_the_run(s3_going_away)
    assert max(run_counts(row.flow_run_id).values()) == 4  # the S3 task was tried 4 times
    waits = retry_waits(row.flow_run_id)
    assert len(waits) == 3 and all(wait >= 0.4 for wait in waits), waits


def flow_run_logs(flow_run_id: str) -> list:
    """The run's log records as the Prefect API holds them, oldest first."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    with get_client(sync_client=True) as client:
        return client.read_logs(
            log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(flow_run_id)])),
            sort=LogSort.TIMESTAMP_ASC,
        )


def retry_logs(flow_run_id: str) -> list:
    return [log for log in flow_run_logs(flow_run_id) if "retrying in" in log.message]


def retry_waits(flow_run_id: str) -> list[float]:
    """Seconds each AwaitingRetry state of the run's tasks was scheduled ahead (Prefect's own)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
        )
        states = [state for run in runs for state in client.read_task_run_states(run.id)]
    return [
        (s.state_details.scheduled_time - s.timestamp).total_seconds()
        for s in states
        if s.name == "AwaitingRetry"
    ]


def run_counts(flow_run_id: str) -> dict[str, int]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[UUID(flow_run_id)]))
        )
    return {run.name: run.run_count for run in runs}
