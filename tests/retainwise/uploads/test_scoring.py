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
from retainwise.uploads.scoring import Output, plan, score_object
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
