"""The customer history the score-upload flow keeps, on SQLite and PostgreSQL: the previous
completed upload's probabilities, scores per chunk, explanations once completed, and a
redelivered or failed run leaving nothing twice."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import sqlalchemy as sa

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


def complete(engine, history: CustomerHistory, block: int = 3) -> None:
    finish(engine, history)
    history.completed(block)


def finish(engine, history: CustomerHistory) -> None:
    """COMPLETED on the row: what the customer waits for (`completed` comes after it)."""
    prediction_id = history.upload.prediction_id
    assert db.finish_prediction(engine, prediction_id, "run", db.Status.COMPLETED)


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
    assert customers.customer(migrated_engine, "acme", "c") is None  # no score nor explanation
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


def test_the_next_upload_reads_the_accounts_earlier_explanations_not_its_own(migrated_engine):
    first = upload(migrated_engine, 0)
    first.start()
    first.scored(scores(("a", 0.2), ("b", 0.4)))
    X = pd.DataFrame({"Contract": ["One year", "Two year"], "tenure": [2.0, 9.0]})
    found = Explanation(["Contract", "tenure"], np.full(2, -1.0), np.array([[0.1, 0.2]] * 2))
    first.explained(pd.Series(["a", "b"]), found, X)
    assert not first.earlier(pd.Series(["a"])).ids  # nothing stored before COMPLETED
    complete(migrated_engine, first)
    assert not first.earlier(pd.Series(["a"])).ids  # its own are not earlier

    second = upload(migrated_engine, 30)
    second.start()
    earlier = second.earlier(pd.Series(["b", "new"])).aligned(["b", "new"], ["Contract"])
    assert earlier.found.tolist() == [True, False]
    assert earlier.values["Contract"].tolist() == ["Two year", None]


def test_the_next_upload_sees_a_completed_one_before_its_history_is_stored(migrated_engine):
    """The customers' rows are stored after COMPLETED (off the customer's wait): an upload of
    the account started in between still reads the completed one's scores as previous, and an
    upload not COMPLETED is never previous."""
    first = upload(migrated_engine, 0)
    first.start()
    first.scored(scores(("a", 0.2), ("b", 0.4)))
    first.scored(scores(("c", 0.9)))
    second = upload(migrated_engine, 30)
    second.start()
    assert second.previous() is None  # the first is not COMPLETED yet
    finish(migrated_engine, first)
    assert customers.customer(migrated_engine, "acme", "a") is None  # not stored yet
    before = second.previous().to_pydict()
    assert before == {"customer_id": ["a", "b", "c"], "probability": [0.2, 0.4, 0.9]}
    first.completed()
    assert second.previous().to_pydict() == before
    assert first.scores is not None and first.scores.rows == 3  # every row, for the monitoring
    assert first.scores.sample(np.random.default_rng()).tolist() == [0.2, 0.4, 0.9]  # in order


def test_history_is_dated_when_the_upload_completed_not_when_scoring_began(migrated_engine):
    history = upload(migrated_engine, 0)  # scoring began at NOW
    history.start()
    history.scored(scores(("a", 0.2)))
    assert customers.customer(migrated_engine, "acme", "a") is None  # stored once COMPLETED
    complete(migrated_engine, history)
    finished = db.get_prediction(migrated_engine, history.upload.prediction_id).completed_at
    assert finished is not None and finished != NOW
    (score,) = customers.customer(migrated_engine, "acme", "a").history
    assert score.completed_at == finished.replace(tzinfo=finished.tzinfo or UTC)


def test_an_upload_not_completed_keeps_its_scores_at_the_time_scoring_began(migrated_engine):
    history = upload(migrated_engine, 0)
    history.start()
    history.scored(scores(("a", 0.2)))
    assert customers.completed_at(migrated_engine, history.upload.prediction_id) is None
    history.completed()
    assert customers.customer(migrated_engine, "acme", "a").history[0].completed_at == NOW


def test_a_redelivered_run_stores_each_score_once_and_a_failed_one_none(migrated_engine):
    history = upload(migrated_engine, 0)
    history.start()
    history.scored(scores(("a", 0.2)))
    history.start()  # the same upload again, after a crash
    history.scored(scores(("a", 0.3)))
    complete(migrated_engine, history)
    history.completed()  # stored again (a retry after a fault): still once
    assert [
        h.churn_probability for h in customers.customer(migrated_engine, "acme", "a").history
    ] == [0.3]
    assert history.scores is not None
    assert history.scores.sample(np.random.default_rng()).tolist() == [0.3]
    history.forget()
    assert customers.customer(migrated_engine, "acme", "a") is None
    assert customers.previous_scores(migrated_engine, "acme", "churn", before="other") is None


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
    assert history.spill is None and history.parts == 0


def explained_parts() -> list[tuple[pd.Series, Explanation, pd.DataFrame]]:
    """A chunk's HIGH rows, another chunk's, then the pool (explaining "c" and "e" again), with
    a number, a category and a text column (an int among its cells), missing cells among them."""
    parts = []
    for n, ids in enumerate((list("abcdefg"), list("hijk"), ["c", "e", "l"])):
        rows = len(ids)
        X = pd.DataFrame(
            {
                "tenure": np.where(np.arange(rows) % 3 == 0, np.nan, np.arange(rows) + 0.5 * n),
                "Contract": pd.Categorical(["Month-to-month", None, "Two year"] * 3)[:rows],
                "PaymentMethod": (['Mailed "check"', None, 3] * 3)[:rows],
            },
            index=np.arange(rows) + 100 * n,  # the chunk's own positions
        )
        contributions = np.arange(rows * 3, dtype=float).reshape(rows, 3) / 7 + n
        found = Explanation(list(X.columns), np.full(rows, -1.25), contributions)
        parts.append((pd.Series(ids, index=X.index), found, X))
    return parts


def stored_explanations(engine, account: str) -> dict:
    table = customers.customer_explanations
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table).where(table.c.account == account)).mappings().all()
    return {
        row["customer_id"]: (
            row["model_version"],
            row["base_value"],
            row["margin"],
            row["contributions"],
        )
        for row in rows
    }


def test_explanations_stored_in_blocks_are_the_rows_one_write_of_them_all_stored(
    migrated_engine, monkeypatch
):
    """What the blocks store is what the explanations joined and stored at once stored (the
    store before blocks), a customer explained twice keeping its later explanation."""
    parts = explained_parts()
    at_once = upload(migrated_engine, 0)
    at_once.upload = replace(at_once.upload, account="at-once")
    ids = pd.concat([p[0] for p in parts], ignore_index=True)
    X = pd.concat([p[2] for p in parts], ignore_index=True)
    found = Explanation(
        parts[0][1].features,
        np.concatenate([p[1].base for p in parts]),
        np.concatenate([p[1].contributions for p in parts]),
    )
    assert customers.record_explanations(migrated_engine, at_once.upload, ids, found, X) == 12

    writes: list[int] = []
    record = customers.record_explanations

    def counted(engine, upload, ids, found, X):
        writes.append(len(ids))
        return record(engine, upload, ids, found, X)

    monkeypatch.setattr(customers, "record_explanations", counted)
    from tasks import history as histories

    monkeypatch.setattr(histories, "HELD_BYTES", 0)  # as a large upload's: none fits in memory
    history = upload(migrated_engine, 0)
    history.start()
    for part in parts:
        history.explained(*part)
    assert not held_frames(history.__dict__)  # kept on disk while scoring, not in memory
    complete(migrated_engine, history)
    assert writes == [3, 3, 1, 3, 1, 3]  # never more than a block at once
    assert stored_explanations(migrated_engine, "acme") == stored_explanations(
        migrated_engine, "at-once"
    )
    assert len(stored_explanations(migrated_engine, "acme")) == 12


def held_frames(value, depth: int = 0) -> bool:
    """Whether `value` holds a pandas object or an Explanation, through containers."""
    if isinstance(value, pd.Series | pd.DataFrame | Explanation):
        return True
    if depth > 4:
        return False
    if isinstance(value, dict):
        return any(held_frames(v, depth + 1) for v in value.values())
    if isinstance(value, list | tuple | set):
        return any(held_frames(v, depth + 1) for v in value)
    return False


def test_a_small_uploads_explanations_are_held_and_store_what_the_spilled_ones_store(
    migrated_engine, monkeypatch
):
    """Parts that fit in HELD_BYTES stay in memory (no file); once one does not fit, every part
    goes to the file, in order; either way the stored rows are the same."""
    from tasks import history as histories

    parts = explained_parts()
    weights = [histories.weighed(part) for part in parts]
    stored = {}
    for account, bound in {"held": sum(weights), "spilled": weights[0] + weights[1] - 1}.items():
        monkeypatch.setattr(histories, "HELD_BYTES", bound)
        history = upload(migrated_engine, 0)
        history.upload = replace(history.upload, account=account)
        history.start()
        history.explained(*parts[0])
        assert history.spill is None and held_frames(history.__dict__)
        for part in parts[1:]:
            history.explained(*part)
        assert (history.spill is None) == (account == "held")
        assert held_frames(history.__dict__) == (account == "held")
        complete(migrated_engine, history)
        assert history.spill is None and not history.held
        stored[account] = stored_explanations(migrated_engine, account)
    assert len(stored["held"]) == 12 and stored["held"] == stored["spilled"]
