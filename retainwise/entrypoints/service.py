"""What the CLI (and later an HTTP API) does for a customer: submit an upload, ask about it."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Any

import tenacity

from retainwise.adapters import aws

from retainwise.adapters import db
from retainwise.adapters.resources import Resources


def input_key(account: str, prediction_id: str) -> str:
    """Chosen by us: the customer's file name never becomes part of a path."""
    return f"uploads/{account}/{prediction_id}/input"


def submit_upload(env: Resources, data: bytes, *, filename: str | None, account: str,
                  model_name: str) -> str:
    """File to S3, row PENDING, message on SQS, message id on the row; returns the prediction id."""
    prediction_id = str(uuid.uuid4())
    key = input_key(account, prediction_id)
    aws.put_bytes(env.s3, env.settings.bucket, key, data, content_type="application/octet-stream")
    db.create_prediction(env.engine, prediction_id=prediction_id, account=account,
                         model_name=model_name, input_key=key, original_filename=filename)
    message_id = env.queue.send(prediction_id, account, model_name)
    db.record_queued(env.engine, prediction_id, message_id, datetime.now(timezone.utc))
    return prediction_id


def wait_for_final(env: Resources, prediction_id: str, timeout: float = 300,
                   poll: float = 0.25) -> dict[str, Any]:
    """The upload's row once it is COMPLETED or FAILED; polls the database every `poll` s."""
    final = {s.value for s in db.FINAL_STATUSES}

    def read() -> dict[str, Any]:
        row = db.get_prediction(env.engine, prediction_id)
        if row is None:
            raise LookupError(f"no upload with id {prediction_id}")
        return row

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda row: row["status"] not in final),
        stop=tenacity.stop_after_delay(timeout), wait=tenacity.wait_fixed(poll))
    try:
        return retrying(read)
    except tenacity.RetryError as exc:
        row = exc.last_attempt.result()
        raise TimeoutError(f"upload {prediction_id} still {row['status']} after {timeout:.0f} s")


def download_results(env: Resources, prediction_id: str) -> bytes:
    row = db.get_prediction(env.engine, prediction_id)
    if row is None:
        raise LookupError(f"no upload with id {prediction_id}")
    if row["status"] != db.Status.COMPLETED.value:
        raise LookupError(f"upload {prediction_id} is {row['status']}"
                          + (f": {row['error']}" if row.get("error") else ""))
    return aws.get_bytes(env.s3, env.settings.bucket, row["result_key"])
