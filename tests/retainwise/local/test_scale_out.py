"""Scale-out: a burst of uploads through the trigger to two warm runner services on a Prefect
server backed by PostgreSQL (a throwaway database on the machine's server): every upload runs
exactly once."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import warnings

import pytest

from retainwise.adapters import db
from retainwise.local.stack import runner_services, stop_group, wait_for_deployment, wait_healthy
from retainwise.runtime.trigger import deployment_starter, run_trigger
from tests.conftest import REPO, free_port, throwaway_postgres
from tests.helpers import customers_csv, submit, wait_for

UPLOADS = 8


@pytest.fixture
def prefect_database():
    with throwaway_postgres("retainwise_prefect") as url:
        yield url


def spawn(argv, log, env) -> subprocess.Popen:
    return subprocess.Popen(
        argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )


@pytest.mark.timeout(1200)  # a Prefect server on PostgreSQL, two runners, a burst of uploads
def test_a_burst_to_two_runners_on_a_postgresql_prefect_server_runs_each_upload_once(
    resources, prefect_database, tmp_path, monkeypatch
):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    port = free_port()
    api = f"http://127.0.0.1:{port}/api"
    monkeypatch.setenv("RETAINWISE_RUNNERS", "2")
    from retainwise.config.settings import Settings

    runners = runner_services(Settings())
    assert [r.name for r in runners] == ["runner-1", "runner-2"]
    env = {
        **os.environ,
        "PREFECT_API_URL": api,
        "PREFECT_HOME": str(tmp_path / "prefect"),
        "PREFECT_LOGGING_LEVEL": "WARNING",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    processes = []
    try:
        with open(tmp_path / "services.log", "ab") as log:
            server = spawn(
                [
                    sys.executable,
                    "-m",
                    "retainwise.runtime.prefect_server",
                    "--port",
                    str(port),
                    "--database-url",
                    prefect_database,
                ],
                log,
                env,
            )
            processes.append(server)
            wait_healthy(f"{api}/health", 180, server, tmp_path / "services.log")
            for runner in runners:
                processes.append(spawn([*runner.argv, "--only", "score-upload"], log, env))
        with temporary_settings({PREFECT_API_URL: api}):
            wait_for_deployment("score-upload/score-upload", 180, api)
            uploads = [submit(resources, customers_csv(10 + i, seed=i)) for i in range(UPLOADS)]
            stop = threading.Event()
            start = deployment_starter("score-upload/score-upload")
            trigger = threading.Thread(target=run_trigger, args=(resources, start, stop))
            trigger.start()
            try:
                wait_for(
                    lambda: all(_final(resources, p) for p in uploads),
                    300,
                    "every upload to finish",
                    poll=0.25,
                )
            finally:
                stop.set()
                trigger.join(30)
                start.close()
            with get_client(sync_client=True) as client:
                # a row is COMPLETED before its run ends (monitoring figures follow): wait for
                # the runs too, so none is cut short by the teardown's SIGTERM
                runs = wait_for(
                    lambda: _final_runs(client, UPLOADS), 120, "every flow run to end", poll=0.25
                )
    finally:
        stopped = {
            f"{process.args[2]} (pid {process.pid})": stop_group(process.pid, grace=30)
            for process in reversed(processes)
        }
        for process in processes:
            process.poll()  # stop_group reaped it; let Popen know
    if not all(stopped.values()):  # the worker's own tests pin SIGTERM; here it only warns
        log = (tmp_path / "services.log").read_text(errors="replace")[-8000:]
        warnings.warn(
            f"needed SIGKILL after 30 s: {stopped}; services.log ends:\n{log}", stacklevel=1
        )
    rows = [db.get_prediction(resources.engine, p) for p in uploads]
    assert [(r.status, r.attempts) for r in rows] == [("COMPLETED", 1)] * UPLOADS
    by_upload = {}
    for run in runs:
        by_upload.setdefault(run.parameters["prediction_id"], []).append(run)
    assert sorted(by_upload) == sorted(uploads)
    assert all(
        len(r) == 1 and r[0].run_count == 1 and r[0].state.is_completed()
        for r in by_upload.values()
    )


def _final_runs(client, count: int) -> list | None:
    runs = client.read_flow_runs()
    return runs if len(runs) >= count and all(r.state.is_final() for r in runs) else None


def _final(resources, prediction_id) -> bool:
    return db.get_prediction(resources.engine, prediction_id).status in {"COMPLETED", "FAILED"}
