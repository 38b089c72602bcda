"""Two completed uploads of one account, as the scoring pipeline leaves them: customer scores and
explanations in the database, and the second upload's actions list in S3 (built by the real
ActionsBuilder). Shared by the route tests and the browser test."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from models.changes import Earlier
from models.explain import Explanation
from models.reasons import changed_reason_arrays, format_value
from retainwise.adapters import aws, customers, db
from retainwise.adapters.resources import Resources
from retainwise.uploads.actions import REASONS, ActionsBuilder, actions_key

FEATURES = ["Contract", "tenure", "MonthlyCharges", "InternetService", "PaymentMethod"]
BASE = -1.2
START = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)


@dataclass(frozen=True)
class Seeded:
    first: str
    second: str
    ids: list[str]
    rose: list[str]  # customers whose probability went up in the second upload
    shares: np.ndarray  # the second upload's contributions, customers x FEATURES


def features(n: int, month_to_month: np.ndarray) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "Contract": np.where(month_to_month, "Month-to-month", "Two year"),
            "tenure": rng.integers(1, 72, n).astype(float),
            "MonthlyCharges": rng.uniform(20, 110, n).round(2),
            "InternetService": rng.choice(["Fiber optic", "DSL", "No"], n),
            "PaymentMethod": rng.choice(["Electronic check", "Mailed check"], n),
        }
    )


def contributions(frame: pd.DataFrame) -> np.ndarray:
    return np.column_stack(
        [
            np.where(frame["Contract"] == "Month-to-month", 0.9, -1.1),
            (24 - frame["tenure"].to_numpy()) / 30,
            (frame["MonthlyCharges"].to_numpy() - 65) / 90,
            np.where(frame["InternetService"] == "Fiber optic", 0.35, -0.2),
            np.where(frame["PaymentMethod"] == "Electronic check", 0.25, -0.1),
        ]
    )


def explainer(frame: pd.DataFrame, ids: pd.Series) -> pd.DataFrame:
    """The reasons as models/reasons.py words them: the three largest contributions."""
    shares = contributions(frame)
    top = np.argsort(-shares, axis=1)[:, :3]
    texts = {
        column: [
            f"{FEATURES[j]} is {format_value(frame[FEATURES[j]].iloc[i])} ({shares[i, j]:+.2f})"
            for i, j in enumerate(top[:, k])
        ]
        for k, column in enumerate(REASONS)
    }
    return pd.DataFrame(texts, index=frame.index)


def explainer_since(ids: list[str], first: pd.DataFrame):
    """`explainer`, naming what changed since the first upload (`first`, rows of `ids`) for the
    rows that rose, as models.reasons does for the actions list."""
    earlier = Earlier(
        ids, FEATURES, {f: first[f].to_numpy(dtype=object) for f in FEATURES}, contributions(first)
    )

    def explain(frame: pd.DataFrame, rows_ids: pd.Series, rose=None) -> pd.DataFrame:
        texts = explainer(frame, rows_ids)
        if rose is None:
            return texts
        rows = np.flatnonzero(rose)
        then = earlier.aligned(rows_ids.iloc[rows].tolist(), FEATURES)
        now = Explanation(FEATURES, np.full(len(rows), BASE), contributions(frame.iloc[rows]))
        named = changed_reason_arrays(now, frame.iloc[rows], then)
        for column, text in zip(REASONS, named, strict=True):
            texts.loc[texts.index[rows], column] = text.to_pylist()
        return texts

    return explain


def scored(ids: list[str], frame: pd.DataFrame) -> pd.DataFrame:
    probability = 1 / (1 + np.exp(-(BASE + contributions(frame).sum(axis=1))))
    tiers = np.where(probability >= 0.5, "HIGH", np.where(probability >= 0.25, "MEDIUM", "LOW"))
    return pd.DataFrame({"customer_id": ids, "churn_probability": probability, "churn_risk": tiers})


def complete(resources: Resources, account: str, finished: datetime, rows: int) -> str:
    prediction_id = db.create_prediction(
        resources.engine,
        account=account,
        model_name="telco",
        input_key=f"uploads/{account}/x",
        original_filename=f"customers-{finished:%Y-%m}.csv",
    )
    db.claim_prediction(resources.engine, prediction_id, "run")
    db.finish_prediction(
        resources.engine,
        prediction_id,
        "run",
        db.Status.COMPLETED,
        model_version="3",
        rows_total=rows,
        rows_scored=rows,
        rows_rejected=0,
    )
    with resources.engine.begin() as conn:  # the upload's own time, for the history chart
        conn.execute(
            db.predictions.update()
            .where(db.predictions.c.id == prediction_id)
            .values(completed_at=finished, created_at=finished - timedelta(minutes=2))
        )
    return prediction_id


def store(resources, account, prediction_id, finished, ids, frame) -> pd.DataFrame:
    upload = customers.UploadScored(account, prediction_id, "telco", "3", finished)
    rows = scored(ids, frame)
    customers.record_scores(resources.engine, upload, rows)
    shares = contributions(frame)
    explanation = Explanation(FEATURES, np.full(len(ids), BASE), shares)
    customers.record_explanations(resources.engine, upload, pd.Series(ids), explanation, frame)
    return rows


def seed(resources: Resources, account: str, n: int = 180, tmp_path=None) -> Seeded:
    """Upload 1, then upload 2 a month later where every fifth customer moved to month-to-month."""
    ids = [f"{7000 + i:04d}-CUST" for i in range(n)]
    month_to_month = np.arange(n) % 3 == 0
    first_frame = features(n, month_to_month)
    moved = (np.arange(n) % 5 == 1) & ~month_to_month
    second_frame = first_frame.assign(
        Contract=np.where(month_to_month | moved, "Month-to-month", "Two year")
    )
    first = complete(resources, account, START, n)
    before = store(resources, account, first, START, ids, first_frame)
    later = START + timedelta(days=30)
    second = complete(resources, account, later, n)
    now = store(resources, account, second, later, ids, second_frame)
    builder = ActionsBuilder(
        explainer_since(ids, first_frame),
        tmp_path,
        top_n=60,
        previous=dict(zip(ids, before["churn_probability"], strict=True)),
    )
    builder.add(now, second_frame)
    sink = io.BytesIO()
    builder.write_csv(sink)
    row = db.get_prediction(resources.engine, second)
    aws.put_bytes(
        resources.s3, resources.settings.bucket, actions_key(row.account, row.id), sink.getvalue()
    )
    rose = [i for i, m in zip(ids, moved, strict=True) if m]
    return Seeded(first, second, ids, rose, contributions(second_frame))
