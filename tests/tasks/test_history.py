"""The customer history the score-upload flow keeps, on SQLite and PostgreSQL: the previous
completed upload's probabilities, scores per chunk, explanations once completed, and a
redelivered or failed run leaving nothing twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from models.explain import Explanation
from retainwise.adapters import customers, db

if TYPE_CHECKING:  # imported in the tests: Prefect loads only on the worker that runs them
    from tasks.history import CustomerHistory

NOW = datetime(2026, 11, 1, 8, 0, tzinfo=UTC)


class Model:
    name, version = "churn", "3"


def upload(engine, days: int) -> CustomerHistory:
    from tasks.history import CustomerHistory

    prediction_id = db.create_prediction(engine, account="acme", model_name="churn", input_key="k")
    assert db.claim_prediction(engine, prediction_id, "run")
    return CustomerHistory.for_upload(
        engine, "acme", prediction_id, Model(), NOW + timedelta(days=days)
    )


def scores(*pairs: tuple[str, float]) -> pd.DataFrame:
    ids, probabilities = zip(*pairs, strict=True)
    return pd.DataFrame(
        {"customer_id": ids, "churn_probability": probabilities, "churn_risk": "HIGH"}
    )


def complete(engine, history: CustomerHistory) -> None:
    prediction_id = history.upload.prediction_id
    assert db.finish_prediction(engine, prediction_id, "run", db.Status.COMPLETED)
    history.completed()


def test_a_second_upload_sees_the_first_and_explanations_wait_for_completion(migrated_engine):
    first = upload(migrated_engine, 0)
    first.start()
    assert first.previous() is None
    first.scored(scores(("a", 0.2), ("b", 0.4)))
    first.scored(scores(("c", 0.9)))
    X = pd.DataFrame({"Contract": ["Month-to-month"], "tenure": [2.0]})
    first.explained(
        pd.Series(["c"]), Explanation(["Contract", "tenure"], np.array([-1.0]), np.ones((1, 2))), X
    )
    assert customers.customer(migrated_engine, "acme", "c").explanation is None
    complete(migrated_engine, first)

    second = upload(migrated_engine, 30)
    second.start()
    before = second.previous().to_pydict()
    assert dict(zip(before["customer_id"], before["probability"], strict=True)) == {
        "a": 0.2,
        "b": 0.4,
        "c": 0.9,
    }
    record = customers.customer(migrated_engine, "acme", "c")
    assert record.explanation.margin == 1.0 and len(record.history) == 1


def test_history_is_dated_when_the_upload_completed_not_when_scoring_began(migrated_engine):
    history = upload(migrated_engine, 0)  # scoring began at NOW
    history.start()
    history.scored(scores(("a", 0.2)))
    assert customers.customer(migrated_engine, "acme", "a").history[0].completed_at == NOW
    complete(migrated_engine, history)
    finished = db.get_prediction(migrated_engine, history.upload.prediction_id).completed_at
    assert finished is not None and finished != NOW
    (score,) = customers.customer(migrated_engine, "acme", "a").history
    assert score.completed_at == finished.replace(tzinfo=finished.tzinfo or UTC)


def test_an_upload_not_completed_keeps_its_scores_undated(migrated_engine):
    history = upload(migrated_engine, 0)
    history.start()
    history.scored(scores(("a", 0.2)))
    assert customers.date_upload(migrated_engine, history.upload.prediction_id) is None
    assert customers.customer(migrated_engine, "acme", "a").history[0].completed_at == NOW


def test_a_redelivered_run_stores_each_score_once_and_a_failed_one_none(migrated_engine):
    history = upload(migrated_engine, 0)
    history.start()
    history.scored(scores(("a", 0.2)))
    history.start()  # the same upload again, after a crash
    history.scored(scores(("a", 0.3)))
    assert [
        h.churn_probability for h in customers.customer(migrated_engine, "acme", "a").history
    ] == [0.3]
    history.forget()
    assert customers.customer(migrated_engine, "acme", "a") is None


def test_explanations_kept_in_pieces_are_stored_together_the_later_one_winning(migrated_engine):
    history = upload(migrated_engine, 0)
    history.start()
    history.scored(scores(("a", 0.9), ("b", 0.8)))
    for ids, shift in ((["a", "b"], 0.0), (["a"], 1.0)):  # the chunk's HIGH rows, then the pool
        X = pd.DataFrame({"Contract": pd.Categorical(["Month-to-month"] * len(ids))})
        found = Explanation(["Contract"], np.full(len(ids), -1.0), np.full((len(ids), 1), shift))
        history.explained(pd.Series(ids), found, X)
    complete(migrated_engine, history)
    margins = {c: customers.customer(migrated_engine, "acme", c).explanation.margin for c in "ab"}
    assert margins == {"a": 0.0, "b": -1.0}
    assert history.explanations == []
