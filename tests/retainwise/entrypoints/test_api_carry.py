"""Carried columns through the API on real parts (moto, SQLite, a Prefect API): the account's
choice, an upload's own `carry` winning over it, Parquet results keeping the cells as text, and
requests past the caps refused before a byte is stored."""

import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from retainwise.adapters import accounts, db
from retainwise.entrypoints.app import create_app
from retainwise.local.sample import synthetic_customers


@pytest.mark.usefixtures("prefect_api")
def test_the_accounts_columns_or_the_uploads_own_come_back_as_text(resources):
    from flows.score_upload import score_upload

    accounts.create_account(resources.engine, "acme")
    accounts.set_columns(resources.engine, "acme", carry_columns=("email",))
    auth = {"Authorization": f"Bearer {accounts.create_key(resources.engine, 'acme')['api_key']}"}
    http = TestClient(create_app(resources))
    frame = synthetic_customers(60, seed=4, labeled=False).astype(str)
    frame["email"] = [f"c{i}@example.com" for i in range(60)]
    frame["account_no"] = [f"{i:06d}" for i in range(60)]
    body = frame.to_csv(index=False).encode()

    def upload(query: str) -> str:
        sent = http.post(f"/uploads{query}", content=body, headers=auth)
        assert sent.status_code == 202, sent.text
        score_upload(sent.json()["prediction_id"])
        return sent.json()["prediction_id"]

    by_account, own = upload(""), upload("?carry=account_no,Tenure%20Months")
    assert db.get_prediction(resources.engine, own).carry_columns == ("account_no", "Tenure Months")
    header = http.get(f"/uploads/{by_account}/results", headers=auth).text.splitlines()[0]
    assert header == "customer_id,churn_probability,churn_risk,predicted_churn,email"
    got = http.get(f"/uploads/{own}/results?format=parquet", headers=auth)
    table = pq.read_table(io.BytesIO(got.content))
    assert table.column_names[4:] == ["Tenure Months", "account_no"]  # the file's order
    assert table.schema.field("account_no").type == pa.string()
    assert table.column("account_no").to_pylist()[:2] == ["000000", "000001"]
    csv = pd.read_csv(io.StringIO(http.get(f"/uploads/{by_account}/results", headers=auth).text))
    assert csv["churn_probability"].tolist() == table.column("churn_probability").to_pylist()


@pytest.mark.usefixtures("prefect_api")
def test_a_missing_carried_column_fails_the_upload_naming_it(resources):
    from flows.score_upload import score_upload

    accounts.create_account(resources.engine, "acme")
    auth = {"Authorization": f"Bearer {accounts.create_key(resources.engine, 'acme')['api_key']}"}
    http = TestClient(create_app(resources))
    body = synthetic_customers(30, seed=4, labeled=False).to_csv(index=False).encode()
    sent = http.post("/uploads?carry=email,phone", content=body, headers=auth)
    score_upload(sent.json()["prediction_id"])
    row = http.get(f"/uploads/{sent.json()['prediction_id']}", headers=auth).json()
    assert row["status"] == "FAILED" and "not in the file: 'email', 'phone'" in row["error"]


def test_too_many_or_too_long_carried_columns_are_refused(resources):
    accounts.create_account(resources.engine, "acme")
    auth = {"Authorization": f"Bearer {accounts.create_key(resources.engine, 'acme')['api_key']}"}
    http = TestClient(create_app(resources))
    many = ",".join(f"c{i}" for i in range(21))
    for query in (f"carry={many}", f"carry={'x' * 101}"):
        sent = http.post(f"/uploads?{query}", content=b"a,b\n1,2\n", headers=auth)
        assert sent.status_code == 400, sent.text
    form = http.post(
        "/uploads", files={"file": ("a.csv", b"a,b\n1,2\n")}, data={"carry": many}, headers=auth
    )
    assert form.status_code == 400 and "limit is 20 columns" in form.json()["detail"]
    assert db.list_predictions(resources.engine, "acme", 10, 0) == []
