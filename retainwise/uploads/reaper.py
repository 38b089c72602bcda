"""The reaper: no upload stays PROCESSING forever.

A row is stale when the flow run holding it has ended (Crashed, Failed, Cancelled: the worker died
or could not record an outcome) or when it has held it longer than `stale_after_seconds` (the
whole worker vanished, so nothing told Prefect). A stale row goes back to PENDING with its SQS
message sent again, so a fresh run finishes the job; after `max_attempts` claims it is FAILED with
the reason instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Callable, Iterable

from retainwise.adapters import db
from retainwise.adapters.resources import Resources

log = logging.getLogger("retainwise.uploads.reaper")
ENDED_RUN_STATES = frozenset({"CRASHED", "FAILED", "CANCELLED", "COMPLETED"})
RunStates = Callable[[Iterable[str]], dict[str, str]]


@dataclass(frozen=True)
class Reaped:
    prediction_id: str
    action: str  # "requeued", "failed" or "resent"
    reason: str


def stale_reason(row: dict[str, Any], run_state: str | None, stale_after_seconds: float,
                 now: datetime) -> str | None:
    """Why this PROCESSING row is stale, or None while its run may still be working on it."""
    if run_state in ENDED_RUN_STATES:
        return f"flow run {row['flow_run_id']} ended {run_state} while the upload was PROCESSING"
    started = row["started_at"] or row["updated_at"]
    if started.tzinfo is None:  # SQLite hands back naive datetimes
        started = started.replace(tzinfo=timezone.utc)
    age = (now - started).total_seconds()
    if age > stale_after_seconds:
        return f"PROCESSING for {age:.0f} s with no outcome (limit {stale_after_seconds:.0f} s)"
    return None


def sweep(env: Resources, run_states: RunStates, max_attempts: int = 3,
          stale_after_seconds: float | None = None, now: datetime | None = None) -> list[Reaped]:
    """Requeue or fail every stale PROCESSING row; each change is conditional, so two reapers
    are safe. `now` (default: the clock) is when ages are measured from: tests need not wait."""
    limit = env.settings.stale_after_seconds if stale_after_seconds is None else stale_after_seconds
    rows = db.processing(env.engine)
    states = run_states([r["flow_run_id"] for r in rows if r["flow_run_id"]]) if rows else {}
    now = now or db.utcnow()
    reaped = []
    for row in rows:
        reason = stale_reason(row, states.get(row["flow_run_id"] or ""), limit, now)
        if reason is None:
            continue
        outcome = _requeue_or_fail(env, row, reason, max_attempts, now)
        if outcome:
            log.warning("prediction %s %s: %s", row["id"], outcome.action, reason)
            reaped.append(outcome)
    return reaped + resend_lost_messages(env, limit, now)


def resend_lost_messages(env: Resources, stale_after_seconds: float,
                         now: datetime) -> list[Reaped]:
    """PENDING long after its message was sent: send it again (a duplicate is harmless)."""
    before = now - timedelta(seconds=stale_after_seconds)
    resent = []
    for row in db.pending_since(env.engine, before):
        _send(env, row, now)
        resent.append(Reaped(row["id"], "resent", "PENDING with no run after "
                                                  f"{stale_after_seconds:.0f} s"))
    return resent


def _send(env: Resources, row: dict[str, Any], now: datetime) -> None:
    message_id = env.queue.send(row["id"], row["account"], row["model_name"],
                                attempt=row["attempts"] + 1)
    db.record_queued(env.engine, row["id"], message_id, now)


def _requeue_or_fail(env: Resources, row: dict[str, Any], reason: str, max_attempts: int,
                     now: datetime) -> Reaped | None:
    if row["attempts"] >= max_attempts:
        error = (f"scoring was started {row['attempts']} times and never finished (last: "
                 f"{reason}); upload the file again, or ask support about flow run "
                 f"{row['flow_run_id']}")
        if db.fail_claim(env.engine, row["id"], row["flow_run_id"], error):
            return Reaped(row["id"], "failed", reason)
        return None
    if not db.release_claim(env.engine, row["id"], row["flow_run_id"]):
        return None  # the run finished (or another reaper acted) since we read the row
    _send(env, row, now)  # if this fails, the row is PENDING and the next sweep resends it
    return Reaped(row["id"], "requeued", reason)
