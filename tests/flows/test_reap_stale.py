"""No upload is stranded and no live run is run twice (real runner, Prefect API, moto, SQLite).

Killed under a live runner, Prefect marks the run Crashed and the reaper requeues it at once, so
a fresh run finishes the upload. Killed with no one left to notice (dead: the run stays RUNNING in
Prefect, its claim falls silent), the reaper requeues it after `stale_after_seconds` and cancels
the old run, or fails it after max attempts. Hung past its time limit, the run is TimedOut and
requeued once; slow but alive (refreshing its claim), it is left alone. Time is passed in.
"""

import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path
from uuid import UUID

import psutil
import pytest
from prefect.settings import PREFECT_API_URL

from flows.reap_stale import reap_stale
from flows.score_upload import score_upload
from retainwise.adapters import db, prefect_api
from retainwise.adapters.resources import Resources, forget_process_resources
from retainwise.local.stack import stop_group
from retainwise.runtime.trigger import deployment_starter, handle_message
from tasks import reaper
from tasks.status import UploadTimedOut
from tests.conftest import REPO
from tests.helpers import customers_csv, results_of, submit, wait_for

pytestmark = pytest.mark.usefixtures("prefect_api")
DEPLOYMENT = "score-upload/kill-test"


def child_env() -> dict[str, str]:
    return {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_LEVEL": "WARNING",
    }


def spawn(code: str, log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", code],
            cwd=REPO,
            env=child_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def descendants(pid: int) -> list[int]:
    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def status_of(resources, prediction_id) -> str:
    return db.get_prediction(resources.engine, prediction_id).status


def next_message(queue):
    return wait_for(lambda: queue.receive(wait_seconds=0), 10, "a message")[0]


@pytest.fixture
def runner(resources, tmp_path):
    """A real `serve` process for score-upload, in its own process group."""
    code = (
        "from flows.score_upload import score_upload; "
        f"score_upload.serve(name={DEPLOYMENT.split('/')[1]!r}, limit=2)"
    )
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
    first_run = db.get_prediction(resources.engine, prediction_id).flow_run_id

    # the runner sees its child die and marks the run Crashed; the reaper acts on that at once
    wait_for(
        lambda: prefect_api.prefect_run_states([first_run]).get(first_run) == "CRASHED",
        30,
        "Prefect to mark the killed run Crashed",
        0.5,
    )
    assert reap_stale(stale_after_seconds=3600)["requeued"] == [prediction_id]
    assert handle_message(resources, next_message(resources.queue), start) == "started"

    wait_for(
        lambda: status_of(resources, prediction_id) in {"COMPLETED", "FAILED"},
        90,
        "the rerun to finish",
        0.25,
    )
    row = db.get_prediction(resources.engine, prediction_id)
    assert row.status == "COMPLETED", row.error
    assert row.attempts == 2 and row.flow_run_id != first_run
    assert len(results_of(resources, prediction_id)) == 150


def sweep(**options):
    """One reaper sweep against the real Prefect API (states and cancels), at the `now` given."""
    return reaper.sweep(
        Resources.of_process(),
        prefect_api.prefect_run_states,
        prefect_api.cancel_flow_run,
        **options,
    )


def later(seconds: float):
    return db.utcnow() + timedelta(seconds=seconds)


def test_dead_a_run_that_vanished_while_running_is_requeued_and_cancelled(resources):
    """A worker killed with nobody left to tell Prefect: the run stays RUNNING and its claim falls
    silent; the reaper hands the upload back and cancels the old run."""
    from prefect.client.orchestration import get_client
    from prefect.states import Running

    prediction_id = submit(resources, customers_csv(10))
    with get_client(sync_client=True) as client:
        run = client.create_flow_run(score_upload, parameters={"prediction_id": prediction_id})
        client.set_flow_run_state(run.id, Running(), force=True)
    assert db.claim_prediction(resources.engine, prediction_id, str(run.id))

    assert sweep(stale_after_seconds=60, now=later(30)) == []  # not silent long enough yet
    [reaped] = sweep(stale_after_seconds=60, now=later(90))
    assert (reaped.prediction_id, reaped.action) == (prediction_id, "requeued")
    assert status_of(resources, prediction_id) == "PENDING"
    state = prefect_api.prefect_run_states([str(run.id)])[str(run.id)]
    assert state in {"CANCELLING", "CANCELLED"}  # the old run is told to stop

    # the next attempt vanishes too; with max_attempts=2 the reaper gives up with a reason
    assert db.claim_prediction(resources.engine, prediction_id, str(run.id))
    [reaped] = sweep(max_attempts=2, stale_after_seconds=60, now=later(90))
    assert reaped.action == "failed"
    row = db.get_prediction(resources.engine, prediction_id)
    assert row.status == "FAILED"
    assert row.error.startswith("scoring was started 2 times and never finished")
    assert "no sign of life for" in row.error
    assert score_upload(prediction_id)["status"] == "SKIPPED"


@pytest.fixture
def stalled_scoring(monkeypatch):
    """score-upload's model loading blocks until released: a run that is slow, or hung (on
    either path, a task run per stage or the small upload's plain calls)."""
    import dataclasses

    import flows.score_upload as module

    release = threading.Event()

    def slowly(load):
        def load_champion_slowly(*args, **kwargs):
            release.wait()
            return load(*args, **kwargs)

        return load_champion_slowly

    for steps in ("TASK_RUNS", "PLAIN_CALLS"):
        real = getattr(module, steps)
        monkeypatch.setattr(module, steps, dataclasses.replace(real, load=slowly(real.load)))
    yield release
    release.set()


def test_hung_a_run_past_its_time_limit_is_timed_out_then_requeued_once(
    resources, stalled_scoring, monkeypatch
):
    from prefect.client.orchestration import get_client

    prediction_id = submit(resources, customers_csv(20))
    monkeypatch.setenv("RETAINWISE_RUN_TIMEOUT_BASE_SECONDS", "0.5")  # limit for 20 rows: ~0.5 s
    with pytest.raises(UploadTimedOut):
        score_upload(prediction_id)
    row = db.get_prediction(resources.engine, prediction_id)
    assert row.status == "PROCESSING"  # left for the reaper, not failed in the customer's face
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(UUID(row.flow_run_id)).state
    assert (state.type.value, state.name) == ("FAILED", "TimedOut")

    [reaped] = sweep(stale_after_seconds=600)
    assert (reaped.prediction_id, reaped.action) == (prediction_id, "requeued")
    assert sweep(stale_after_seconds=600) == []  # once
    assert len(resources.queue.receive(wait_seconds=0)) == 2  # the upload's message and one resend

    stalled_scoring.set()
    monkeypatch.delenv("RETAINWISE_RUN_TIMEOUT_BASE_SECONDS")
    forget_process_resources()  # the next run's process reads the changed environment
    assert score_upload(prediction_id)["status"] == "COMPLETED"
    assert db.get_prediction(resources.engine, prediction_id).attempts == 2


def test_slow_but_alive_a_long_run_that_keeps_refreshing_its_claim_is_left_alone(
    resources, stalled_scoring, monkeypatch
):
    prediction_id = submit(resources, customers_csv(20))
    monkeypatch.setenv("RETAINWISE_CLAIM_REFRESH_SECONDS", "0.05")
    with ThreadPoolExecutor(1) as pool:
        outcome = pool.submit(score_upload, prediction_id)
        first = wait_for(lambda: _processing(resources, prediction_id), 60, "the claim")
        refreshed = wait_for(
            lambda: _refreshed_since(resources, prediction_id, first), 30, "a claim refresh"
        )
        with resources.engine.begin() as conn:  # it has been going for two hours
            conn.execute(
                db.predictions.update()
                .where(db.predictions.c.id == prediction_id)
                .values(started_at=refreshed.updated_at - timedelta(hours=2))
            )
        assert sweep(stale_after_seconds=60, now=later(10)) == []
        stalled_scoring.set()
        assert outcome.result(timeout=120)["status"] == "COMPLETED"
    row = db.get_prediction(resources.engine, prediction_id)
    assert row.attempts == 1 and row.flow_run_id == first.flow_run_id


def _processing(resources, prediction_id):
    row = db.get_prediction(resources.engine, prediction_id)
    return row if row.status == "PROCESSING" else None


def _refreshed_since(resources, prediction_id, first):
    row = db.get_prediction(resources.engine, prediction_id)
    return row if row.updated_at > first.updated_at else None


def _deployment_exists() -> bool:
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_deployment_by_name(DEPLOYMENT)
        except ObjectNotFound:
            return False
    return True
