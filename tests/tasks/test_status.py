"""claim-upload on SQLite and PostgreSQL: a retried claim keeps the run's own win, no one else's;
keep_claim refreshes a working run's claim and stops a hung one."""

import threading

import pytest

from retainwise.adapters import db


def test_a_retried_claim_is_recognised_as_the_runs_own(migrated_engine):
    from tasks.status import claim_upload

    prediction_id = db.create_prediction(
        migrated_engine, account="acme", model_name="churn", input_key="k"
    )
    first = claim_upload.fn(migrated_engine, prediction_id, "run-1")
    retried = claim_upload.fn(migrated_engine, prediction_id, "run-1")
    assert first.status == retried.status == "PROCESSING"
    assert retried.attempts == 1  # the retry did not count a second attempt
    assert claim_upload.fn(migrated_engine, prediction_id, "run-2") is None
    assert claim_upload.fn(migrated_engine, prediction_id, "") is None


def _claimed(engine) -> tuple[str, object]:
    prediction_id = db.create_prediction(engine, account="acme", model_name="churn", input_key="k")
    assert db.claim_prediction(engine, prediction_id, "run-1")
    return prediction_id, db.get_prediction(engine, prediction_id).updated_at


def test_keep_claim_refreshes_the_claim_while_the_body_runs(migrated_engine):
    from tasks.status import keep_claim

    prediction_id, claimed_at = _claimed(migrated_engine)
    refreshed = threading.Event()

    def advanced() -> bool:
        return db.get_prediction(migrated_engine, prediction_id).updated_at > claimed_at

    with keep_claim(
        migrated_engine, prediction_id, "run-1", limit_seconds=60, refresh_seconds=0.02
    ):
        for _ in range(500):  # the refresher thread's first write, waited for, not slept for
            if advanced():
                refreshed.set()
                break
            refreshed.wait(0.01)
    assert refreshed.is_set()


def test_keep_claim_stops_a_hung_body_at_its_limit(migrated_engine):
    from tasks.status import UploadTimedOut, keep_claim

    prediction_id, _ = _claimed(migrated_engine)
    never = threading.Event()
    with pytest.raises(UploadTimedOut, match="s limit; the reaper will hand it to a new run"):
        with keep_claim(
            migrated_engine, prediction_id, "run-1", limit_seconds=0.2, refresh_seconds=60
        ):
            never.wait()  # hung: nothing will ever set it
    assert db.get_prediction(migrated_engine, prediction_id).status == "PROCESSING"
