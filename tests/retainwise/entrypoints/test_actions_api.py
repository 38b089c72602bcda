"""GET /uploads/{id}/actions on real parts (moto server, a migrated database): the stored list as
CSV, a page of it as JSON, 409 before it exists, and another account's upload answers 404."""

import io

import pytest
from fastapi.testclient import TestClient

from retainwise.adapters import accounts, aws, db
from retainwise.entrypoints.app import create_app
from retainwise.uploads.actions import ActionsBuilder, actions_key


@pytest.fixture
def http(resources):
    return TestClient(create_app(resources))


def key_of(engine, name: str) -> dict[str, str]:
    accounts.create_account(engine, name)
    return {"Authorization": f"Bearer {accounts.create_key(engine, name)['api_key']}"}


def completed(engine, account: str) -> str:
    prediction_id = db.create_prediction(engine, account=account, model_name="churn", input_key="k")
    assert db.claim_prediction(engine, prediction_id, "run")
    assert db.finish_prediction(engine, prediction_id, "run", db.Status.COMPLETED)
    return prediction_id


def stored_list(tmp_path, rows: int) -> bytes:
    import pandas as pd

    builder = ActionsBuilder(
        lambda X, ids: X.assign(reason_1="a", reason_2="b", reason_3="c"), tmp_path, 5
    )
    ids = [f"c{i}" for i in range(rows)]
    scored = pd.DataFrame(
        {"customer_id": ids, "churn_probability": [i / rows for i in range(rows)]}
    ).assign(churn_risk="LOW")
    builder.add(scored, pd.DataFrame(index=scored.index))
    sink = io.BytesIO()
    builder.write_csv(sink)
    return sink.getvalue()


def test_the_actions_list_as_csv_and_as_json_pages(http, resources, tmp_path):
    engine, settings = resources.engine, resources.settings
    ours, theirs = key_of(engine, "acme"), key_of(engine, "bravo")
    upload = completed(engine, "acme")
    assert http.get(f"/uploads/{upload}/actions", headers=ours).status_code == 409  # not yet
    listed = stored_list(tmp_path, 120)
    aws.put_bytes(resources.s3, settings.bucket, actions_key("acme", upload), listed)
    answer = http.get(f"/uploads/{upload}/actions", headers=ours)
    assert answer.status_code == 200 and answer.content == listed
    page = http.get(
        f"/uploads/{upload}/actions?offset=100&limit=50",
        headers={**ours, "Accept": "application/json"},
    ).json()
    assert [row["rank"] for row in page["actions"]] == list(range(101, 121))
    assert page["next_offset"] is None and page["actions"][0]["customer_id"] == "c19"
    first = http.get(
        f"/uploads/{upload}/actions", headers={**ours, "Accept": "application/json"}
    ).json()
    assert first["next_offset"] == 50 and first["actions"][0]["reason_1"] == "a"
    assert first["actions"][10]["reason_1"] is None  # past the first 5, not HIGH
    other = http.get(f"/uploads/{upload}/actions", headers=theirs)
    missing = http.get("/uploads/no-such-upload/actions", headers=theirs)
    assert other.status_code == missing.status_code == 404


def test_the_actions_list_as_parquet_typed_as_written(http, resources, tmp_path):
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    ours = key_of(resources.engine, "acme")
    upload = completed(resources.engine, "acme")
    listed = stored_list(tmp_path, 30)
    aws.put_bytes(resources.s3, resources.settings.bucket, actions_key("acme", upload), listed)
    answer = http.get(
        f"/uploads/{upload}/actions?format=parquet",
        headers={**ours, "Accept": "application/json"},  # the format asked wins over Accept
    )
    assert answer.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(answer.content))
    types = dict(zip(table.column_names, table.schema.types, strict=True))
    assert types["rank"] == pa.int64() and types["churn_probability"] == pa.float64()
    assert types["customer_id"] == pa.string()
    pd.testing.assert_frame_equal(
        table.to_pandas(), pd.read_csv(io.BytesIO(listed)), check_dtype=False
    )
    bad = http.get(f"/uploads/{upload}/actions?format=xlsx", headers=ours)
    assert bad.status_code == 422
