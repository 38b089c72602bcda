"""The actions list built while an upload is scored: the same whole or in chunks, fed to the
account's history, and nothing kept when the upload fails."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pyarrow as pa
import pytest

from models.changes import Earlier
from models.explain import NotExplainable
from models.reasons import REASON_COLUMNS
from retainwise.adapters.mlflow_registry import LoadedModel
from retainwise.config.errors import UploadRejected
from retainwise.local.sample import synthetic_customers
from retainwise.uploads import files
from retainwise.uploads.actions import ACTION_COLUMNS, VALUE_AT_RISK
from retainwise.uploads.contacts import tolerant
from retainwise.uploads.files import LocalFile, LocalSinks
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.scoring import Output, score_object
from tests.helpers import trained_on_synthetic


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    trained = trained_on_synthetic(800, seed=5)
    return LoadedModel("churn", "1", trained.pipeline, trained.profile)


class Remembered:
    """A History in memory: a fixed previous upload, and what scoring hands back."""

    def __init__(self, previous: dict[str, float]):
        self.before = previous
        self.scores: list[pd.DataFrame] = []
        self.explained_ids: list[str] = []
        self.asked: list[list[str]] = []  # each read of earlier explanations: the ids

    def previous(self) -> pa.Table:
        return pa.table(
            {"customer_id": list(self.before), "probability": list(self.before.values())}
        )

    def earlier(self, ids: pd.Series) -> Earlier:
        self.asked.append(ids.tolist())
        return Earlier.none(ids.tolist(), [])

    def scored(self, results: pd.DataFrame) -> None:
        self.scores.append(results)

    def explained(self, ids, explanation, X) -> None:
        assert len(ids) == len(X) == len(explanation.base)
        self.explained_ids += ids.tolist()


def upload(tmp_path, rows: int = 400, bad: int = 0) -> LocalFile:
    frame = synthetic_customers(rows, seed=9, labeled=False).astype(str)
    frame.loc[: bad - 1, "MonthlyCharges"] = "lots"  # rejected rows: gaps in the accepted index
    path = tmp_path / "customers.csv"
    path.write_bytes(frame.to_csv(index=False).encode())
    return LocalFile(path)


def sinks(tmp_path, name: str) -> LocalSinks:
    return LocalSinks({output: tmp_path / f"{name}.{output.value}" for output in Output})


def test_whole_and_chunked_give_one_list_and_one_history(tmp_path, model, monkeypatch):
    monkeypatch.setattr(files, "READ_BLOCK", 8_000)  # chunks are cut from blocks: several
    source = upload(tmp_path, bad=7)
    lists, histories = {}, {}
    chunked = ScoringPolicy(chunked_above_bytes=1000, chunk_bytes=10_000, explain_top_n=50)
    for name, policy in {"whole": ScoringPolicy(explain_top_n=50), "chunked": chunked}.items():
        histories[name] = Remembered({"C100007": 0.5, "C100008": 2.0, "C100010": 0.0})
        score_object(source, model, policy, sinks(tmp_path, name), history=histories[name])
        lists[name] = pd.read_csv(tmp_path / f"{name}.actions")
    pd.testing.assert_frame_equal(lists["chunked"], lists["whole"])
    actions = lists["whole"].set_index("customer_id")
    assert len(actions) == 393 and actions["rank"].is_monotonic_increasing
    assert actions.loc["C100008", "risk_change"] == "down"
    assert actions.loc["C100008", "previous_probability"] == 2.0
    assert actions.loc["C100010", "risk_change"] == "up"
    assert (actions.drop(index=["C100007", "C100008", "C100010"])["risk_change"] == "new").all()
    explained = actions.index[actions["reason_1"].notna()]
    rose = actions.index[actions["risk_change"] == "up"]
    high = actions.index[actions["churn_risk"] == "HIGH"]
    assert set(high) <= set(explained) and len(explained) >= 50
    for history in histories.values():
        assert sorted(history.explained_ids) == sorted(explained)
        # earlier explanations are read only for explained rows that rose, never one by one
        asked = [i for ids in history.asked for i in ids]
        assert asked and sorted(asked) == sorted(explained.intersection(rose))
        scores = pd.concat(history.scores)
        assert sorted(scores["customer_id"]) == sorted(actions.index)
    assert len(histories["chunked"].scores) > 1


def valued_upload(tmp_path) -> LocalFile:
    """400 customers with a `Lifetime value` column the model never saw: some blank, some text."""
    frame = synthetic_customers(400, seed=9, labeled=False).astype(str)
    frame["Lifetime value"] = [str(10 + (i * 37) % 500) for i in range(400)]
    frame.loc[[3, 50, 399], "Lifetime value"] = ["", "n/a", " 7.5 "]
    path = tmp_path / "valued.csv"
    path.write_bytes(frame.to_csv(index=False).encode())
    return LocalFile(path)


def test_a_value_column_ranks_by_value_at_risk_whole_and_chunked(tmp_path, model, monkeypatch):
    """Not a model feature: read from the input. A blank or non-numeric value leaves the row's
    value at risk empty and ranks it after every valued row."""
    monkeypatch.setattr(files, "READ_BLOCK", 8_000)
    source = valued_upload(tmp_path)
    whole = ScoringPolicy(explain_top_n=50, value_column="lifetime_value")  # matched loosely
    chunked = replace(whole, chunked_above_bytes=1000, chunk_bytes=10_000)
    lists = {}
    for name, policy in {"whole": whole, "chunked": chunked}.items():
        score_object(source, model, policy, sinks(tmp_path, name))
        lists[name] = pd.read_csv(tmp_path / f"{name}.actions")
    pd.testing.assert_frame_equal(lists["chunked"], lists["whole"])
    table = lists["whole"]
    assert list(table.columns) == ACTION_COLUMNS + [VALUE_AT_RISK]
    valued = table[table[VALUE_AT_RISK].notna()]
    assert len(valued) == 398 and valued[VALUE_AT_RISK].is_monotonic_decreasing
    assert table["customer_id"].tail(2).tolist() == ["C100003", "C100050"]  # blank, "n/a"
    row = table.set_index("customer_id").loc["C100399"]
    assert row[VALUE_AT_RISK] == pytest.approx(7.5 * row["churn_probability"])


def test_a_value_column_missing_from_the_file_fails_the_upload_naming_it(tmp_path, model):
    policy = ScoringPolicy(value_column="Lifetime value")
    with pytest.raises(UploadRejected, match="Lifetime value"):
        score_object(upload(tmp_path), model, policy, sinks(tmp_path, "out"))


def test_a_failed_upload_keeps_no_actions_list(tmp_path, model):
    policy = ScoringPolicy(chunked_above_bytes=1000, chunk_bytes=10_000)
    scored = score_object(upload(tmp_path, bad=300), model, policy, sinks(tmp_path, "out"))
    assert scored.report["error"] is not None
    assert not (tmp_path / "out.actions").exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_a_model_without_an_exact_explainer_leaves_the_reasons_empty():
    def old_model(X, ids):
        raise NotExplainable("trained before LightGBM")

    X = pd.DataFrame({"tenure": [1.0, 2.0]}, index=[4, 9])
    reasons = tolerant(old_model)(X, pd.Series(["a", "b"]))
    assert list(reasons.columns) == REASON_COLUMNS and list(reasons.index) == [4, 9]
    assert reasons.isna().all().all()
