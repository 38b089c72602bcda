"""The optional top_reasons column (RETAINWISE_TOP_REASONS), end to end through score-upload."""

import pytest

from flows.score_upload import score_upload
from tests.helpers import customers_csv, results_of, submit

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_reasons_column_is_added_only_when_switched_on(resources, monkeypatch):
    monkeypatch.setenv("RETAINWISE_TOP_REASONS", "true")
    prediction_id = submit(resources, customers_csv(120))
    score_upload(prediction_id)
    results = results_of(resources, prediction_id)
    assert list(results.columns)[-1] == "top_reasons" and len(results) == 120
    high = results.loc[results["churn_risk"] == "HIGH", "top_reasons"]
    assert not high.empty and high.str.contains(r" is .* \([+-]\d", regex=True).all()
    assert high.str.split("; ").map(len).max() <= 3
