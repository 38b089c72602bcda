"""The embedded stack keeps its data: uploads, results, queued messages and dead letters survive
the local S3/SQS server being killed (as by `stack down` or a reboot) and started again on the same
directory."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import replace

import pytest

from retainwise.adapters import aws, db
from retainwise.adapters.resources import Resources
from retainwise.config.settings import Settings
from retainwise.entrypoints import service
from retainwise.local import stack
from retainwise.runtime.trigger import deployment_starter, handle_message
from tests.conftest import REPO, free_port
from tests.helpers import customers_csv, submit


def start_server(port: int, data, log) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "retainwise.local.aws_server",
            "--port",
            str(port),
            "--data",
            str(data),
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
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


@pytest.fixture(scope="module")
def deployment_id(prefect_api):
    from flows.score_upload import score_upload

    return score_upload.to_deployment(name="score-upload").apply()


def runs_for(deployment_id, prediction_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )
    return [r for r in runs if r.parameters.get("prediction_id") == prediction_id]


def expire(queue, url, message):
    """Visible again now, as if its visibility timeout had run out."""
    queue.sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=0
    )


@pytest.mark.usefixtures("prefect_api")
def test_uploads_and_results_survive_a_restart_byte_for_byte(local_aws):
    from flows.score_upload import score_upload

    env = Resources(Settings())
    done = submit(env, customers_csv(25))
    assert score_upload(done)["status"] == "COMPLETED"
    streamed = customers_csv(9, seed=7)  # as the API and the web app store a file: multipart
    writer = aws.MultipartWriter(env.s3, env.settings.bucket, "uploads/acme/streamed.csv")
    writer.write_part(streamed)
    writer.complete()
    results, row = service.download_results(env, done), db.get_prediction(env.engine, done)

    local_aws()
    env = Resources(Settings())
    assert service.download_results(env, done) == results
    assert db.get_prediction(env.engine, done) == row
    assert aws.get_bytes(env.s3, env.settings.bucket, row.report_key)
    assert aws.get_bytes(env.s3, env.settings.bucket, "uploads/acme/streamed.csv") == streamed


def test_dead_letters_and_receive_counts_survive_a_restart(local_aws):
    env = Resources(Settings())
    queue = env.queue
    queue.sqs.send_message(QueueUrl=queue.url, MessageBody="{not json")
    for _ in range(env.settings.max_receive_count):
        [message] = queue.receive(wait_seconds=0)
        expire(queue, queue.url, message)
    assert queue.receive(wait_seconds=0) == []  # this receive moved it to the DLQ
    queue.sqs.send_message(QueueUrl=queue.url, MessageBody="received once")
    [once] = queue.receive(wait_seconds=0)
    expire(queue, queue.url, once)
    [dead] = aws.list_dead_letters(queue)
    assert dead.body == "{not json"

    local_aws()
    queue = Resources(Settings()).queue
    assert aws.list_dead_letters(queue) == [replace(dead, receive_count=dead.receive_count + 1)]
    [again] = queue.receive(wait_seconds=0)
    assert (again.message_id, again.body) == (once.message_id, "received once")
    assert again.receive_count == 2
    queue.delete(again.receipt_handle)  # a handle given after the restart works


def test_a_queued_upload_runs_once_after_a_restart_even_if_sent_again(local_aws, deployment_id):
    from flows.score_upload import score_upload

    env = Resources(Settings())
    data = customers_csv(7, seed=5)
    queued = submit(env, data)
    message_id = db.get_prediction(env.engine, queued).sqs_message_id

    local_aws()
    env = Resources(Settings())
    [kept] = env.queue.receive(wait_seconds=0)
    assert kept.message_id == message_id and kept.prediction_id == queued
    assert stack.restore_queue(Settings()) == 1  # as `stack up` does for a home without queues.json
    [resent] = env.queue.receive(wait_seconds=0)
    start = deployment_starter("score-upload/score-upload")
    try:
        assert [handle_message(env, m, start) for m in (kept, resent)] == ["started"] * 2
    finally:
        start.close()
    assert len(runs_for(deployment_id, queued)) == 1  # one flow run for the two messages
    assert env.queue.receive(wait_seconds=0) == []
    assert score_upload(queued)["status"] == "COMPLETED"
    assert score_upload(queued)["status"] == "SKIPPED"  # the claim: a second run scores nothing


def in_process_queues():
    """moto in-process (no server): the backends QueueKeeper reads and fills are the same."""
    import boto3
    from moto import mock_aws

    mock = mock_aws()
    mock.start()
    sqs = boto3.client(
        "sqs", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    return mock, sqs


def test_kept_queues_come_back_with_ids_receive_counts_and_redrive(tmp_path):
    from retainwise.local.aws_server import QueueKeeper

    mock, sqs = in_process_queues()
    try:
        dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        url = sqs.create_queue(
            QueueName="main",
            Attributes={
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "2"}),
                "VisibilityTimeout": "0",
            },
        )["QueueUrl"]
        sent = sqs.send_message(QueueUrl=url, MessageBody="b\u00e9")["MessageId"]
        sqs.receive_message(QueueUrl=url)
        QueueKeeper(tmp_path / "queues.json").save()
    finally:
        mock.stop()  # moto forgets everything, as a killed server does

    mock, sqs = in_process_queues()
    try:
        assert QueueKeeper(tmp_path / "queues.json").load() == 1
        url = sqs.get_queue_url(QueueName="main")["QueueUrl"]
        [message] = sqs.receive_message(QueueUrl=url, MessageSystemAttributeNames=["All"])[
            "Messages"
        ]
        assert (message["MessageId"], message["Body"]) == (sent, "b\u00e9")
        assert message["Attributes"]["ApproximateReceiveCount"] == "2"
        assert "Messages" not in sqs.receive_message(QueueUrl=url)  # moved by the redrive
        dlq = sqs.get_queue_url(QueueName="dlq")["QueueUrl"]
        assert sqs.receive_message(QueueUrl=dlq)["Messages"][0]["MessageId"] == sent
    finally:
        mock.stop()


def test_the_keeper_writes_only_when_the_queues_changed(tmp_path):
    from retainwise.local.aws_server import QueueKeeper

    mock, sqs = in_process_queues()
    try:
        url = sqs.create_queue(QueueName="main")["QueueUrl"]
        keeper = QueueKeeper(tmp_path / "queues.json")
        keeper.save()
        keeper.path.unlink()
        sqs.receive_message(QueueUrl=url)  # an empty poll, as the trigger's every second
        keeper.save()
        assert not keeper.path.exists()
        sqs.send_message(QueueUrl=url, MessageBody="x")
        keeper.save()
        assert json.loads(keeper.path.read_text())["queues"][0]["messages"][0]["body"] == "x"
    finally:
        mock.stop()
