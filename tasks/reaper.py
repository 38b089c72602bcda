"""The reaper: no upload stays PROCESSING forever, and no live run is ever run twice.

A PROCESSING row is stale when the flow run holding it has ended (Crashed, Failed, Cancelled, or
TimedOut: the run's time limit, `time_limit`, passed) or when its claim has not been refreshed for
`stale_after_seconds` (the run refreshes it every `claim_refresh_seconds` while it works, so
silence means the process vanished and nothing told Prefect). A run that is slow but alive keeps
refreshing and is left alone however long it has been going. A stale row goes back to PENDING
with its SQS message sent again and its old flow run cancelled through the Prefect API, so a fresh
run finishes the job; after `max_attempts` claims it is FAILED with the reason instead.

It lives in tasks/, the lowest layer that may act on the database, SQS and Prefect together (the
domain packages get such things passed in; flows may not hold logic): `sweep_stale` is the
reap-stale flow's task, and the score-upload flow reads `time_limit` from here.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from retainwise.adapters import db, prefect_api, webhooks
from retainwise.adapters.resources import Resources
from retainwise.config.settings import Settings
from tasks.retry import io_task

log = logging.getLogger("tasks.reaper")
ENDED_RUN_STATES = frozenset({"CRASHED", "FAILED", "CANCELLED", "COMPLETED"})
RunStates = Callable[[Iterable[str]], dict[str, str]]
CancelRun = Callable[[str, str], object]  # (flow run id, why); what it returns is unused


@dataclass(frozen=True)
class Reaped:
    prediction_id: str
    action: str  # "requeued", "failed" or "resent"
    reason: str


def time_limit(size_bytes: int, settings: Settings) -> float:
    """Seconds a run may spend on a file of this size: a fixed allowance plus a floor throughput.

    The floor (1 MB/s by default) is about 14x below the chunked path's measured 14 MB/s, so a
    slow machine never hits it; a run past it is hung, and Prefect records it TimedOut.
    """
    return settings.run_timeout_base_seconds + size_bytes / settings.run_timeout_bytes_per_second


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # SQLite: naive


def stale_reason(
    row: db.Prediction, run_state: str | None, stale_after_seconds: float, now: datetime
) -> str | None:
    """Why this PROCESSING row is stale, or None while its run may still be working on it."""
    if run_state in ENDED_RUN_STATES:
        return f"flow run {row.flow_run_id} ended {run_state} while the upload was PROCESSING"
    last = row.updated_at or row.started_at  # the claim's last refresh
    assert last is not None  # a PROCESSING row was claimed: started_at is set
    refreshed = _aware(last)
    silent = (now - refreshed).total_seconds()
    if silent > stale_after_seconds:
        return (
            f"PROCESSING with no sign of life for {silent:.0f} s "
            f"(limit {stale_after_seconds:.0f} s)"
        )
    return None


def sweep(
    env: Resources,
    run_states: RunStates,
    cancel_run: CancelRun,
    max_attempts: int = 3,
    stale_after_seconds: float | None = None,
    now: datetime | None = None,
) -> list[Reaped]:
    """Requeue or fail every stale PROCESSING row and cancel its old run; each change is
    conditional, so two reapers are safe. `now` (default: the clock) is when ages are
    measured from: tests need not wait."""
    limit = env.settings.stale_after_seconds if stale_after_seconds is None else stale_after_seconds
    now = now or db.utcnow()
    rows = db.processing(env.engine)
    states = run_states([r.flow_run_id for r in rows if r.flow_run_id]) if rows else {}
    reaped = []
    for row in rows:
        state = states.get(row.flow_run_id or "")
        reason = stale_reason(row, state, limit, now)
        if reason is None:
            continue
        outcome = _requeue_or_fail(env, row, reason, max_attempts, now)
        if outcome is None:
            continue
        log.warning("prediction %s %s: %s", row.id, outcome.action, reason)
        reaped.append(outcome)
        if row.flow_run_id and state not in ENDED_RUN_STATES:
            _cancel(
                cancel_run,
                row.flow_run_id,
                f"the reaper {outcome.action} upload {row.id}: {reason}",
            )
    return reaped + resend_lost_messages(env, limit, now)


def _cancel(cancel_run: CancelRun, flow_run_id: str, why: str) -> None:
    """Best effort: the claim is already released, so a run that lingers cannot record anything."""
    try:
        cancel_run(flow_run_id, why)
    except Exception:
        log.exception("could not cancel flow run %s", flow_run_id)


def resend_lost_messages(
    env: Resources, stale_after_seconds: float, now: datetime | None = None
) -> list[Reaped]:
    """PENDING long after its message was sent: send it again (a duplicate is harmless)."""
    now = now or db.utcnow()
    resent = []
    for row in db.pending_since(env.engine, now - timedelta(seconds=stale_after_seconds)):
        _send(env, row, now)
        resent.append(
            Reaped(row.id, "resent", f"PENDING with no run after {stale_after_seconds:.0f} s")
        )
    return resent


def _send(env: Resources, row: db.Prediction, now: datetime) -> None:
    message_id = env.queue.send(row.id, row.account, row.model_name, attempt=row.attempts + 1)
    db.record_queued(env.engine, row.id, message_id, now)


def _requeue_or_fail(
    env: Resources, row: db.Prediction, reason: str, max_attempts: int, now: datetime
) -> Reaped | None:
    if row.attempts >= max_attempts:
        error = (
            f"scoring was started {row.attempts} times and never finished (last: "
            f"{reason}); upload the file again, or ask support about flow run "
            f"{row.flow_run_id}"
        )
        if db.fail_claim(
            env.engine, row.id, row.flow_run_id, error, row.updated_at, webhooks.enqueue_final
        ):
            return Reaped(row.id, "failed", reason)
        return None
    if not db.release_claim(env.engine, row.id, row.flow_run_id, row.updated_at):
        return None  # the run finished, refreshed its claim, or another reaper acted meanwhile
    _send(env, row, now)  # if this fails, the row is PENDING and the next sweep resends it
    return Reaped(row.id, "requeued", reason)


@io_task("sweep-stale-uploads")
def sweep_stale(
    env: Resources, max_attempts: int, stale_after_seconds: float | None, now: datetime | None
) -> list[Reaped]:
    """One sweep against the Prefect API's run states, retried on transient faults."""
    return sweep(
        env,
        prefect_api.prefect_run_states,
        prefect_api.cancel_flow_run,
        max_attempts,
        stale_after_seconds,
        now,
    )
