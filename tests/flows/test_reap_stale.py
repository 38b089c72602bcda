"""A worker SIGKILLed mid-run must not strand the upload (real runner, Prefect API, moto, SQLite).

Killed under a live runner, Prefect marks the run Crashed and the reaper requeues it at once, so
a fresh run finishes the upload. Killed with no one left to notice (the run stays RUNNING in
Prefect), the row is stale after `stale_after_seconds` and the reaper requeues it, or fails it
with a reason after max attempts.
"""

import os
import signal
import subprocess
import sys
from datetime import timedelta, timezone
from pathlib import Path

import psutil
import pytest
from prefect.settings import PREFECT_API_URL

from flows.reap_stale import reap_stale
from flows.score_upload import score_upload
from retainwise.adapters import db
from retainwise.adapters import prefect_api
from retainwise.local.stack import stop_group
from retainwise.runtime.trigger import deployment_starter, handle_message
from tests.conftest import REPO
from tests.helpers import customers_csv, results_of, submit, wait_for

pytestmark = pytest.mark.usefixtures("prefect_api")
DEPLOYMENT = "score-upload/kill-test"


def child_env() -> dict[str, str]:
    return {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(),
            "PREFECT_RUNNER_POLL_FREQUENCY": "1", "PREFECT_LOGGING_LEVEL": "WARNING"}


def spawn(code: str, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-c", code], cwd=REPO, env=child_env(),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def descendants(pid: int) -> list[int]:
    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def status_of(resources, prediction_id) -> str:
    return db.get_prediction(resources.engine, prediction_id)["status"]


def claimed_at(resources, prediction_id, plus_seconds: float):
    """When the row was claimed, plus some seconds, as the reaper's clock (UTC-aware)."""
    started = db.get_prediction(resources.engine, prediction_id)["started_at"]
    return started.replace(tzinfo=started.tzinfo or timezone.utc) + timedelta(seconds=plus_seconds)


def next_message(queue):
    return wait_for(lambda: queue.receive(wait_seconds=0), 10, "a message")[0]


@pytest.fixture
def runner(resources, tmp_path):
    """A real `serve` process for score-upload, in its own process group."""
    code = ("from flows.score_upload import score_upload; "
            f"score_upload.serve(name={DEPLOYMENT.split('/')[1]!r}, limit=2)")
    process = spawn(code, tmp_path / "runner.log")
    yield process
    stop_group(process.pid, grace=0)
    process.wait(10)


def test_sigkill_under_a_live_runner_is_crashed_requeued_and_completed(resources, runner):
    prediction_id = submit(resources, customers_csv(150))
    start = deployment_starter(DEPLOYMENT)
    wait_for(lambda: _deployment_exists(), 60, "the runner to register its deployment", 0.5)
    assert handle_message(resources, next_message(resources.queue), start) == "started"

    wait_for(lambda: status_of(resources, prediction_id) == "PROCESSING", 90, "PROCESSING")
    flow_processes = descendants(runner.pid)
    assert flow_processes, "the runner should be running the flow in a child process"
    for pid in flow_processes:
        os.kill(pid, signal.SIGKILL)
    first_run = db.get_prediction(resources.engine, prediction_id)["flow_run_id"]

    # the runner sees its child die and marks the run Crashed; the reaper acts on that at once
    wait_for(lambda: prefect_api.prefect_run_states([first_run]).get(first_run) == "CRASHED", 30,
             "Prefect to mark the killed run Crashed", 0.5)
    assert reap_stale(stale_after_seconds=3600)["requeued"] == [prediction_id]
    assert handle_message(resources, next_message(resources.queue), start) == "started"

    wait_for(lambda: status_of(resources, prediction_id) in {"COMPLETED", "FAILED"}, 90,
             "the rerun to finish", 0.25)
    row = db.get_prediction(resources.engine, prediction_id)
    assert row["status"] == "COMPLETED", row["error"]
    assert row["attempts"] == 2 and row["flow_run_id"] != first_run
    assert len(results_of(resources, prediction_id)) == 150


def test_a_run_that_vanished_while_running_is_reaped_after_the_stale_timeout(resources):
    """A worker killed with nobody left to tell Prefect: the run stays RUNNING, the row goes stale."""
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    prediction_id = submit(resources, customers_csv(10))
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(score_upload, parameters={"prediction_id": prediction_id})
        client.set_flow_run_state(run.id, Running(), force=True)
    assert db.claim_prediction(resources.engine, prediction_id, str(run.id))

    assert reap_stale(stale_after_seconds=60, now=claimed_at(resources, prediction_id, 59)) == {
        "requeued": [], "failed": []}  # not yet stale
    later = claimed_at(resources, prediction_id, 61)
    assert reap_stale(stale_after_seconds=60, now=later)["requeued"] == [prediction_id]
    assert status_of(resources, prediction_id) == "PENDING"

    # the next attempt vanishes too; with max_attempts=2 the reaper gives up with a reason
    assert db.claim_prediction(resources.engine, prediction_id, str(run.id))
    later = claimed_at(resources, prediction_id, 61)
    reaped = reap_stale(max_attempts=2, stale_after_seconds=60, now=later)
    assert reaped["failed"] == [prediction_id]
    row = db.get_prediction(resources.engine, prediction_id)
    assert row["status"] == "FAILED"
    assert row["error"].startswith("scoring was started 2 times and never finished")
    assert "PROCESSING for" in row["error"]
    assert score_upload(prediction_id)["status"] == "SKIPPED"


def _deployment_exists() -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(DEPLOYMENT)
        except ObjectNotFound:
            return False
    return True
