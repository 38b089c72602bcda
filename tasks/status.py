"""Prediction status changes, the lifecycle customers see through `retainwise status`."""

from __future__ import annotations

from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from retainwise import db
from tasks.retry import IO_TASK, is_transient


@task(name="claim-upload", cache_policy=NO_CACHE, retry_condition_fn=is_transient, **IO_TASK)
def claim_upload(engine, prediction_id: str, flow_run_id: str | None) -> dict[str, Any] | None:
    """The prediction row if this run won it (PENDING -> PROCESSING), else None."""
    if not db.claim_prediction(engine, prediction_id, flow_run_id):
        return None
    return db.get_prediction(engine, prediction_id)


@task(name="set-status", cache_policy=NO_CACHE, retry_condition_fn=is_transient, **IO_TASK)
def set_status(engine, prediction_id: str, status: db.Status, **fields: Any) -> None:
    db.set_status(engine, prediction_id, status, **fields)
