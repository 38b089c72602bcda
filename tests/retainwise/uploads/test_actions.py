"""The actions list: rank, what changed since the previous upload, and reasons where they count."""

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from models.changes import Earlier
from retainwise.uploads import actions
from retainwise.uploads.actions import (
    ACTION_COLUMNS,
    REASONS,
    VALUE_AT_RISK,
    ActionsBuilder,
    previous_scores,
    rank_order,
    risk_changes,
)


class Recorder:
    """An explainer that names each row's feature value, and remembers which rows it explained."""

    def __init__(self):
        self.explained: list[str] = []
        self.rose: list[str] = []  # the rows it was told rose

    def __call__(self, features: pd.DataFrame, ids: pd.Series, rose=None) -> pd.DataFrame:
        assert ids.tolist() == features["cid"].tolist()  # each row's customer comes along
        self.explained += features["cid"].tolist()
        if rose is not None:
            assert rose.any() and len(rose) == len(ids)  # told only when some row rose
            self.rose += ids[rose].tolist()
        text = "plan is " + features["plan"]
        return pd.DataFrame({name: text for name in REASONS}, index=features.index)


def scored_rows(probabilities, start=0, values=None):
    ids = [f"c{start + i}" for i in range(len(probabilities))]
    p = np.asarray(probabilities, dtype=float)
    tiers = np.where(p >= 0.6, "HIGH", np.where(p >= 0.3, "MEDIUM", "LOW"))
    index = pd.RangeIndex(start, start + len(p))
    scored = pd.DataFrame(
        {"customer_id": ids, "churn_probability": p, "churn_risk": tiers}, index=index
    )
    features = pd.DataFrame(
        {"cid": ids, "plan": [f"p{(start + i) % 3}" for i in range(len(p))]}, index=index
    )
    return scored, features, values


def read(builder: ActionsBuilder) -> pd.DataFrame:
    sink = io.BytesIO()
    builder.write_csv(sink)
    return pd.read_csv(io.BytesIO(sink.getvalue()), keep_default_na=False, na_values=[""])


def test_rows_are_ranked_by_probability_and_compared_with_the_previous_upload(tmp_path):
    explainer = Recorder()
    builder = ActionsBuilder(
        explainer, tmp_path, top_n=3, previous={"c0": 0.5, "c1": 0.9, "c2": 0.2, "c9": 0.4}
    )
    builder.add(*scored_rows([0.5, 0.7, 0.4, 0.2, 0.8, 0.2]))
    table = read(builder)
    assert list(table.columns) == ACTION_COLUMNS
    assert table["customer_id"].tolist() == ["c4", "c1", "c0", "c2", "c3", "c5"]  # ties: file order
    assert table["rank"].tolist() == [1, 2, 3, 4, 5, 6]
    assert table["risk_change"].tolist() == ["new", "down", "same", "up", "new", "new"]
    assert table["previous_probability"].tolist()[1:4] == [0.9, 0.5, 0.2]
    assert table["previous_probability"].isna().tolist() == [True, False, False, False, True, True]
    # HIGH (c4, c1) and the first 3 of the list (adds c0) have reasons, no one else
    assert sorted(explainer.explained) == ["c0", "c1", "c4"]
    assert table.loc[:2, "reason_1"].tolist() == ["plan is p1", "plan is p1", "plan is p0"]
    assert table.loc[3:, REASONS].isna().all().all()


def test_every_high_row_is_explained_even_below_the_first_n(tmp_path):
    explainer = Recorder()
    builder = ActionsBuilder(explainer, tmp_path, top_n=1)
    builder.add(*scored_rows([0.9, 0.8, 0.7, 0.5]))
    table = read(builder)
    assert sorted(explainer.explained) == ["c0", "c1", "c2"]
    assert table["reason_3"].notna().tolist() == [True, True, True, False]


@pytest.mark.parametrize("held_bytes", [0, actions.HELD_BYTES])  # runs on disk, or in memory
@pytest.mark.parametrize("merge_rows", [8192, 64])
def test_chunks_give_the_list_one_chunk_gives_and_the_pool_stays_bounded(
    tmp_path, monkeypatch, merge_rows, held_bytes
):
    monkeypatch.setattr(actions, "MERGE_ROWS", merge_rows)  # small: many blocks per run
    monkeypatch.setattr(actions, "HELD_BYTES", held_bytes)
    rng = np.random.default_rng(7)
    probabilities = rng.random(3000) * 0.7  # mostly below HIGH: the pool decides who is explained
    previous = {f"c{i}": float(p) for i, p in enumerate(rng.random(3000)) if i % 4}
    whole = ActionsBuilder(Recorder(), tmp_path / "one", top_n=200, previous=previous)
    (tmp_path / "one").mkdir()
    whole.add(*scored_rows(probabilities))
    (tmp_path / "many").mkdir()
    chunked = ActionsBuilder(Recorder(), tmp_path / "many", top_n=200, previous=previous)
    for start in range(0, 3000, 700):
        chunked.add(*scored_rows(probabilities[start : start + 700], start=start))
        assert len(chunked.pool) <= 200
    listed = read(chunked)
    pd.testing.assert_frame_equal(read(whole), listed)
    order = np.lexsort((np.arange(3000), -probabilities))  # probability down, then file order
    assert listed["customer_id"].tolist() == [f"c{i}" for i in order]
    assert sorted(whole.explainer.explained) == sorted(chunked.explainer.explained)
    # the explainer is told which explained rows rose (HIGH ones per chunk, pooled ones at the
    # end): exactly those whose risk_change is up, to name what changed (models.changes)
    explained_up = listed[listed["reason_1"].notna() & (listed["risk_change"] == "up")]
    assert len(explained_up) > 20
    for builder in (whole, chunked):
        assert sorted(builder.explainer.rose) == sorted(explained_up["customer_id"])
    assert len(chunked.runs) == 5


def test_an_upload_too_large_for_held_runs_writes_them_to_disk_from_the_first(tmp_path):
    """Runs sure to pass HELD_BYTES are never held (holding, then writing them, only raised a
    large upload's memory); a small upload's are held; the list is the same either way."""
    probabilities = np.random.default_rng(5).random(900)
    lists = []
    sizes = [("small", 1_000_000), ("large", 2 * actions.HELD_BYTES), ("unknown", None)]
    for name, csv_bytes in sizes:
        (tmp_path / name).mkdir()
        builder = ActionsBuilder(Recorder(), tmp_path / name, top_n=50, csv_bytes=csv_bytes)
        builder.add(*scored_rows(probabilities[:450]))
        builder.add(*scored_rows(probabilities[450:], start=450))
        on_disk = [isinstance(run, Path) for run in builder.runs]
        assert on_disk == [name == "large"] * 2
        lists.append(read(builder))
    pd.testing.assert_frame_equal(lists[0], lists[1])
    pd.testing.assert_frame_equal(lists[0], lists[2])


@pytest.mark.parametrize("held_bytes", [0, 10**9])  # every run on disk, or every run held
def test_many_runs_merge_a_budget_of_rows_at_a_time_into_the_one_chunk_list(
    tmp_path, monkeypatch, held_bytes
):
    monkeypatch.setattr(actions, "MERGE_ROWS", 8)
    monkeypatch.setattr(actions, "MERGE_BUDGET", 40)
    monkeypatch.setattr(actions, "HELD_BYTES", held_bytes)
    rng = np.random.default_rng(3)
    probabilities = rng.choice([0.35, 0.65], 2000)  # ~860 ties of each across every run
    probabilities[::7] = rng.random(len(probabilities[::7]))
    (tmp_path / "one").mkdir()
    whole = ActionsBuilder(Recorder(), tmp_path / "one", top_n=50)
    whole.add(*scored_rows(probabilities))
    (tmp_path / "many").mkdir()
    chunked = ActionsBuilder(Recorder(), tmp_path / "many", top_n=50)
    for start in range(0, 2000, 40):  # 50 runs: 50 x 8 rows loaded at once, 10x the budget
        chunked.add(*scored_rows(probabilities[start : start + 40], start=start))
    steps = [table.num_rows for table in chunked._merged(["key", "seq", "customer_id"])]
    assert sum(steps) == 2000
    assert max(steps) <= 40 + 50 * 8  # the budget, and at most a block of each run beyond it
    assert len(steps) >= 2000 // (40 + 50 * 8)  # in steps, not the whole list at once
    pd.testing.assert_frame_equal(read(whole), read(chunked))
    order = np.lexsort((np.arange(2000), -probabilities))
    assert read(chunked)["customer_id"].tolist() == [f"c{i}" for i in order]


def test_rank_order_is_the_lexsort_of_key_down_then_position():
    """Unstable sorts, then equal keys put back in position order: the same order as a stable
    sort, with ties of +0.0 and -0.0, -inf (no value) and runs of equal keys."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        rows = int(rng.integers(1, 2500))
        key = rng.choice(np.array([0.0, -0.0, 0.125, 0.5, 0.5 + 1e-16, 1.0, -np.inf]), rows)
        stride = int(rng.integers(2, 9))
        key[::stride] = rng.random(len(key[::stride]))
        expected = np.lexsort((np.arange(rows), -key))
        assert rank_order(key).tolist() == expected.tolist()
    assert rank_order(np.empty(0)).tolist() == []


def test_the_builder_calls_explained_once_every_row_is_explained(tmp_path):
    """Before the merge (so an explainer's cache goes before the list's peak), after the pool."""
    calls: list[int] = []
    explainer = Recorder()
    builder = ActionsBuilder(
        explainer, tmp_path, top_n=4, explained=lambda: calls.append(len(explainer.explained))
    )
    builder.add(*scored_rows([0.5, 0.7, 0.4, 0.2, 0.8, 0.2]))
    batches = builder.batches()
    assert calls == []
    next(batches)
    assert calls == [4]  # the pool's two rows explained first
    list(batches)
    assert calls == [4]


def test_runs_are_held_up_to_a_budget_then_all_of_them_go_to_disk(tmp_path, monkeypatch):
    """Held runs give the list spilled ones give; past the budget every run is written, so a
    large upload's merge holds none."""
    monkeypatch.setattr(actions, "MERGE_ROWS", 16)
    rng = np.random.default_rng(5)
    probabilities = rng.choice([0.2, 0.5, 0.7], 1200)  # ties across runs
    probabilities[::5] = rng.random(len(probabilities[::5]))

    def built(folder: str, held_bytes: int) -> ActionsBuilder:
        monkeypatch.setattr(actions, "HELD_BYTES", held_bytes)
        (tmp_path / folder).mkdir()
        builder = ActionsBuilder(Recorder(), tmp_path / folder, top_n=30)
        for start in range(0, 1200, 100):
            builder.add(*scored_rows(probabilities[start : start + 100], start=start))
            assert builder.held <= held_bytes
        return builder

    on_disk = built("disk", 0)
    assert all(isinstance(run, Path) for run in on_disk.runs)
    held = built("held", 10**9)
    assert not any(isinstance(run, Path) for run in held.runs) and held.held > 0
    one_run = held.held // 12
    part = built("part", one_run * 5)  # five runs held, then the sixth sends all twelve to disk
    assert all(isinstance(run, Path) for run in part.runs) and part.held == 0
    assert len(list((tmp_path / "part").iterdir())) == len(part.runs) == 12
    expected = read(on_disk)
    pd.testing.assert_frame_equal(read(held), expected)
    pd.testing.assert_frame_equal(read(part), expected)
    order = np.lexsort((np.arange(1200), -probabilities))
    assert expected["customer_id"].tolist() == [f"c{i}" for i in order]
    held.discard()
    assert held.runs == [] and held.held == 0


def test_a_value_column_adds_value_at_risk_and_the_rank_follows_it(tmp_path):
    explainer = Recorder()
    builder = ActionsBuilder(explainer, tmp_path, top_n=2, value_column="MonthlyCharges")
    builder.add(*scored_rows([0.9, 0.2, 0.5, 0.4], values=["10", "100", "", "20"]))
    table = read(builder)
    assert list(table.columns) == ACTION_COLUMNS + [VALUE_AT_RISK]
    assert table["customer_id"].tolist() == ["c1", "c0", "c3", "c2"]  # no value: last
    assert table[VALUE_AT_RISK].tolist()[:3] == pytest.approx([20.0, 9.0, 8.0])
    assert np.isnan(table.loc[3, VALUE_AT_RISK])
    # the first two by value at risk (c1, a LOW customer, and c0) and every HIGH one (c0)
    assert sorted(explainer.explained) == ["c0", "c1"]


def test_previous_scores_come_as_a_mapping_or_an_arrow_table():
    table = pa.table({"customer_id": ["a", "b", "a"], "probability": [0.1, 0.2, 0.3]})
    assert previous_scores(table).to_dict() == {"a": 0.3, "b": 0.2}
    assert previous_scores({1: 0.5}).to_dict() == {"1": 0.5}
    assert previous_scores(None).empty


def test_risk_change_is_new_up_down_or_same():
    now = np.array([0.5, 0.5, 0.5, 0.5])
    before = np.array([np.nan, 0.4, 0.6, 0.5])
    assert risk_changes(now, before).tolist() == ["new", "up", "down", "same"]


def test_an_upload_with_no_scored_rows_gives_the_header_alone(tmp_path):
    builder = ActionsBuilder(Recorder(), tmp_path, top_n=10)
    builder.add(*scored_rows([]))
    sink = io.BytesIO()
    assert builder.write_csv(sink) == 0
    assert sink.getvalue().decode().strip() == ",".join(f'"{c}"' for c in ACTION_COLUMNS)


@pytest.fixture(scope="module")
def telco_model(telco_trained):
    return telco_trained


def actions_of(
    trained, frame, directory, previous=None, keep=None, earlier=None, top_n=20
) -> pd.DataFrame:
    from models.features import prepare_features
    from models.reasons import reasons_for
    from models.scoring import score_frame

    directory.mkdir()
    builder = ActionsBuilder(
        reasons_for(trained.pipeline, trained.profile, keep, earlier=earlier),
        directory,
        top_n,
        previous,
    )
    scored = score_frame(trained.pipeline, trained.profile, frame, frame["customerID"])
    scored.index = frame.index
    builder.add(scored, prepare_features(frame, trained.profile.features))
    return read(builder)


def test_customers_moved_to_month_to_month_are_up_and_their_reasons_say_so(telco_model, tmp_path):
    frame, trained = telco_model
    kept = {}
    stored = []  # the first upload's explanations, as adapters.customers keeps them

    def keep(ids, explanation, X):
        assert np.allclose(explanation.margin, trained.pipeline.decision_function(X), atol=1e-6)
        kept.update(dict.fromkeys(ids))
        stored.append((ids, explanation, X))

    def earlier(ids: pd.Series) -> Earlier:
        parts = stored[:explained_first]  # the HIGH rows' call and the pool's
        features = parts[0][1].features
        joined = Earlier(
            [i for ids_then, _, _ in parts for i in ids_then.astype(str)],
            features,
            {
                name: np.concatenate([X[name].to_numpy(dtype=object) for *_, X in parts])
                for name in features
            },
            np.vstack([then.contributions for _, then, _ in parts]),
        )
        return joined.aligned(ids.tolist(), features)

    everyone = len(frame)  # every customer explained, so each has an earlier explanation
    first = actions_of(trained, frame, tmp_path / "first", keep=keep, top_n=everyone)
    explained_first = len(stored)
    assert set(kept) == set(first.loc[first["reason_1"].notna(), "customer_id"])
    high = first[first["churn_risk"] == "HIGH"]
    assert len(high) and high[REASONS].notna().all().all()
    assert (first["risk_change"] == "new").all()
    moved = frame.index[frame["Contract"] == "Two year"][:40]
    second_upload = frame.copy()
    second_upload.loc[moved, "Contract"] = "Month-to-month"
    previous = dict(zip(first["customer_id"], first["churn_probability"], strict=True))
    second = actions_of(
        trained, second_upload, tmp_path / "second", previous, earlier=earlier, top_n=everyone
    ).set_index("customer_id")
    moved_ids = set(frame.loc[moved, "customerID"])
    up = set(second.index[second["risk_change"] == "up"])
    assert up and up <= moved_ids
    assert (second.loc[~second.index.isin(moved_ids), "risk_change"] == "same").all()
    assert second.loc[sorted(up), "previous_probability"].tolist() == pytest.approx(
        [previous[i] for i in sorted(up)]
    )
    explained_up = second.loc[sorted(up)].dropna(subset=["reason_1"])
    assert len(explained_up) == len(up) > 30
    assert (
        explained_up["reason_1"]
        .str.match(r"^Contract is Month-to-month \(\+\d\.\d\d, was Two year\)$")
        .all()
    )  # what changed comes first, and says what it was
    others = second.drop(index=explained_up.index)[REASONS].fillna("")
    assert not others.apply(lambda column: column.str.contains(", was ")).any().any()


def test_a_page_of_the_stored_list_reads_only_up_to_the_page(tmp_path):
    builder = ActionsBuilder(Recorder(), tmp_path, top_n=2, previous={"c0": 0.5})
    builder.add(*scored_rows(list(np.linspace(0.9, 0.1, 50))))
    stored = io.BytesIO()
    builder.write_csv(stored)
    first, after = actions.read_page(io.BytesIO(stored.getvalue()), 0, 20)
    assert [r["rank"] for r in first] == list(range(1, 21)) and after == 20
    assert first[0]["reason_1"] == "plan is p0" and first[19]["reason_1"] is None  # HIGH to 18
    assert first[0]["previous_probability"] == 0.5 and first[1]["previous_probability"] is None
    last, after = actions.read_page(io.BytesIO(stored.getvalue()), 40, 20)
    assert [r["customer_id"] for r in last] == [f"c{i}" for i in range(40, 50)] and after is None
