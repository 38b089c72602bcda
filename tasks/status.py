"""Prediction status changes, the lifecycle customers see through `retainwise status`."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from prefect import get_run_logger

from retainwise.adapters import db, webhooks
from retainwise.config.errors import PermanentError
from tasks.retry import io_task

log = logging.getLogger("retainwise.tasks.status")


class UploadTimedOut(PermanentError, TimeoutError):
    """The run outlived its time limit; Prefect records it TimedOut and the reaper hands the
    upload to a fresh run. Permanent: no task retries it within this run."""


@io_task("claim-upload")
def claim_upload(engine, prediction_id: str, flow_run_id: str | None) -> db.Prediction | None:
    """The prediction row if this run holds the claim (PENDING -> PROCESSING), else None."""
    return db.claim_or_resume(engine, prediction_id, flow_run_id)


@io_task("finish-upload")
def finish_upload(
    engine, prediction_id: str, flow_run_id: str | None, status: db.Status, **fields: Any
) -> bool:
    """COMPLETED or FAILED, only while this run still holds the claim; False if it lost it."""
    finished = db.finish_prediction(
        engine, prediction_id, flow_run_id, status, on_final=webhooks.enqueue_final, **fields
    )
    if not finished:
        get_run_logger().warning(
            "prediction %s is no longer held by flow run %s (the reaper handed it to another "
            "run); leaving its status alone",
            prediction_id,
            flow_run_id,
        )
    return finished


@io_task("tag-run")
def tag_run(flow_run_id: str, *tags: str, replacing: str | None = None) -> None:
    """Add tags (the model version) to this run, known only once the champion is loaded;
    tags starting with `replacing` go (a version the trigger guessed before a promotion)."""
    from uuid import UUID

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        run = client.read_flow_run(UUID(flow_run_id))
        kept = {t for t in run.tags if not (replacing and t.startswith(replacing))}
        client.update_flow_run(run.id, tags=sorted(kept | set(tags)))


@contextmanager
def keep_claim(
    engine,
    prediction_id: str,
    flow_run_id: str | None,
    limit_seconds: float,
    refresh_seconds: float,
) -> Iterator[None]:
    """Refresh the claim every `refresh_seconds` while the body runs, so the reaper sees a slow
    run is alive; stop the body with UploadTimedOut after `limit_seconds`, so a hung one ends.

    The refreshes also stop at the limit: a run stuck where the timeout cannot reach it falls
    silent, and the reaper treats it as dead. Uses Prefect's own timeout (SIGALRM on the main
    thread, an exception sent to the thread otherwise), as a flow's `timeout_seconds` does.
    """
    from prefect.utilities.timeout import timeout

    stop = threading.Event()
    deadline = time.monotonic() + limit_seconds

    def refresh() -> None:
        while not stop.wait(refresh_seconds) and time.monotonic() < deadline:
            try:
                if not db.refresh_claim(engine, prediction_id, flow_run_id):
                    log.warning(
                        "prediction %s: claim of flow run %s is gone; no more refreshes",
                        prediction_id,
                        flow_run_id,
                    )
                    return
            except Exception:  # a database blip: the next refresh may get through
                log.warning(
                    "prediction %s: refreshing the claim failed", prediction_id, exc_info=True
                )

    refresher = threading.Thread(target=refresh, name=f"claim-{prediction_id}", daemon=True)
    refresher.start()
    try:
        with timeout(limit_seconds, UploadTimedOut):
            yield
    except UploadTimedOut:
        raise UploadTimedOut(
            f"upload {prediction_id} was still being scored after its "
            f"{limit_seconds:.0f} s limit; the reaper will hand it to a new "
            "run"
        ) from None
    finally:
        stop.set()
        refresher.join()
