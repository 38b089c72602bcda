"""The `outcomes` table: each scored customer's real outcome beside the score it was given.

A second outcomes file for the same upload replaces the first (delete and insert in one
transaction). Reads are scoped by account. Functions take an Engine (or an S3 client); nothing
connects at import.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from retainwise.adapters.db import metadata, predictions, utcnow

outcomes = sa.Table(
    "outcomes",
    metadata,
    sa.Column("prediction_id", sa.String(36), primary_key=True),
    sa.Column("customer_id", sa.String(255), primary_key=True),
    sa.Column("account", sa.String(255), nullable=False),
    sa.Column("churned", sa.Integer, nullable=False),
    sa.Column("churn_probability", sa.Float, nullable=False),
    sa.Column("churn_risk", sa.String(8), nullable=False),
    sa.Column("observed_at", sa.DateTime(timezone=True)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("churned IN (0, 1)", name="churned_binary"),
    sa.Index("ix_outcomes_account", "account"),
)

# what a join needs of an upload's results file; the rest (and every other customer) is skipped
SCORED_COLUMNS = {
    "customer_id": pa.string(),
    "churn_probability": pa.float64(),
    "churn_risk": pa.string(),
}
READ_BLOCK_BYTES = 2**20


def scored_rows(s3: Any, bucket: str, key: str, customer_ids: Iterable[str]) -> pd.DataFrame:
    """These customers' rows of a results file, streamed from S3 a block at a time with Arrow,
    three columns only: memory follows the outcomes file, not the upload's size."""
    wanted = pa.array(sorted(set(customer_ids)), pa.string())
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        reader = pacsv.open_csv(
            body,
            read_options=pacsv.ReadOptions(block_size=READ_BLOCK_BYTES),
            convert_options=pacsv.ConvertOptions(
                include_columns=list(SCORED_COLUMNS),
                column_types=SCORED_COLUMNS,
                strings_can_be_null=False,
            ),
        )
        kept = [batch.filter(pc.is_in(batch["customer_id"], value_set=wanted)) for batch in reader]
        return pa.Table.from_batches(kept, schema=reader.schema).to_pandas()
    finally:
        body.close()


LABELLED_COLUMNS = [
    "prediction_id",
    "account",
    "model_name",
    "model_version",
    "customer_id",
    "churned",
    "churn_probability",
    "churn_risk",
    "observed_at",
    "completed_at",
]


def replace_outcomes(engine: Engine, prediction_id: str, account: str, joined: pd.DataFrame) -> int:
    """Store an upload's labelled rows (customer_id, churned, churn_probability, churn_risk,
    observed_at), replacing any earlier file's rows for that upload."""
    now = utcnow()
    rows = [
        {
            "prediction_id": prediction_id,
            "account": account,
            "created_at": now,
            "customer_id": str(r.customer_id),
            "churned": int(r.churned),
            "churn_probability": float(r.churn_probability),
            "churn_risk": str(r.churn_risk),
            "observed_at": None if pd.isna(r.observed_at) else r.observed_at.to_pydatetime(),
        }
        for r in joined.itertuples(index=False)
    ]
    with engine.begin() as conn:
        conn.execute(outcomes.delete().where(outcomes.c.prediction_id == prediction_id))
        if rows:
            conn.execute(outcomes.insert(), rows)
    return len(rows)


def labelled_rows(
    engine: Engine,
    model_name: str | None = None,
    account: str | None = None,
    prediction_id: str | None = None,
) -> pd.DataFrame:
    """Labelled scored rows with their upload's model version, filtered as asked."""
    query = (
        sa.select(
            outcomes.c.prediction_id,
            outcomes.c.account,
            predictions.c.model_name,
            predictions.c.model_version,
            outcomes.c.customer_id,
            outcomes.c.churned,
            outcomes.c.churn_probability,
            outcomes.c.churn_risk,
            outcomes.c.observed_at,
            predictions.c.completed_at,
        )
        .join(predictions, predictions.c.id == outcomes.c.prediction_id)
        .order_by(predictions.c.completed_at, outcomes.c.prediction_id, outcomes.c.customer_id)
    )
    filters: dict[sa.Column[Any], str | None] = {
        predictions.c.model_name: model_name,
        outcomes.c.account: account,
        outcomes.c.prediction_id: prediction_id,
    }
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    with engine.connect() as conn:
        return pd.DataFrame(conn.execute(query).mappings().all(), columns=LABELLED_COLUMNS)
