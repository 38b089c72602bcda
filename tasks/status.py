"""Prediction status changes, the lifecycle customers see through `retainwise status`."""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger

from retainwise.adapters import db
from tasks.retry import io_task


@io_task("claim-upload")
def claim_upload(engine, prediction_id: str, flow_run_id: str | None) -> dict[str, Any] | None:
    """The prediction row if this run holds the claim (PENDING -> PROCESSING), else None."""
    return db.claim_or_resume(engine, prediction_id, flow_run_id)


@io_task("finish-upload")
def finish_upload(engine, prediction_id: str, flow_run_id: str | None, status: db.Status,
                  **fields: Any) -> bool:
    """COMPLETED or FAILED, only while this run still holds the claim; False if it lost it."""
    finished = db.finish_prediction(engine, prediction_id, flow_run_id, status, **fields)
    if not finished:
        get_run_logger().warning(
            "prediction %s is no longer held by flow run %s (the reaper handed it to another "
            "run); leaving its status alone", prediction_id, flow_run_id)
    return finished


@io_task("tag-run")
def tag_run(flow_run_id: str, *tags: str) -> None:
    """Add tags (the model version) to this run, known only once the champion is loaded."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
        client.update_flow_run(run.id, tags=sorted(set(run.tags) | set(tags)))
