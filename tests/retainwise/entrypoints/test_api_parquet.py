"""Parquet through the API on real parts (moto, SQLite, a Prefect API): a Parquet upload scores
to the CSV's probabilities, and results and rejects come back as Parquet with ?format=parquet."""

import io

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from fastapi.testclient import TestClient

from retainwise.adapters import accounts
from retainwise.entrypoints.app import create_app
from retainwise.local.sample import synthetic_customers


@pytest.mark.usefixtures("prefect_api")
def test_parquet_in_and_out_gives_the_csvs_probabilities(resources):
    from flows.score_upload import score_upload

    accounts.create_account(resources.engine, "acme")
    auth = {"Authorization": f"Bearer {accounts.create_key(resources.engine, 'acme')['api_key']}"}
    http = TestClient(create_app(resources))
    frame = pd.read_csv(io.StringIO(synthetic_customers(200, seed=4, labeled=False).to_csv()))
    frame = frame.drop(columns=frame.columns[0]).astype({"Tenure Months": object})
    frame.loc[7, "Tenure Months"] = "many"  # one rejected row
    table = pa.Table.from_pandas(frame.astype({"Tenure Months": str}), preserve_index=False)
    out = io.BytesIO()
    pq.write_table(table, out, row_group_size=64)

    ids = {}
    for name, body in {
        "csv": frame.to_csv(index=False).encode(),
        "parquet": out.getvalue(),
    }.items():
        sent = http.post("/uploads", content=body, headers={**auth, "x-filename": f"c.{name}"})
        assert sent.status_code == 202, sent.text
        ids[name] = sent.json()["prediction_id"]
        score_upload(ids[name])

    csv_results = pd.read_csv(
        io.StringIO(http.get(f"/uploads/{ids['csv']}/results", headers=auth).text),
        dtype={"customer_id": str},
    )
    got = http.get(f"/uploads/{ids['parquet']}/results?format=parquet", headers=auth)
    assert got.status_code == 200 and got.headers["content-type"].startswith(
        "application/vnd.apache.parquet"
    )
    parquet_results = pq.read_table(io.BytesIO(got.content)).to_pandas()
    assert len(parquet_results) == 199
    pd.testing.assert_frame_equal(parquet_results, csv_results, check_dtype=False, check_exact=True)
    rejects = http.get(f"/uploads/{ids['parquet']}/rejects?format=parquet", headers=auth)
    assert pq.read_table(io.BytesIO(rejects.content)).num_rows == 1
    assert http.get(f"/uploads/{ids['csv']}/results?format=xml", headers=auth).status_code == 422
