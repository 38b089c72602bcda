"""The actions list and each customer's history, end to end through score-upload (issue 19):
two uploads of the same customers, some moved to month-to-month contracts in between."""

import io
import math
from datetime import UTC, datetime

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from flows.score_upload import score_upload
from retainwise.adapters import accounts, aws, db
from retainwise.entrypoints.app import create_app
from retainwise.local.sample import synthetic_customers
from retainwise.uploads.actions import ACTION_COLUMNS, VALUE_AT_RISK, actions_key
from tests.helpers import results_of, submit

pytestmark = pytest.mark.usefixtures("prefect_api")
REASON = r"^.+ is .+ \([+-]\d+\.\d\d\)$"
MOVED = 40  # customers on a one- or two-year contract moved to month-to-month


@pytest.fixture(params=["whole", "chunked"])
def path(request, monkeypatch):
    if request.param == "chunked":
        monkeypatch.setenv("RETAINWISE_CHUNKED_ABOVE_BYTES", "1000")
        monkeypatch.setenv("RETAINWISE_CHUNK_BYTES", "8000")
        monkeypatch.setattr(aws, "READ_BLOCK", 8_000)  # chunks are cut from blocks: several
    return request.param


def scored(resources, frame: pd.DataFrame) -> tuple[str, pd.DataFrame]:
    """The upload's id and its actions list as stored."""
    prediction_id = submit(resources, frame.to_csv(index=False).encode())
    assert score_upload(prediction_id)["status"] == "COMPLETED"
    key = actions_key("acme", prediction_id)
    data = aws.get_bytes(resources.s3, resources.settings.bucket, key)
    return prediction_id, pd.read_csv(io.BytesIO(data), dtype={"customer_id": str})


def test_second_upload_marks_risen_customers_and_history_adds_up(resources, path):
    accounts.create_account(resources.engine, "acme")
    key = accounts.create_key(resources.engine, "acme")["api_key"]
    first = synthetic_customers(300, seed=21, labeled=False)
    first_id, before = scored(resources, first)

    assert list(results_of(resources, first_id).columns) == [
        "customer_id",
        "churn_probability",
        "churn_risk",
        "predicted_churn",
    ]
    assert list(before.columns) == ACTION_COLUMNS and len(before) == 300
    assert before["rank"].tolist() == list(range(1, 301))
    assert before["churn_probability"].is_monotonic_decreasing
    assert (before["risk_change"] == "new").all() and before["previous_probability"].isna().all()
    high = before[before["churn_risk"] == "HIGH"]
    assert len(high) > 10
    for column in ("reason_1", "reason_2", "reason_3"):
        assert high[column].str.match(REASON).all()
    shares = high[["reason_1", "reason_2", "reason_3"]].apply(
        lambda texts: texts.str.extract(r"\(([+-][\d.]+)\)$")[0].astype(float)
    )
    assert (shares.diff(axis=1).iloc[:, 1:] <= 0).all().all()  # largest contribution first

    second = first.copy()
    moved = second.index[second["Contract"] != "Month-to-month"][:MOVED]
    second.loc[moved, "Contract"] = "Month-to-month"
    second_id, after = scored(resources, second)

    then = before.set_index("customer_id")["churn_probability"]
    now = after.set_index("customer_id")
    rose = now.index[now["churn_probability"] > then.reindex(now.index) + 1e-9]
    assert len(rose) > 0 and set(rose) <= set(second.loc[moved, "customer_id"])
    assert set(now.index[now["risk_change"] == "up"]) == set(rose)
    unmoved = ~now.index.isin(second.loc[moved, "customer_id"])
    assert (now.loc[unmoved, "risk_change"] == "same").all()
    assert now.loc[rose, "previous_probability"].to_numpy() == pytest.approx(
        then[rose].to_numpy(), abs=1e-9
    )

    customer_id = rose[0]
    answer = TestClient(create_app(resources)).get(
        f"/customers/{customer_id}", headers={"Authorization": f"Bearer {key}"}
    )
    assert answer.status_code == 200
    body = answer.json()
    assert [h["prediction_id"] for h in body["history"]] == [second_id, first_id]
    assert body["history"][1]["churn_probability"] == pytest.approx(then[customer_id], abs=1e-9)
    explanation = body["explanation"]
    assert explanation["prediction_id"] == second_id
    total = explanation["base_value"] + math.fsum(
        c["contribution"] for c in explanation["contributions"]
    )
    assert abs(total - explanation["margin"]) < 1e-6
    contract = [c for c in explanation["contributions"] if c["feature"] == "Contract"]
    assert contract[0]["value"] == "Month-to-month"
    completed = [db.get_prediction(resources.engine, p).completed_at for p in (second_id, first_id)]
    dated = [datetime.fromisoformat(h["completed_at"]) for h in body["history"]]
    assert dated == [moment.replace(tzinfo=moment.tzinfo or UTC) for moment in completed]

    # what changed is named: every customer who moved and rose says first that its contract
    # was one or two years (its value changed and its contribution rose since its explanation
    # in the first upload), and no one else says "was" (nothing else changed)
    moved_ids = second.loc[moved, "customer_id"]
    assert set(rose) == set(moved_ids)  # all 40 moved customers rose
    was = first.set_index("customer_id").loc[rose, "Contract"]
    named = now.loc[rose, "reason_1"]
    expected = r"^Contract is Month-to-month \(\+\d\.\d\d, was (One year|Two year)\)$"
    assert named.str.match(expected).all(), named[~named.str.match(expected)]
    assert (named.str.extract(r"was (.+)\)$")[0] == was).all()
    assert len(named) == MOVED and was.nunique() == 2
    others = now.loc[~now.index.isin(rose), ["reason_1", "reason_2", "reason_3"]].fillna("")
    assert not others.apply(lambda column: column.str.contains(", was ")).any().any()
    assert (
        not now.loc[rose, ["reason_2", "reason_3"]]
        .apply(lambda column: column.str.contains(", was "))
        .any()
        .any()
    )


def test_an_accounts_value_column_ranks_the_list_by_value_at_risk(resources, path):
    accounts.create_account(resources.engine, "acme")
    accounts.set_columns(resources.engine, "acme", "Lifetime value", None)
    frame = synthetic_customers(200, seed=22, labeled=False)
    frame["Lifetime value"] = [str(100 + (i * 53) % 900) for i in range(200)]
    frame.loc[7, "Lifetime value"] = "unknown"
    _, listed = scored(resources, frame)
    assert list(listed.columns) == ACTION_COLUMNS + [VALUE_AT_RISK]
    assert listed[VALUE_AT_RISK].iloc[:-1].is_monotonic_decreasing
    assert listed["customer_id"].iloc[-1] == frame.loc[7, "customer_id"]
    assert pd.isna(listed[VALUE_AT_RISK].iloc[-1])
