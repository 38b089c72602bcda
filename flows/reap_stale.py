"""reap-stale: scheduled sweep that hands dead or hung uploads back to the queue (cancelling their
old runs) or fails them; a run that is alive, however slow, is left alone."""

from __future__ import annotations

from datetime import datetime

from prefect import flow, get_run_logger

from retainwise.adapters.resources import Resources
from tasks.reaper import sweep_stale


@flow(name="reap-stale")
def reap_stale(
    max_attempts: int = 3, stale_after_seconds: float | None = None, now: datetime | None = None
) -> dict[str, list[str]]:
    """`now` (default: the clock) is when upload ages are measured from."""
    env = Resources.of_process()
    reaped = sweep_stale(env, max_attempts, stale_after_seconds, now)
    logger = get_run_logger()
    for item in reaped:
        logger.warning("%s %s: %s", item.prediction_id, item.action, item.reason)
    logger.info("reaped %d stale upload(s)", len(reaped))
    return {
        "requeued": [r.prediction_id for r in reaped if r.action == "requeued"],
        "failed": [r.prediction_id for r in reaped if r.action == "failed"],
    }
