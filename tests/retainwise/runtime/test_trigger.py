"""The SQS trigger against moto and a real Prefect API: one message, one flow run, one result."""

import json
import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from retainwise.adapters import db
from retainwise.runtime.trigger import (
    champion_versions,
    deployment_starter,
    handle_batch,
    handle_message,
    raise_if_busy,
    retry_busy,
    run_trigger,
)
from tests.helpers import customers_csv, results_of, submit


@pytest.fixture(scope="module")
def deployment_id(prefect_api):
    from flows.score_upload import score_upload

    return score_upload.to_deployment(name="score-upload").apply()


def runs_of(deployment_id):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )


def runs_for(deployment_id, prediction_id):
    return [r for r in runs_of(deployment_id) if r.parameters.get("prediction_id") == prediction_id]


def receive_all(queue, expected: int):
    messages = []
    for _ in range(10):
        messages += queue.receive(wait_seconds=1)
        if len(messages) >= expected:
            break
    return messages


def test_one_message_starts_one_named_flow_run(resources, deployment_id):
    # an account of its own: the session's Prefect API outlives this test, and a cap left on the
    # shared account would hold later tests' task runs (a killed run's slot is never given back
    # by a server started without its services)
    from prefect.client.orchestration import get_client

    prediction_id = submit(resources, customers_csv(20), account="capped")
    [message] = receive_all(resources.queue, 1)
    start = deployment_starter("score-upload/score-upload", account_limit=3)
    try:
        assert handle_message(resources, message, start) == "started"

        [run] = runs_for(deployment_id, prediction_id)
        assert run.name == f"score-{prediction_id}"
        assert "account:capped" in run.tags
        assert resources.queue.receive(wait_seconds=0) == []  # deleted once the run existed
        with get_client(sync_client=True) as client:  # the account's cap, on the Prefect side too
            assert client.read_global_concurrency_limit_by_name("account:capped").limit == 3
    finally:
        with get_client(sync_client=True) as client:
            client.delete_global_concurrency_limit_by_name("account:capped")


def test_a_run_is_created_with_the_champion_version_tag_when_the_trigger_knows_it(
    resources, deployment_id
):
    prediction_id = submit(resources, customers_csv(20))
    [message] = receive_all(resources.queue, 1)
    start = deployment_starter("score-upload/score-upload", model_version=lambda name: "7")
    assert handle_message(resources, message, start) == "started"
    [run] = runs_for(deployment_id, prediction_id)
    assert "model-version:7" in run.tags


def test_champion_versions_are_read_once_per_ttl_and_a_failure_gives_none():
    clock, reads = [0.0], []

    def read(name):
        reads.append(name)
        if name == "broken":
            raise RuntimeError("MLflow unreachable")
        return str(len(reads))

    version = champion_versions(read, ttl=5.0, now=lambda: clock[0])
    assert version("churn") == "1" and version("churn") == "1"
    clock[0] = 5.1
    assert version("churn") == "2"
    assert version("broken") is None
    assert reads == ["churn", "churn", "broken"]


def test_the_same_message_twice_gives_one_run_and_one_result(resources, deployment_id):
    from flows.score_upload import score_upload

    prediction_id = submit(resources, customers_csv(30))
    resources.queue.send(prediction_id, "acme", "churn")
    messages = receive_all(resources.queue, 2)
    assert len(messages) == 2
    start = deployment_starter("score-upload/score-upload")
    for message in messages:
        assert handle_message(resources, message, start) == "started"
    assert len(runs_for(deployment_id, prediction_id)) == 1

    # even if two workers ran it, the claim lets only one produce results
    outcomes = sorted(score_upload(prediction_id)["status"] for _ in range(2))
    assert outcomes == ["COMPLETED", "SKIPPED"]
    assert len(results_of(resources, prediction_id)) == 30


def test_redelivery_after_a_crash_before_delete_starts_no_second_run(resources, deployment_id):
    prediction_id = submit(resources, customers_csv(5))
    [message] = receive_all(resources.queue, 1)
    real_start = deployment_starter("score-upload/score-upload")

    def start_then_crash(prediction):
        real_start(prediction)
        raise ConnectionError("trigger died before deleting the message")

    with pytest.raises(ConnectionError):
        handle_message(resources, message, start_then_crash)
    resources.queue.sqs.change_message_visibility(
        QueueUrl=resources.queue.url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=0
    )
    [again] = receive_all(resources.queue, 1)
    assert handle_message(resources, again, real_start) == "started"
    assert len(runs_for(deployment_id, prediction_id)) == 1


@pytest.mark.parametrize(
    "body",
    ["not json", json.dumps({"no": "id"}), json.dumps({"prediction_id": "00000000-dead-beef"})],
)
def test_a_message_it_cannot_act_on_is_left_for_the_dead_letter_queue(resources, body):
    resources.queue.sqs.send_message(QueueUrl=resources.queue.url, MessageBody=body)
    [message] = receive_all(resources.queue, 1)
    outcome = handle_message(resources, message, lambda p: pytest.fail("must not start a run"))
    assert outcome in {"unparseable", "unknown-prediction"}
    # not deleted: after its visibility timeout it comes back, and SQS redrives it to the DLQ
    resources.queue.sqs.change_message_visibility(
        QueueUrl=resources.queue.url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=0
    )
    assert len(receive_all(resources.queue, 1)) == 1
    assert db.get_prediction(resources.engine, "00000000-dead-beef") is None


def expire(queue, message):
    """Make a received message visible again now, as if its visibility timeout had run out."""
    queue.sqs.change_message_visibility(
        QueueUrl=queue.url, ReceiptHandle=message.receipt_handle, VisibilityTimeout=0
    )


def test_a_malformed_message_reaches_the_dlq_after_three_receives_and_can_be_redriven(
    resources, deployment_id, capsys
):
    from retainwise.entrypoints import cli

    queue = resources.queue
    queue.sqs.send_message(QueueUrl=queue.url, MessageBody="{not json")
    good = submit(resources, customers_csv(5))
    start = deployment_starter("score-upload/score-upload")
    outcomes = []
    for _ in range(4):  # the 4th receive finds the malformed one moved to the DLQ by SQS
        for message in queue.receive(wait_seconds=0):
            outcomes.append(handle_message(resources, message, start))
            if outcomes[-1] == "unparseable":
                expire(queue, message)
    assert outcomes.count("unparseable") == 3 and outcomes.count("started") == 1
    assert queue.receive(wait_seconds=0) == []
    assert len(runs_for(deployment_id, good)) == 1  # nothing else affected

    capsys.readouterr()
    assert cli.main(["dlq", "list"]) == 0
    [listed] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert listed["body"] == "{not json" and listed["prediction_id"] is None

    assert cli.main(["dlq", "redrive", "--id", "no-such-id"]) == 0
    assert "moved 0 message(s)" in capsys.readouterr().out
    assert cli.main(["dlq", "redrive", "--id", listed["message_id"]]) == 0
    assert "moved 1 message(s)" in capsys.readouterr().out
    [back] = receive_all(queue, 1)
    assert back.body == "{not json"
    assert cli.main(["dlq", "list"]) == 0 and capsys.readouterr().out == ""


def test_a_late_duplicate_of_a_finished_upload_is_deleted_without_a_run(resources, deployment_id):
    from flows.score_upload import score_upload

    prediction_id = submit(resources, customers_csv(5))
    [message] = receive_all(resources.queue, 1)
    assert score_upload(prediction_id)["status"] == "COMPLETED"
    assert (
        handle_message(resources, message, lambda p: pytest.fail("no run")) == "already-completed"
    )
    assert resources.queue.receive(wait_seconds=0) == []


def test_after_the_reaper_requeues_a_crashed_upload_a_fresh_run_finishes_it(
    resources, deployment_id
):
    from flows.score_upload import score_upload
    from tasks import reaper

    prediction_id = submit(resources, customers_csv(8))
    start = deployment_starter("score-upload/score-upload")
    [message] = receive_all(resources.queue, 1)
    handle_message(resources, message, start)
    [first] = runs_for(deployment_id, prediction_id)
    assert db.claim_prediction(resources.engine, prediction_id, str(first.id))  # then it "dies"

    [reaped] = reaper.sweep(
        resources, lambda ids: {str(first.id): "CRASHED"}, lambda run, why: None
    )
    assert reaped.action == "requeued"
    [again] = receive_all(resources.queue, 1)
    assert handle_message(resources, again, start) == "started"
    runs = runs_for(deployment_id, prediction_id)
    assert len(runs) == 2 and {r.name for r in runs} == {f"score-{prediction_id}"}
    assert score_upload(prediction_id)["status"] == "COMPLETED"
    row = db.get_prediction(resources.engine, prediction_id)
    assert row.status is db.Status.COMPLETED and row.attempts == 2
    assert len(results_of(resources, prediction_id)) == 8


def test_a_burst_through_the_running_trigger_gives_one_run_per_upload_and_empties_the_queue(
    resources, deployment_id
):
    ids = [submit(resources, customers_csv(5)) for _ in range(12)]
    for prediction_id in ids[:3]:  # duplicates, received in the same or a later batch
        resources.queue.send(prediction_id, "acme", "churn")
    start = deployment_starter("score-upload/score-upload")
    stop = threading.Event()
    trigger = threading.Thread(
        target=run_trigger,
        args=(resources, start, stop),
        kwargs={"wait_seconds": 0, "concurrency": 4},
    )
    trigger.start()
    try:
        for _ in range(300):
            if all(runs_for(deployment_id, i) for i in ids) and not queue_depth(resources.queue):
                break
            stop.wait(0.2)
    finally:
        stop.set()
        trigger.join(timeout=60)
        start.close()
    assert [len(runs_for(deployment_id, i)) for i in ids] == [1] * len(ids)
    assert queue_depth(resources.queue) == 0  # every message, duplicates too, deleted


def queue_depth(queue) -> int:
    attributes = queue.sqs.get_queue_attributes(
        QueueUrl=queue.url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def test_in_a_batch_each_message_is_deleted_only_once_its_run_exists(
    resources, deployment_id, monkeypatch
):
    ids = [submit(resources, customers_csv(5)) for _ in range(6)]
    messages = receive_all(resources.queue, len(ids))
    prediction_of = {m.receipt_handle: m.prediction_id for m in messages}
    queue_class = type(resources.queue)
    real_delete = queue_class.delete
    runs_when_deleted = {}

    def checking_delete(queue, receipt_handle):
        prediction_id = prediction_of[receipt_handle]
        runs_when_deleted[prediction_id] = len(runs_for(deployment_id, prediction_id))
        real_delete(queue, receipt_handle)

    monkeypatch.setattr(queue_class, "delete", checking_delete)
    start = deployment_starter("score-upload/score-upload")
    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = handle_batch(resources, messages, start, pool)
    start.close()
    assert outcomes == ["started"] * len(ids)
    assert runs_when_deleted == {i: 1 for i in ids}


def test_one_failing_creation_in_a_batch_leaves_only_its_message_on_the_queue(
    resources, deployment_id
):
    ids = [submit(resources, customers_csv(5)) for _ in range(4)]
    messages = receive_all(resources.queue, len(ids))
    real_start = deployment_starter("score-upload/score-upload")

    def start(prediction):
        if prediction.id == ids[0]:
            raise ConnectionError("the Prefect API went away")
        return real_start(prediction)

    with ThreadPoolExecutor(max_workers=4) as pool:
        outcomes = handle_batch(resources, messages, start, pool)
    real_start.close()
    outcome_of = {m.prediction_id: o for m, o in zip(messages, outcomes, strict=True)}
    assert outcome_of == {ids[0]: "failed", **{i: "started" for i in ids[1:]}}
    assert runs_for(deployment_id, ids[0]) == []
    [failed] = [m for m in messages if m.prediction_id == ids[0]]
    expire(resources.queue, failed)  # still there, for redelivery (and the DLQ after 3 receives)
    [again] = receive_all(resources.queue, 1)
    assert again.prediction_id == ids[0]


def busy(status: int = 503) -> httpx.HTTPStatusError:
    request = httpx.Request("POST", "http://prefect.invalid/api/deployments/x/create_flow_run")
    return httpx.HTTPStatusError(
        "busy", request=request, response=httpx.Response(status, request=request)
    )


def test_retry_busy_retries_a_busy_api_with_short_waits_until_it_answers():
    answers = iter([busy(), busy(503), busy(429), "run"])
    waits = []

    def call():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert retry_busy(call, timeout=60, sleep=waits.append) == "run"
    assert len(waits) == 3 and all(0 <= wait <= 1.0 for wait in waits)


@pytest.mark.parametrize("error", [busy(404), busy(422), ValueError("bad parameters")])
def test_retry_busy_does_not_retry_what_a_retry_cannot_fix(error):
    calls = []

    def call():
        calls.append(1)
        raise error

    with pytest.raises(type(error)):
        retry_busy(call, timeout=60, sleep=lambda _: pytest.fail("must not wait"))
    assert len(calls) == 1


def test_retry_busy_gives_up_once_its_time_is_up():
    with pytest.raises(httpx.HTTPStatusError):
        retry_busy(lambda: (_ for _ in ()).throw(busy()), timeout=0, sleep=lambda _: None)


def test_a_busy_answer_raises_before_the_prefect_client_can_sleep_on_it():
    request = httpx.Request("POST", "http://prefect.invalid/api/x")
    with pytest.raises(httpx.HTTPStatusError):
        raise_if_busy(httpx.Response(503, request=request))
    raise_if_busy(httpx.Response(201, request=request))  # anything else passes through
    raise_if_busy(httpx.Response(404, request=request))


def test_a_recreated_deployment_is_looked_up_again_after_one_refusal(resources, prefect_api):
    """The starter caches the deployment's id; if the deployment was deleted and registered
    again, one creation fails (its message stays for redelivery) and the next finds the new id."""
    from prefect.client.orchestration import get_client

    from flows.score_upload import score_upload

    old_id = score_upload.to_deployment(name="recreated").apply()
    start = deployment_starter("score-upload/recreated")
    first = submit(resources, customers_csv(10))
    assert handle_message(resources, receive_all(resources.queue, 1)[0], start) == "started"
    with get_client(sync_client=True) as client:
        client.delete_deployment(old_id)
    new_id = score_upload.to_deployment(name="recreated").apply()
    assert new_id != old_id

    second = submit(resources, customers_csv(10))
    [message] = receive_all(resources.queue, 1)
    with pytest.raises(httpx.HTTPStatusError, match="404"):
        handle_message(resources, message, start)
    assert handle_message(resources, message, start) == "started"  # the redelivery
    assert [r.parameters["prediction_id"] for r in runs_of(new_id)] == [second]
    assert first != second


def test_deployment_for_sends_files_above_the_chunked_threshold_to_the_large_deployment():
    from retainwise.config.settings import Settings
    from retainwise.runtime.trigger import deployment_for

    settings = Settings(chunked_above_bytes=1000)
    assert deployment_for(1000, settings) == "score-upload/score-upload"
    assert deployment_for(1001, settings) == "score-upload/score-upload-large"


def test_the_trigger_routes_each_upload_by_its_objects_size(resources, prefect_api):
    """Real S3 objects on moto and real runs of two deployments: small to the warm runner's
    score-upload, large to score-upload-large (its own Fargate task in production)."""
    from flows.score_upload import score_upload
    from retainwise.runtime.trigger import routed_by_size

    small_id = score_upload.to_deployment(name="score-upload").apply()
    large_id = score_upload.to_deployment(name="score-upload-large").apply()
    resources.settings.chunked_above_bytes = len(customers_csv(30))
    small, large = submit(resources, customers_csv(30)), submit(resources, customers_csv(31))
    starters = {
        name: deployment_starter(name)
        for name in ("score-upload/score-upload", "score-upload/score-upload-large")
    }
    try:
        start = routed_by_size(resources, starters)
        outcomes = [handle_message(resources, m, start) for m in receive_all(resources.queue, 2)]
    finally:
        for starter in starters.values():
            starter.close()
    assert outcomes == ["started", "started"]
    assert len(runs_for(small_id, small)) == 1 and runs_for(small_id, large) == []
    assert len(runs_for(large_id, large)) == 1 and runs_for(large_id, small) == []
    # each run is told the size routing found, so it need not ask S3 again
    assert runs_for(small_id, small)[0].parameters["stored_bytes"] == len(customers_csv(30))
    assert runs_for(large_id, large)[0].parameters["stored_bytes"] == len(customers_csv(31))
