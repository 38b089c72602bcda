"""Faults a production queue sees: many uploads at once, S3 going away mid-run."""

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


def test_s3_going_away_mid_run_is_retried_then_fails_clearly(monkeypatch, stack_env, resources):
    from moto.server import ThreadedMotoServer

    from retainwise.adapters import aws
    from retainwise.adapters.resources import Resources
    from retainwise.config.settings import Settings

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    moto.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # botocore's own retries off: Prefect's show
    env = Resources(Settings())
    aws.ensure_resources(env.settings)
    prediction_id = submit(env, customers_csv(20))

    def stop_once_processing():
        wait_for(
            lambda: db.get_prediction(env.engine, prediction_id).status != "PENDING",
            60,
            "the run to claim the upload",
            poll=0.02,
        )
        moto.stop()

    stopper = threading.Thread(target=stop_once_processing)
    stopper.start()
    with pytest.raises(BotoCoreError):  # S3 unreachable: connection refused or cut
        score_upload(prediction_id)
    stopper.join()

    row = db.get_prediction(env.engine, prediction_id)
    assert row.status == "FAILED"
    assert row.error.startswith("the file store (S3) could not be reached after 4 tries")
    assert "Traceback" not in row.error and row.flow_run_id in row.error
    assert max(run_counts(row.flow_run_id).values()) == 4  # the S3 task was tried 4 times
    # backoff between the tries (1, 2, 4 s, jittered by up to half), not four instant failures
    waits = retry_waits(row.flow_run_id)
    assert len(waits) == 3 and all(wait >= 0.4 for wait in waits), waits
    env.engine.dispose()


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
