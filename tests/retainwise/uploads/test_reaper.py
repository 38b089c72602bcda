"""The reaper on SQLite and PostgreSQL with a moto queue: no upload stays PROCESSING forever."""

import json
from datetime import timedelta

import pytest
import sqlalchemy as sa

from retainwise.adapters import db

from retainwise.uploads import reaper
from retainwise.runtime.trigger import idempotency_key


@pytest.fixture
def env(resources, migrated_engine):
    """The test's moto queue with the parametrised database (SQLite, PostgreSQL) behind it."""
    resources.engine = migrated_engine
    return resources


def claimed(env, run_id="run-1", started_ago=0.0) -> str:
    prediction_id = db.create_prediction(env.engine, account="acme", model_name="churn",
                                         input_key="uploads/acme/x/input")
    assert db.claim_prediction(env.engine, prediction_id, run_id)
    if started_ago:
        with env.engine.begin() as conn:
            conn.execute(db.predictions.update().where(db.predictions.c.id == prediction_id)
                         .values(started_at=db.utcnow() - timedelta(seconds=started_ago)))
    return prediction_id


def states(mapping):
    return lambda ids: {i: mapping[i] for i in ids if i in mapping}


def queued_bodies(env):
    messages = env.queue.receive(wait_seconds=0)
    return [json.loads(m["Body"]) for m in messages]


def test_a_crashed_run_is_requeued_at_once_with_a_new_attempt(env):
    prediction_id = claimed(env)
    [reaped] = reaper.sweep(env, states({"run-1": "CRASHED"}), stale_after_seconds=900)
    assert (reaped.prediction_id, reaped.action) == (prediction_id, "requeued")
    assert "ended CRASHED" in reaped.reason

    row = db.get_prediction(env.engine, prediction_id)
    assert row["status"] == "PENDING" and row["attempts"] == 1
    assert queued_bodies(env) == [{"prediction_id": prediction_id, "account": "acme",
                                   "model": "churn", "attempt": 2}]
    assert idempotency_key(row) == f"score-{prediction_id}-attempt-2"
    assert db.claim_prediction(env.engine, prediction_id, "run-2")  # the next run can claim it


def test_a_running_run_is_left_alone_until_the_stale_timeout(env):
    young = claimed(env, "run-young", started_ago=5)
    old = claimed(env, "run-old", started_ago=120)
    running = states({"run-young": "RUNNING", "run-old": "RUNNING"})
    reaped = reaper.sweep(env, running, stale_after_seconds=60)
    assert [(r.prediction_id, r.action) for r in reaped] == [(old, "requeued")]
    assert "PROCESSING for 120 s" in reaped[0].reason
    assert db.get_prediction(env.engine, young)["status"] == "PROCESSING"


def test_after_max_attempts_the_upload_fails_with_the_reason(env):
    prediction_id = claimed(env)
    for attempt in range(2, 4):
        reaper.sweep(env, states({f"run-{attempt - 1}": "CRASHED"}), max_attempts=3)
        assert db.claim_prediction(env.engine, prediction_id, f"run-{attempt}")
    [reaped] = reaper.sweep(env, states({"run-3": "CRASHED"}), max_attempts=3)
    assert reaped.action == "failed"
    row = db.get_prediction(env.engine, prediction_id)
    assert row["status"] == "FAILED" and row["attempts"] == 3
    assert row["error"].startswith("scoring was started 3 times and never finished")
    assert "run-3" in row["error"]


def test_a_run_the_reaper_gave_up_on_cannot_overwrite_the_new_runs_outcome(env):
    prediction_id = claimed(env, "run-slow", started_ago=120)
    reaper.sweep(env, states({}), stale_after_seconds=60)
    assert db.claim_prediction(env.engine, prediction_id, "run-new")
    assert not db.finish_prediction(env.engine, prediction_id, "run-slow", db.Status.FAILED,
                                    error="late")
    assert db.finish_prediction(env.engine, prediction_id, "run-new", db.Status.COMPLETED)
    row = db.get_prediction(env.engine, prediction_id)
    assert row["status"] == "COMPLETED" and row["error"] is None


def test_a_pending_upload_whose_message_was_lost_is_sent_again(env):
    prediction_id = db.create_prediction(env.engine, account="acme", model_name="churn",
                                         input_key="k")
    db.record_queued(env.engine, prediction_id, "lost", db.utcnow() - timedelta(seconds=120))
    fresh = db.create_prediction(env.engine, account="acme", model_name="churn", input_key="k")
    db.record_queued(env.engine, fresh, "fine", db.utcnow())
    reaped = reaper.sweep(env, states({}), stale_after_seconds=60)
    assert [(r.prediction_id, r.action) for r in reaped] == [(prediction_id, "resent")]
    assert [b["prediction_id"] for b in queued_bodies(env)] == [prediction_id]
    assert reaper.sweep(env, states({}), stale_after_seconds=60) == []  # not again at once


def test_finished_rows_are_never_touched(env):
    done = claimed(env, "run-1", started_ago=500)
    assert db.finish_prediction(env.engine, done, "run-1", db.Status.COMPLETED)
    assert reaper.sweep(env, states({"run-1": "COMPLETED"}), stale_after_seconds=60) == []
    with env.engine.connect() as conn:
        statuses = conn.execute(sa.select(db.predictions.c.status)).scalars().all()
    assert statuses == ["COMPLETED"]
