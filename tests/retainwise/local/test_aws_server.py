"""The embedded stack keeps its data: uploads, results and queued uploads survive the local S3/SQS
server being killed (as by `stack down` or a reboot) and started again on the same directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import pytest

from flows.score_upload import score_upload
from retainwise.adapters import aws, db
from retainwise.adapters.resources import Resources
from retainwise.config.settings import Settings
from retainwise.entrypoints import service
from retainwise.local import stack
from tests.conftest import REPO, free_port
from tests.helpers import customers_csv, submit


def start_server(port: int, data, log) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-m", "retainwise.local.aws_server", "--port", str(port),
         "--data", str(data)], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server exited early"
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/moto-api/", timeout=2)
            return process
        except OSError:
            time.sleep(0.2)  # polling for readiness, not waiting for time to pass
    raise AssertionError("the local AWS server did not start")


def kill(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGKILL)  # no goodbye: what a reboot does
    process.wait(10)


@pytest.fixture
def local_aws(stack_env, monkeypatch, tmp_path):
    """The embedded stack's S3/SQS server (not the session's moto) behind the test's settings."""
    port, data = free_port(), tmp_path / "aws"
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    log = open(tmp_path / "aws.log", "ab")
    servers = [start_server(port, data, log)]
    aws.ensure_resources(Settings())

    def restart() -> None:
        kill(servers[-1])
        servers.append(start_server(port, data, log))
        aws.ensure_resources(Settings())

    yield restart
    for process in servers:
        if process.poll() is None:
            kill(process)
    log.close()


@pytest.mark.usefixtures("prefect_api")
def test_uploads_results_and_queued_uploads_survive_a_restart(local_aws):
    env = Resources(Settings())
    done = submit(env, customers_csv(25))
    assert score_upload(done)["status"] == "COMPLETED"
    queued_data = customers_csv(7, seed=5)
    queued = submit(env, queued_data)
    env.queue.receive(wait_seconds=0)  # drain: the queue as the trigger left it
    results, row = service.download_results(env, done), db.get_prediction(env.engine, done)

    local_aws()
    env = Resources(Settings())
    assert service.download_results(env, done) == results
    assert db.get_prediction(env.engine, done) == row
    assert aws.get_bytes(env.s3, env.settings.bucket, row["report_key"])
    assert aws.get_bytes(env.s3, env.settings.bucket,
                         db.get_prediction(env.engine, queued)["input_key"]) == queued_data

    assert stack.restore_queue(Settings()) == 1  # queues come back empty; the database knows
    [message] = env.queue.receive(wait_seconds=0)
    assert json.loads(message["Body"])["prediction_id"] == queued
    assert score_upload(queued)["status"] == "COMPLETED"
