"""The reaper on SQLite and PostgreSQL with a moto queue: no upload stays PROCESSING forever, and a
run that is alive (its claim refreshed) is never handed to a second run. Time is passed in."""

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from retainwise.adapters import db


@pytest.fixture
def env(resources, migrated_engine):
    """The test's moto queue with the parametrised database (SQLite, PostgreSQL) behind it."""
    resources.engine = migrated_engine
    return resources


def claimed(env, run_id="run-1", started_ago=0.0, refreshed_ago=None) -> str:
    """A PROCESSING row claimed `started_ago` s ago, its claim last refreshed `refreshed_ago` s
    ago (by default at the claim)."""
    prediction_id = db.create_prediction(
        env.engine, account="acme", model_name="churn", input_key="uploads/acme/x/input"
    )
    assert db.claim_prediction(env.engine, prediction_id, run_id)
    now = db.utcnow()
    refreshed_ago = started_ago if refreshed_ago is None else refreshed_ago
    with env.engine.begin() as conn:
        conn.execute(
            db.predictions.update()
            .where(db.predictions.c.id == prediction_id)
            .values(
                started_at=now - timedelta(seconds=started_ago),
                updated_at=now - timedelta(seconds=refreshed_ago),
            )
        )
    return prediction_id


def states(mapping):
    return lambda ids: {i: mapping[i] for i in ids if i in mapping}


class Cancels(list):
    """Records the reaper's cancel requests: (flow run id, why)."""

    def __call__(self, flow_run_id, why):
        self.append((flow_run_id, why))


def sweep(env, run_states, cancels=None, **options):
    from tasks import reaper

    return reaper.sweep(env, run_states, cancels if cancels is not None else Cancels(), **options)


def queued_bodies(env):
    messages = env.queue.receive(wait_seconds=0)
    return [json.loads(m.body) for m in messages]


def test_a_crashed_run_is_requeued_at_once_with_a_new_attempt(env):
    from retainwise.runtime.trigger import idempotency_key

    prediction_id = claimed(env)
    cancels = Cancels()
    [reaped] = sweep(env, states({"run-1": "CRASHED"}), cancels, stale_after_seconds=900)
    assert cancels == []  # a crashed run has nothing left to cancel
    assert (reaped.prediction_id, reaped.action) == (prediction_id, "requeued")
    assert "ended CRASHED" in reaped.reason

    row = db.get_prediction(env.engine, prediction_id)
    assert row.status == "PENDING" and row.attempts == 1
    assert queued_bodies(env) == [
        {"prediction_id": prediction_id, "account": "acme", "model": "churn", "attempt": 2}
    ]
    assert idempotency_key(row) == f"score-{prediction_id}-attempt-2"
    assert db.claim_prediction(env.engine, prediction_id, "run-2")  # the next run can claim it


def test_slow_but_alive_is_left_alone_however_long_it_has_been_running(env):
    slow = claimed(env, "run-slow", started_ago=7200, refreshed_ago=20)
    cancels = Cancels()
    assert sweep(env, states({"run-slow": "RUNNING"}), cancels, stale_after_seconds=60) == []
    assert db.get_prediction(env.engine, slow).status == "PROCESSING"
    assert cancels == [] and queued_bodies(env) == []


def test_dead_silent_past_the_limit_is_requeued_and_its_old_run_cancelled(env):
    dead = claimed(env, "run-dead", started_ago=200, refreshed_ago=130)
    cancels = Cancels()
    reaped = sweep(env, states({"run-dead": "RUNNING"}), cancels, stale_after_seconds=60)
    assert [(r.prediction_id, r.action) for r in reaped] == [(dead, "requeued")]
    assert "no sign of life for 130 s" in reaped[0].reason
    assert [run for run, _ in cancels] == ["run-dead"]
    assert f"requeued upload {dead}" in cancels[0][1]
    assert [b["prediction_id"] for b in queued_bodies(env)] == [dead]


def test_the_same_row_later_is_judged_by_the_now_passed_in(env):
    prediction_id = claimed(env, "run-1")
    running = states({"run-1": "RUNNING"})
    assert (
        sweep(env, running, stale_after_seconds=60, now=db.utcnow() + timedelta(seconds=30)) == []
    )
    [reaped] = sweep(env, running, stale_after_seconds=60, now=db.utcnow() + timedelta(seconds=90))
    assert reaped.prediction_id == prediction_id and reaped.action == "requeued"


def test_hung_timed_out_is_requeued_once_without_a_cancel(env):
    hung = claimed(env, "run-hung", started_ago=400, refreshed_ago=5)
    cancels = Cancels()
    timed_out = states({"run-hung": "FAILED"})  # Prefect's TimedOut is a Failed state
    [reaped] = sweep(env, timed_out, cancels, stale_after_seconds=60)
    assert (reaped.prediction_id, reaped.action) == (hung, "requeued")
    assert "ended FAILED" in reaped.reason
    assert cancels == []  # it has ended: nothing to stop
    assert sweep(env, timed_out, cancels, stale_after_seconds=60) == []  # once, not again
    assert [b["prediction_id"] for b in queued_bodies(env)] == [hung]


def test_a_claim_refreshed_while_the_reaper_decides_is_not_taken(env):
    """The release is conditional on the refresh the reaper saw: a run that speaks up in between
    keeps its claim."""
    prediction_id = claimed(env, "run-1", started_ago=120)

    def states_then_refresh(ids):
        assert db.refresh_claim(env.engine, prediction_id, "run-1")
        return {"run-1": "RUNNING"}

    cancels = Cancels()
    assert sweep(env, states_then_refresh, cancels, stale_after_seconds=60) == []
    row = db.get_prediction(env.engine, prediction_id)
    assert row.status == "PROCESSING" and row.flow_run_id == "run-1"
    assert cancels == [] and queued_bodies(env) == []


def test_a_claim_can_be_refreshed_only_by_the_run_holding_it(env):
    prediction_id = claimed(env, "run-1", started_ago=120)
    before = db.get_prediction(env.engine, prediction_id).updated_at
    assert not db.refresh_claim(env.engine, prediction_id, "run-other")
    assert db.refresh_claim(env.engine, prediction_id, "run-1")
    assert db.get_prediction(env.engine, prediction_id).updated_at > before
    assert db.release_claim(env.engine, prediction_id, "run-1")
    assert not db.refresh_claim(env.engine, prediction_id, "run-1")  # released: gone


def test_after_max_attempts_the_upload_fails_with_the_reason(env):
    prediction_id = claimed(env)
    for attempt in range(2, 4):
        sweep(env, states({f"run-{attempt - 1}": "CRASHED"}), max_attempts=3)
        assert db.claim_prediction(env.engine, prediction_id, f"run-{attempt}")
    [reaped] = sweep(env, states({"run-3": "CRASHED"}), max_attempts=3)
    assert reaped.action == "failed"
    row = db.get_prediction(env.engine, prediction_id)
    assert row.status == "FAILED" and row.attempts == 3
    assert row.error.startswith("scoring was started 3 times and never finished")
    assert "run-3" in row.error


def test_a_run_the_reaper_gave_up_on_cannot_overwrite_the_new_runs_outcome(env):
    prediction_id = claimed(env, "run-slow", started_ago=120)
    sweep(env, states({}), stale_after_seconds=60)
    assert db.claim_prediction(env.engine, prediction_id, "run-new")
    assert not db.finish_prediction(
        env.engine, prediction_id, "run-slow", db.Status.FAILED, error="late"
    )
    assert db.finish_prediction(env.engine, prediction_id, "run-new", db.Status.COMPLETED)
    row = db.get_prediction(env.engine, prediction_id)
    assert row.status == "COMPLETED" and row.error is None


def test_a_pending_upload_whose_message_was_lost_is_sent_again(env):
    prediction_id = db.create_prediction(
        env.engine, account="acme", model_name="churn", input_key="k"
    )
    db.record_queued(env.engine, prediction_id, "lost", db.utcnow() - timedelta(seconds=120))
    fresh = db.create_prediction(env.engine, account="acme", model_name="churn", input_key="k")
    db.record_queued(env.engine, fresh, "fine", db.utcnow())
    reaped = sweep(env, states({}), stale_after_seconds=60)
    assert [(r.prediction_id, r.action) for r in reaped] == [(prediction_id, "resent")]
    assert [b["prediction_id"] for b in queued_bodies(env)] == [prediction_id]
    assert sweep(env, states({}), stale_after_seconds=60) == []  # not again at once


def test_finished_rows_are_never_touched(env):
    done = claimed(env, "run-1", started_ago=500)
    assert db.finish_prediction(env.engine, done, "run-1", db.Status.COMPLETED)
    assert sweep(env, states({"run-1": "COMPLETED"}), stale_after_seconds=60) == []
    with env.engine.connect() as conn:
        statuses = conn.execute(sa.select(db.predictions.c.status)).scalars().all()
    assert statuses == ["COMPLETED"]
