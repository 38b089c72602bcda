"""What the CLI, the HTTP API and the web app do for a customer: submit an upload, ask about it,
fetch its files."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import tenacity

from retainwise.adapters import aws, db
from retainwise.adapters.resources import Resources
from retainwise.uploads.output import result_keys


def input_key(account: str, prediction_id: str) -> str:
    """Chosen by us: the customer's file name never becomes part of a path."""
    return f"uploads/{account}/{prediction_id}/input"


def new_upload(account: str) -> tuple[str, str]:
    """A fresh prediction id and the S3 key its input goes to."""
    prediction_id = str(uuid.uuid4())
    return prediction_id, input_key(account, prediction_id)


def submit_upload(
    env: Resources,
    data: bytes,
    *,
    filename: str | None,
    account: str,
    model_name: str,
    carry: tuple[str, ...] = (),
) -> str:
    """File to S3, row PENDING, message on SQS, message id on the row; returns the prediction id.
    `carry`: input columns copied into the results (else the account's choice)."""
    carry = db.carry_names(carry)  # refused before a byte is stored
    prediction_id, key = new_upload(account)
    aws.put_bytes(env.s3, env.settings.bucket, key, data, content_type="application/octet-stream")
    enqueue_upload(
        env,
        prediction_id,
        key,
        filename=filename,
        account=account,
        model_name=model_name,
        carry=carry,
    )
    return prediction_id


def enqueue_upload(
    env: Resources,
    prediction_id: str,
    key: str,
    *,
    filename: str | None,
    account: str,
    model_name: str,
    carry: tuple[str, ...] = (),
) -> None:
    """For a file already in S3 at `key`: the PENDING row, then the SQS message."""
    db.create_prediction(
        env.engine,
        prediction_id=prediction_id,
        account=account,
        model_name=model_name,
        input_key=key,
        original_filename=filename,
        carry_columns=carry,
    )
    message_id = env.queue.send(prediction_id, account, model_name)
    db.record_queued(env.engine, prediction_id, message_id, datetime.now(UTC))


def wait_for_final(
    env: Resources, prediction_id: str, timeout: float = 300, poll: float = 0.25
) -> db.Prediction:
    """The upload's row once it is COMPLETED or FAILED; polls the database every `poll` s."""

    def read() -> db.Prediction:
        row = db.get_prediction(env.engine, prediction_id)
        if row is None:
            raise LookupError(f"no upload with id {prediction_id}")
        return row

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda row: not row.final),
        stop=tenacity.stop_after_delay(timeout),
        wait=tenacity.wait_fixed(poll),
    )
    try:
        return retrying(read)
    except tenacity.RetryError as exc:
        row = exc.last_attempt.result()
        raise TimeoutError(
            f"upload {prediction_id} still {row.status} after {timeout:.0f} s"
        ) from None


def download_results(env: Resources, prediction_id: str) -> bytes:
    row = db.get_prediction(env.engine, prediction_id)
    if row is None:
        raise LookupError(f"no upload with id {prediction_id}")
    return aws.get_bytes(env.s3, env.settings.bucket, results_key(row))


def results_key(row: db.Prediction) -> str:
    """Where a COMPLETED upload's results are; LookupError naming the status otherwise."""
    if row.status is not db.Status.COMPLETED or row.result_key is None:
        raise LookupError(
            f"upload {row.id} is {row.status}" + (f": {row.error}" if row.error else "")
        )
    return row.result_key


class NotReady(LookupError):
    """The upload exists but this file of it does not (yet, or because the upload failed)."""


OUTPUT_FILES = {
    "results": "results",
    "rejects": "rejects",
    "report": "report_html",
    "report.json": "report",
}


def output_key(row: db.Prediction, which: str) -> str:
    """The S3 key of one of an upload's files, or NotReady saying why there is none."""
    if not row.final or (which == "results" and row.status is not db.Status.COMPLETED):
        raise _no_file(row, which)
    return getattr(result_keys(row.account, row.id), OUTPUT_FILES[which])


def open_output(env: Resources, row: db.Prediction, which: str):
    """The file's blocks from S3 (streamed, never read whole); NotReady if it was never written."""
    from botocore.exceptions import ClientError

    key = output_key(row, which)
    try:
        aws.object_size(env.s3, env.settings.bucket, key)
    except ClientError:  # a run that failed before writing it
        raise _no_file(row, which) from None
    return aws.iter_blocks(env.s3, env.settings.bucket, key)


def _no_file(row: db.Prediction, which: str) -> NotReady:
    return NotReady(
        f"upload {row.id} is {row.status}"
        + (f": {row.error}" if row.error else "")
        + f"; it has no {which} file"
        + ("" if row.final else " yet")
    )


def record_outcomes(
    env: Resources, prediction_id: str, account: str, data: bytes
) -> dict[str, Any]:
    """Join an outcomes file to the upload's stored results and store it (replacing an earlier one).

    Another account's upload answers exactly like a missing one. Of the results file only the
    file's customers are read (streamed, three columns): memory follows the outcomes file.
    """
    from retainwise.adapters import outcomes as outcomes_table
    from retainwise.modelops.outcomes import join_outcomes, outcome_ids
    from retainwise.uploads.reading import read_table

    row = db.get_prediction(env.engine, prediction_id)
    if row is None or row.account != account:
        raise LookupError(f"no upload with id {prediction_id}")
    frame = read_table(data, env.settings.max_outcomes_bytes)
    results = outcomes_table.scored_rows(
        env.s3, env.settings.bucket, results_key(row), outcome_ids(frame)
    )
    joined = join_outcomes(frame, results)
    stored = outcomes_table.replace_outcomes(env.engine, prediction_id, account, joined.rows)
    return {
        "prediction_id": prediction_id,
        "model": row.model_name,
        "model_version": row.model_version,
        "stored": stored,
        **joined.summary(),
    }
