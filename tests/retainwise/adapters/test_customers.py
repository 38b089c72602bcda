"""Customer history on SQLite and PostgreSQL: newest first, scoped by account, explained."""

import json
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

import migrations
from models.explain import Explanation
from retainwise.adapters import customers, db

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def completed(engine, account: str, model: str = "churn") -> str:
    prediction_id = db.create_prediction(engine, account=account, model_name=model, input_key="k")
    assert db.claim_prediction(engine, prediction_id, "run")
    assert db.finish_prediction(engine, prediction_id, "run", db.Status.COMPLETED)
    return prediction_id


def upload(prediction_id: str, account: str = "acme", days: int = 0, version: str = "3"):
    return customers.UploadScored(
        account, prediction_id, "churn", version, NOW + timedelta(days=days)
    )


def scored(ids, probabilities, tiers=None) -> pd.DataFrame:
    tiers = tiers or ["HIGH" if p >= 0.6 else "LOW" for p in probabilities]
    return pd.DataFrame(
        {"customer_id": ids, "churn_probability": probabilities, "churn_risk": tiers}
    )


def explanation(rows: int, shift: float = 0.0) -> tuple[Explanation, pd.DataFrame]:
    contributions = np.array([[0.5 + shift, -0.25, 0.125]] * rows)
    X = pd.DataFrame({"tenure": [2.0] * rows, "Contract": ["Month-to-month"] * rows})
    X["TotalCharges"] = np.nan
    return Explanation(list(X.columns), np.full(rows, -1.0), contributions), X


def test_history_is_newest_first_and_another_accounts_customer_is_missing(migrated_engine):
    first, second = completed(migrated_engine, "acme"), completed(migrated_engine, "acme")
    customers.record_scores(migrated_engine, upload(first), scored(["a", "b"], [0.2, 0.7]))
    customers.record_scores(migrated_engine, upload(second, days=30), scored(["a"], [0.65]))
    record = customers.customer(migrated_engine, "acme", "a")
    assert [(h.prediction_id, h.churn_probability, h.churn_risk) for h in record.history] == [
        (second, 0.65, "HIGH"),
        (first, 0.2, "LOW"),
    ]
    assert record.history[0].completed_at == NOW + timedelta(days=30)
    assert record.explanation is None
    assert customers.customer(migrated_engine, "other", "a") is None
    assert customers.customer(migrated_engine, "acme", "zzz") is None


def test_the_latest_explanation_adds_up_to_the_margin_and_an_older_one_does_not_replace_it(
    migrated_engine,
):
    first, second = completed(migrated_engine, "acme"), completed(migrated_engine, "acme")
    customers.record_scores(migrated_engine, upload(first), scored(["a"], [0.7]))
    newer, X = explanation(1, shift=1.0)
    customers.record_explanations(
        migrated_engine, upload(second, days=30), pd.Series(["a"]), newer, X
    )
    older, X = explanation(1)
    customers.record_explanations(migrated_engine, upload(first), pd.Series(["a"]), older, X)
    found = customers.customer(migrated_engine, "acme", "a").explanation
    assert found.prediction_id == second and found.model_version == "3"
    assert [(c.feature, c.value) for c in found.contributions] == [
        ("tenure", 2.0),
        ("Contract", "Month-to-month"),
        ("TotalCharges", None),
    ]
    total = found.base_value + sum(c.contribution for c in found.contributions)
    assert abs(total - found.margin) < 1e-12 and found.margin == pytest.approx(
        0.375
    )  # not the older -0.625
    assert customers.customer(migrated_engine, "other", "a") is None


def test_previous_scores_are_the_accounts_latest_other_completed_upload(migrated_engine):
    first, second = completed(migrated_engine, "acme"), completed(migrated_engine, "acme")
    elsewhere, current = completed(migrated_engine, "other"), completed(migrated_engine, "acme")
    customers.record_scores(migrated_engine, upload(first), scored(["a", "b"], [0.1, 0.2]))
    customers.record_scores(migrated_engine, upload(second), scored(["a"], [0.3]))
    customers.record_scores(migrated_engine, upload(elsewhere, "other"), scored(["a"], [0.9]))
    previous = customers.previous_scores(migrated_engine, "acme", "churn", before=current)
    assert previous.to_pydict() == {"customer_id": ["a"], "probability": [0.3]}
    assert customers.previous_scores(migrated_engine, "acme", "other-model", current) is None


def test_a_rerun_of_an_upload_writes_its_rows_afresh(migrated_engine):
    prediction_id = completed(migrated_engine, "acme")
    ids = [f"c{i}" for i in range(5000)]
    rows = scored(ids, list(np.linspace(0, 1, 5000)))
    assert customers.record_scores(migrated_engine, upload(prediction_id), rows) == 5000
    customers.forget_upload(migrated_engine, prediction_id)
    assert customers.record_scores(migrated_engine, upload(prediction_id), rows) == 5000
    history = customers.customer(migrated_engine, "acme", "c4999").history
    assert [h.churn_probability for h in history] == [1.0]


def test_every_stored_value_reads_back_exactly_and_a_customer_explained_twice_keeps_the_last(
    migrated_engine,
):
    prediction_id = completed(migrated_engine, "acme")
    rng = np.random.default_rng(22)
    probabilities = [*rng.random(300).tolist(), 1e-300, 0.0, 1.0]
    ids = [f'c{i}, "x"' for i in range(len(probabilities))]  # a comma and quotes in the ids
    customers.record_scores(migrated_engine, upload(prediction_id), scored(ids, probabilities))
    later = completed(migrated_engine, "acme")
    stored = customers.previous_scores(migrated_engine, "acme", "churn", before=later)
    assert dict(zip(*stored.to_pydict().values(), strict=True)) == dict(
        zip(ids, probabilities, strict=True)
    )

    X = pd.DataFrame(
        {
            "tenure": [2.0, np.nan, 1e-7],
            "Contract": pd.Categorical(['Month-to-month, "2y"', None, "Année"]),
            "seats": [3, 4, 5],
            "Partner": ["Yes", None, "No"],
        }
    )
    contributions = rng.normal(size=(3, 4)) * np.array([1.0, 1e-5, 1e5, 1.0])
    found = Explanation(list(X.columns), np.full(3, -1.5), contributions)
    stored_ids = pd.Series(["a", "b", "a"])  # "a" twice: the later row is kept
    assert (
        customers.record_explanations(migrated_engine, upload(prediction_id), stored_ids, found, X)
        == 2
    )
    for customer_id, row in (("a", 2), ("b", 1)):
        customers.record_scores(
            migrated_engine, upload(prediction_id), scored([customer_id], [0.5])
        )
        explained = customers.customer(migrated_engine, "acme", customer_id).explanation
        expected = [
            (name, None if pd.isna(value) else value, share)
            for name, value, share in zip(
                X.columns, X.iloc[row].tolist(), contributions[row].tolist(), strict=True
            )
        ]
        assert [(c.feature, c.value, c.contribution) for c in explained.contributions] == expected
        assert explained.margin == found.margin[row] and explained.base_value == -1.5


def test_earlier_explanations_are_read_per_block_of_ids_scoped_by_account(migrated_engine):
    first = completed(migrated_engine, "acme")
    found, X = explanation(3)
    X["tenure"] = [2.0, 5.0, 7.0]
    ids = pd.Series(["a", "b", "c"])
    customers.record_explanations(migrated_engine, upload(first), ids, found, X)
    theirs = completed(migrated_engine, "other")
    customers.record_explanations(
        migrated_engine, upload(theirs, account="other"), pd.Series(["z"]), *explanation(1, 9.0)
    )
    wanted = ["c", "nobody", "z", "a", "c"]  # another account's "z" answers like a missing one
    earlier = customers.earlier_explanations(migrated_engine, "acme", wanted, block=2)
    aligned = earlier.aligned(wanted, ["Contract", "tenure", "TotalCharges", "gender"])
    assert aligned.found.tolist() == [True, False, False, True, True]
    assert aligned.values["tenure"].tolist() == [7.0, None, None, 2.0, 7.0]
    assert aligned.values["Contract"][0] == "Month-to-month"
    assert aligned.values["TotalCharges"][0] is None  # stored as null
    assert aligned.contributions[0, :3].tolist() == [-0.25, 0.5, 0.125]  # in the order asked
    assert np.isnan(aligned.contributions[:, 3]).all()  # not a feature then
    # an upload's own explanations are not its earlier ones (a rerun of a completed upload)
    assert not customers.earlier_explanations(migrated_engine, "acme", ["a"], before=first).ids
    assert customers.earlier_explanations(migrated_engine, "acme", []).ids == []


def test_the_migration_downgrades_and_upgrades_again(database_url):
    migrations.upgrade(database_url)
    migrations.upgrade(database_url)  # safe to rerun
    migrations.downgrade(database_url, "0012_upload_slots_and_sessions")
    engine = sa.create_engine(database_url)
    assert "customer_scores" not in sa.inspect(engine).get_table_names()
    engine.dispose()
    migrations.upgrade(database_url)
    assert migrations.current_revision(database_url) == migrations.head_revision()


def test_contributions_json_reads_back_as_json_dumps_of_the_same_values():
    """Arrow writes the numbers: each reads back as the same float (never an int, -0.0 keeping
    its sign, tiny and huge ones, infinities as json.dumps spells them), ints and text as they
    were, missing cells as null."""
    X = pd.DataFrame(
        {
            "tenure": [2.0, np.nan, 1e-7, -0.0, 1.5e16],
            "Contract": pd.Categorical(["Two year", None, 'a "b"', "Année", "Two year"]),
            "seats": [3, 4, 5, 6, 7],
            "mixed": pd.Series(["x", None, 3, 2.5, "y"], dtype=object),
        }
    )
    contributions = np.array(
        [
            [0.1, -0.0, 1e-300, np.inf],
            [1.0, 2.0, -1e16, 1 / 3],
            [5e-324, -np.inf, 0.0, 1e22],
            [12345.678, 1e-5, 0.0001, -2.5],
            [7.0, 8.0, 9.0, 10.0],
        ]
    )
    found = Explanation(list(X.columns), np.zeros(5), contributions)
    rows = np.array([True, True, True, False, True])
    written = customers.contributions_json(found, X, rows)
    cells = list(zip(*(X[name].tolist() for name in X.columns), strict=True))  # Python values
    expected = [
        json.dumps(
            [
                {"feature": name, "value": None if pd.isna(value) else value, "contribution": c}
                for name, value, c in zip(
                    X.columns, cells[i], contributions[i].tolist(), strict=True
                )
            ]
        )
        for i in np.flatnonzero(rows)
    ]

    def typed(value):
        if isinstance(value, dict):
            return {k: typed(v) for k, v in value.items()}
        if isinstance(value, list):
            return [typed(v) for v in value]
        return (type(value).__name__, repr(value))

    assert [typed(json.loads(t)) for t in written] == [typed(json.loads(t)) for t in expected]
    assert customers.contributions_json(found, X, np.zeros(5, dtype=bool)) == []
