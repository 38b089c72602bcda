"""claim-upload on SQLite and PostgreSQL: a retried claim keeps the run's own win, no one else's."""

from retainwise.adapters import db
from tasks.status import claim_upload


def test_a_retried_claim_is_recognised_as_the_runs_own(migrated_engine):
    prediction_id = db.create_prediction(migrated_engine, account="acme", model_name="churn",
                                         input_key="k")
    first = claim_upload.fn(migrated_engine, prediction_id, "run-1")
    retried = claim_upload.fn(migrated_engine, prediction_id, "run-1")
    assert first["status"] == retried["status"] == "PROCESSING"
    assert retried["attempts"] == 1  # the retry did not count a second attempt
    assert claim_upload.fn(migrated_engine, prediction_id, "run-2") is None
    assert claim_upload.fn(migrated_engine, prediction_id, "") is None
