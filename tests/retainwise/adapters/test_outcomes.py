"""The outcomes table on SQLite and PostgreSQL: stored beside the score, replaced per upload,
scoped; and an upload's scored rows read from S3 for a join."""

import pandas as pd

from retainwise.adapters import db
from retainwise.adapters.outcomes import labelled_rows, replace_outcomes, scored_rows
from tests.retainwise.adapters.test_aws import s3 as s3  # the moto bucket fixture


def joined(ids, churned):
    return pd.DataFrame(
        {
            "customer_id": ids,
            "churned": churned,
            "churn_probability": [0.5 + i / 100 for i in range(len(ids))],
            "churn_risk": ["MEDIUM"] * len(ids),
            "observed_at": pd.Series([pd.NaT] * len(ids), dtype="datetime64[ns, UTC]"),
        }
    )


def completed(engine, account: str, version: str = "1") -> str:
    prediction_id = db.create_prediction(engine, account=account, model_name="churn", input_key="k")
    assert db.claim_prediction(engine, prediction_id, "run")
    assert db.finish_prediction(
        engine, prediction_id, "run", db.Status.COMPLETED, model_version=version
    )
    return prediction_id


def test_a_second_file_replaces_the_first(migrated_engine):
    upload = completed(migrated_engine, "acme")
    assert (
        replace_outcomes(migrated_engine, upload, "acme", joined(["a", "b", "c"], [1, 0, 1])) == 3
    )
    assert replace_outcomes(migrated_engine, upload, "acme", joined(["a", "d"], [0, 1])) == 2
    rows = labelled_rows(migrated_engine, "churn")
    assert rows["customer_id"].tolist() == ["a", "d"] and rows["churned"].tolist() == [0, 1]
    assert rows["model_version"].tolist() == ["1", "1"]


def test_reads_are_scoped_by_account_and_upload(migrated_engine):
    mine, theirs = completed(migrated_engine, "acme"), completed(migrated_engine, "globex", "2")
    replace_outcomes(migrated_engine, mine, "acme", joined(["a"], [1]))
    replace_outcomes(migrated_engine, theirs, "globex", joined(["a", "b"], [0, 0]))
    assert labelled_rows(migrated_engine, account="acme")["prediction_id"].tolist() == [mine]
    assert len(labelled_rows(migrated_engine, prediction_id=theirs)) == 2
    assert len(labelled_rows(migrated_engine, "churn")) == 3


def test_only_the_named_customers_scored_rows_are_read_from_s3(s3):  # noqa: F811
    """Streamed from a real (moto) object: three columns, the named ids, duplicates kept."""
    customers = [f"c{i}" for i in range(50_000)]
    results = pd.DataFrame(
        {
            "customer_id": [*customers, "c7", "'=x"],
            "churn_probability": [i / 50_002 for i in range(50_002)],
            "churn_risk": ["LOW"] * 50_002,
            "predicted_churn": [0] * 50_002,
        }
    )
    s3.put_object(Bucket="writes", Key="r.csv", Body=results.to_csv(index=False).encode())
    rows = scored_rows(s3, "writes", "r.csv", {"c3", "c7", "'=x", "absent"})
    assert list(rows.columns) == ["customer_id", "churn_probability", "churn_risk"]
    assert sorted(rows["customer_id"]) == ["'=x", "c3", "c7", "c7"]
    assert rows["churn_probability"].dtype == float
    assert scored_rows(s3, "writes", "r.csv", set()).empty
