"""One way to score an object: routed by size, the same files whole or in chunks."""

from __future__ import annotations

import gzip

import pandas as pd
import pytest

from retainwise.adapters.mlflow_registry import LoadedModel
from retainwise.config.errors import UploadRejected
from retainwise.local.sample import synthetic_customers
from retainwise.uploads.files import LocalFile, LocalSinks
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.scoring import Output, Remembered, plan, score_object
from retainwise.uploads.tables import Limits
from tests.helpers import trained_on_synthetic


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    trained = trained_on_synthetic(800, seed=5)
    return LoadedModel("churn", "1", trained.pipeline, trained.profile)


def upload(tmp_path, rows: int = 400, bad: int = 0):
    frame = synthetic_customers(rows, seed=9, labeled=False).astype(str)
    frame.loc[: bad - 1, "MonthlyCharges"] = "lots"
    path = tmp_path / "customers.csv"
    path.write_bytes(frame.to_csv(index=False).encode())
    return LocalFile(path)


def sinks(tmp_path, name: str) -> LocalSinks:
    return LocalSinks({output: tmp_path / f"{name}.{output.value}" for output in Output})


def test_a_large_file_goes_in_chunks_with_the_same_files(tmp_path, model):
    source = upload(tmp_path)
    small = ScoringPolicy(chunked_above_bytes=source.size() // 2, chunk_bytes=10_000)
    assert not plan(source, ScoringPolicy()).chunked and plan(source, small).chunked

    whole = score_object(source, model, ScoringPolicy(), sinks(tmp_path, "whole"))
    chunked = score_object(source, model, small, sinks(tmp_path, "chunked"))

    assert (whole.chunked, chunked.chunked) == (False, True)
    assert whole.report["rows_scored"] == chunked.report["rows_scored"] == 400
    for output in (Output.RESULTS, Output.REJECTS):
        expected = pd.read_csv(tmp_path / f"whole.{output.value}")
        pd.testing.assert_frame_equal(pd.read_csv(tmp_path / f"chunked.{output.value}"), expected)
    assert (tmp_path / "chunked.report").exists() and (tmp_path / "chunked.report_html").exists()


def test_a_failed_chunked_upload_leaves_rejects_and_no_results(tmp_path, model):
    source = upload(tmp_path, bad=300)
    policy = ScoringPolicy(chunked_above_bytes=1000, chunk_bytes=10_000)
    scored = score_object(source, model, policy, sinks(tmp_path, "out"))
    assert scored.chunked and "300 of 400 rows are invalid" in scored.report["error"]
    assert scored.report["files"]["results"] is None
    assert not (tmp_path / "out.results").exists()
    assert len(pd.read_csv(tmp_path / "out.rejects")) == 300
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []


def test_a_gzip_file_is_routed_by_its_expanded_size(tmp_path):
    path = tmp_path / "big.csv.gz"
    path.write_bytes(gzip.compress(b"a,b\n" + b"1,2\n" * 50_000))
    assert plan(LocalFile(path), ScoringPolicy(chunked_above_bytes=100_000)).chunked
    with pytest.raises(UploadRejected, match="expands to more than"):
        plan(LocalFile(path), ScoringPolicy(Limits(max_bytes=150_000)))


class CountedFile:
    """A LocalFile that counts what it is asked, as S3 requests would be counted."""

    def __init__(self, source: LocalFile) -> None:
        self.source, self.asked = source, {"size": 0, "head": 0, "read": 0, "blocks": 0}

    def size(self) -> int:
        self.asked["size"] += 1
        return self.source.size()

    def head(self, size: int = 4096) -> bytes:
        self.asked["head"] += 1
        return self.source.head(size)

    def blocks(self):
        self.asked["blocks"] += 1
        return self.source.blocks()

    def read(self) -> bytes:
        self.asked["read"] += 1
        return self.source.read()


def assert_same_outputs(directory, name: str, other: str) -> None:
    """The results, rejects and actions files written under `name` and `other` are identical."""
    for output in (Output.RESULTS, Output.REJECTS, Output.ACTIONS):
        assert (directory / f"{name}.{output.value}").read_bytes() == (
            directory / f"{other}.{output.value}"
        ).read_bytes()


def test_routing_and_scoring_ask_the_store_for_size_and_first_bytes_once(tmp_path, model):
    source = CountedFile(upload(tmp_path))
    route = plan(source, ScoringPolicy())  # a task of its own: the route carries what it learnt
    scored = score_object(source, model, ScoringPolicy(), sinks(tmp_path, "out"), route=route)

    assert scored.report["rows_scored"] == 400
    assert source.asked == {"size": 1, "head": 1, "read": 1, "blocks": 0}
    expected = score_object(upload(tmp_path), model, ScoringPolicy(), sinks(tmp_path, "plain"))
    assert_same_outputs(tmp_path, "out", "plain")
    assert expected.report["rows_scored"] == 400


def test_a_small_file_remembers_the_bytes_it_has(tmp_path):
    path = tmp_path / "tiny.csv"
    path.write_bytes(b"customer_id,tenure\n1,2\n")
    remembered = Remembered(CountedFile(LocalFile(path)))
    assert remembered.head(4) == b"cust" and remembered.head() == path.read_bytes()
    assert remembered.size() == len(path.read_bytes())
    assert remembered.source.asked == {"size": 1, "head": 1, "read": 0, "blocks": 0}
    assert remembered.head(10_000) == path.read_bytes()  # more than remembered: asked again
    assert remembered.source.asked["head"] == 2


def test_a_small_upload_held_whole_is_read_once_and_answers_everything(tmp_path, model):
    """The flow's one-task path: one read of the store (S3: one GET) serves the route's size
    and first bytes, and the scoring; the files are those of a source read as each step asks."""
    source = CountedFile(upload(tmp_path))
    whole = Remembered.whole(source).fetch_ahead()
    route = plan(whole, ScoringPolicy())
    scored = score_object(whole, model, ScoringPolicy(), sinks(tmp_path, "out"), route=route)
    assert source.asked == {"size": 0, "head": 0, "read": 1, "blocks": 0}
    assert route.size == len(source.source.read()) and not route.chunked
    assert whole.head(4) == source.source.read()[:4]
    assert b"".join(whole.blocks()) == source.source.read()
    score_object(upload(tmp_path), model, ScoringPolicy(), sinks(tmp_path, "plain"))
    assert_same_outputs(tmp_path, "out", "plain")
    assert scored.report["rows_scored"] == 400


def test_a_whole_sources_failed_read_is_raised_where_it_is_first_used(tmp_path):
    """A read started ahead that fails (S3 unreachable) raises in the step that needs the
    bytes, so the task's retry policy sees the store's own error."""

    class Unreachable(CountedFile):
        def read(self) -> bytes:
            super().read()
            raise ConnectionError("no store")

    path = tmp_path / "tiny.csv"
    path.write_bytes(b"customer_id,tenure\n1,2\n")
    whole = Remembered.whole(Unreachable(LocalFile(path))).fetch_ahead()
    with pytest.raises(ConnectionError, match="no store"):
        whole.size()
    with pytest.raises(ConnectionError):
        whole.read()
    assert whole.source.asked["read"] == 1  # started once, not again per question
