"""The HTTP upload API on the same real parts as the CLI (moto server, SQLite, Prefect API)."""

import pytest
from fastapi.testclient import TestClient

from flows.score_upload import score_upload
from retainwise.entrypoints.api import create_app
from tests.helpers import customers_csv


@pytest.fixture
def http(resources):
    return TestClient(create_app(resources))


@pytest.mark.usefixtures("prefect_api")
def test_upload_over_http_then_fetch_status_and_results(http, resources):
    response = http.post("/uploads?account=acme", content=customers_csv(25),
                         headers={"x-filename": "../../etc/passwd"})
    assert response.status_code == 202
    prediction_id = response.json()["prediction_id"]
    assert http.get(f"/uploads/{prediction_id}").json()["status"] == "PENDING"
    assert http.get(f"/uploads/{prediction_id}/results").status_code == 409

    [message] = resources.queue.receive(wait_seconds=1)
    assert prediction_id in message["Body"]
    from retainwise.adapters import db

    row = db.get_prediction(resources.engine, prediction_id)
    assert row["input_key"] == f"uploads/acme/{prediction_id}/input"  # never the user's name
    score_upload(prediction_id)

    status = http.get(f"/uploads/{prediction_id}").json()
    assert (status["status"], status["rows_scored"]) == ("COMPLETED", 25)
    results = http.get(f"/uploads/{prediction_id}/results")
    assert results.status_code == 200 and len(results.text.strip().splitlines()) == 26


def test_unknown_upload_is_404(http):
    assert http.get("/uploads/nope").status_code == 404
