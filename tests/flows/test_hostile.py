"""The hostile corpus (tests/hostile.py) through score-upload on moto, a real Prefect API and
SQLite, with the limits shrunk so each case is small: every file ends FAILED or scored with a
specific message, memory stays bounded, and the next normal upload still completes."""

import resource

import pytest

from flows.score_upload import score_upload
from retainwise.adapters import db
from tests.helpers import customers_csv, submit
from tests.hostile import Scale, corpus

pytestmark = pytest.mark.usefixtures("prefect_api")


@pytest.mark.timeout(900)  # one flow run per file of the hostile corpus
def test_every_hostile_file_ends_with_a_specific_outcome_and_the_next_upload_completes(
    resources, monkeypatch
):
    scale = Scale.small()
    for name, value in scale.environment().items():
        monkeypatch.setenv(name, value)
    cases = corpus(customers_csv(40, seed=3), scale)
    outcomes, expected = {}, {}
    for case in cases:
        prediction_id = submit(resources, case.data())
        score_upload(prediction_id)  # never raises for a customer's file
        row = db.get_prediction(resources.engine, prediction_id)
        message = row.error or ""
        outcomes[case.name] = (
            row.status,
            case.message in message and "Traceback" not in message,
            message if case.message not in message else "",
        )
        expected[case.name] = (case.status, True, "")
        if row.status == "COMPLETED":
            assert row.rows_total == row.rows_scored + row.rows_rejected > 0
    assert outcomes == expected

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    assert peak_mb < 1536, f"peak RSS {peak_mb:.0f} MB"
    normal = submit(resources, customers_csv(60))
    score_upload(normal)
    row = db.get_prediction(resources.engine, normal)
    assert (row.status, row.rows_scored) == ("COMPLETED", 60), row.error
