"""The SQS trigger: one message -> one run of the `score-upload` deployment, never two.

A message is deleted only after its flow run exists; one it cannot act on stays on the queue and
reaches the dead-letter queue after `maxReceiveCount` receives.
"""

from __future__ import annotations

import json
import logging
import threading
from typing import Any, Callable

from retainwise import db
from retainwise.resources import Resources

log = logging.getLogger("retainwise.trigger")
StartRun = Callable[[dict[str, Any]], str]


def parse_message(body: str) -> dict[str, Any] | None:
    try:
        payload = json.loads(body)
    except json.JSONDecodeError:
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("prediction_id"), str):
        return None
    return payload


def idempotency_key(prediction: dict[str, Any]) -> str:
    """One flow run per prediction and attempt: a redelivery is a no-op, a reaper retry is not."""
    attempts = prediction.get("attempts") or 0
    return f"score-{prediction['id']}" + (f"-attempt-{attempts + 1}" if attempts else "")


def deployment_starter(deployment_name: str) -> StartRun:
    """Creates the flow run, named and tagged so the Prefect UI shows whose upload it is."""
    from prefect.deployments import run_deployment

    def start(prediction: dict[str, Any]) -> str:
        run = run_deployment(
            deployment_name, parameters={"prediction_id": prediction["id"]},
            flow_run_name=f"score-{prediction['id']}",
            idempotency_key=idempotency_key(prediction), timeout=0, as_subflow=False,
            tags=[f"account:{prediction['account']}", f"model:{prediction['model_name']}"],
        )
        return str(run.id)

    return start


def handle_message(env: Resources, message: dict[str, Any], start_run: StartRun) -> str:
    """Returns what happened: 'started', or why the message was left for redrive."""
    payload = parse_message(message.get("Body", ""))
    if payload is None:
        log.warning("message %s is not a valid upload message; leaving it for the DLQ",
                    message.get("MessageId"))
        return "unparseable"
    prediction = db.get_prediction(env.engine, payload["prediction_id"])
    if prediction is None:
        log.warning("message %s names unknown prediction %s; leaving it for the DLQ",
                    message.get("MessageId"), payload["prediction_id"])
        return "unknown-prediction"
    if prediction["status"] != db.Status.PENDING.value:
        # a late duplicate: a run already holds or finished the upload, so there is nothing to do
        env.queue.delete(message["ReceiptHandle"])
        log.info("message %s: prediction %s is already %s; deleted", message.get("MessageId"),
                 prediction["id"], prediction["status"])
        return "already-" + prediction["status"].lower()
    flow_run_id = start_run(prediction)
    env.queue.delete(message["ReceiptHandle"])
    log.info("prediction %s -> flow run %s", prediction["id"], flow_run_id)
    return "started"


def run_trigger(env: Resources, start_run: StartRun, stop: threading.Event,
                wait_seconds: int = 1) -> None:
    while not stop.is_set():
        try:
            messages = env.queue.receive(wait_seconds=wait_seconds)
        except Exception:  # the queue being briefly unreachable must not kill the trigger
            log.exception("receiving from SQS failed; retrying")
            stop.wait(2)
            continue
        for message in messages:
            try:
                handle_message(env, message, start_run)
            except Exception:
                log.exception("message %s failed; it will be redelivered", message.get("MessageId"))
