"""A large whole file in two halves gives the one-piece path's files and report, byte for byte."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from retainwise.adapters.mlflow_registry import LoadedModel
from retainwise.uploads.files import LocalFile, LocalSinks
from retainwise.uploads.halves import (
    Helper,
    cut_in_two,
    one_piece,
    score_whole,
    worth_splitting,
)
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.scoring import Output, score_object
from tests.conftest import telco_path

SPLIT = ScoringPolicy(split_above_bytes=0, split_max_load=float("inf"))


@pytest.fixture(scope="module")
def telco() -> pd.DataFrame:
    return pd.read_csv(telco_path(), dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def model(telco_trained) -> LoadedModel:
    _, trained = telco_trained
    return LoadedModel("churn", "1", trained.pipeline, trained.profile)


@pytest.fixture
def in_threads():
    """The helper's calls in a thread of this process (the merge is what is tested here; the
    spawned process has its own test below)."""
    helper = Helper(spawn=lambda: ThreadPoolExecutor(1))  # type: ignore[arg-type, return-value]
    yield helper
    helper.close()


def warm(helper: Helper, data: bytes, model, policy: ScoringPolicy = SPLIT) -> Helper:
    """The helper holding `model`, as after a first large upload."""
    assert not helper.ready(model, data[:65536], policy)  # the first upload goes in one piece
    helper.loading[(model.name, model.version)].result()
    assert helper.ready(model, data[:65536], policy)
    return helper


def both_ways(tmp_path, data: bytes, model, helper: Helper, policy: ScoringPolicy = SPLIT):
    """(one piece, two halves): the report and the files' bytes of each (the files of each in
    its own directory under the same names, so the reports name the same files)."""
    path = tmp_path / "upload.csv"
    path.write_bytes(data)
    out = []
    for name, used in (("one", None), ("two", helper)):
        (tmp_path / name).mkdir()
        sinks = LocalSinks({o: tmp_path / name / f"out.{o.value}" for o in Output})
        scored = score_object(LocalFile(path), model, policy, sinks, "p1", helper=used)
        files = {
            o: (tmp_path / name / f"out.{o.value}").read_bytes()
            for o in (Output.RESULTS, Output.REJECTS, Output.ACTIONS)  # the reports name paths
            if (tmp_path / name / f"out.{o.value}").exists()
        }
        report = {
            **scored.report,
            "files": {k: v and Path(v).name for k, v in scored.report["files"].items()},
        }
        out.append((report, files))
    return out


def test_telco_in_halves_gives_the_one_piece_files(tmp_path, telco, model, in_threads):
    data = telco.drop(columns=["Churn"]).to_csv(index=False).encode()
    warm(in_threads, data, model)
    assert score_whole(data, model, SPLIT, in_threads).halves
    (one_report, one_files), (two_report, two_files) = both_ways(tmp_path, data, model, in_threads)
    assert two_files == one_files and Output.RESULTS in one_files and Output.ACTIONS in one_files
    assert json.dumps(two_report, sort_keys=True) == json.dumps(one_report, sort_keys=True)
    assert one_report["rows_scored"] == len(telco)


def hostile(telco: pd.DataFrame) -> bytes:
    """Telco rows with what spans the cut: ids of the first half again in the second (once,
    twice, and after a copy rejected for a bad value), copies within each half, bad values,
    rows with a field too many, a quoted comma, a blank line."""
    frame = telco.drop(columns=["Churn"]).head(3000).reset_index(drop=True)
    ids = frame["customerID"]
    frame.loc[2000, "customerID"] = ids[5]  # across the cut
    frame.loc[2100, "customerID"] = ids[6]  # across the cut, twice
    frame.loc[2900, "customerID"] = ids[6]
    frame.loc[2200, "customerID"] = ids[2300]  # within the second half only
    frame.loc[100, "customerID"] = ids[99]  # within the first half only
    frame.loc[7, "MonthlyCharges"] = "lots"  # a first-half row rejected for a value...
    frame.loc[2400, "customerID"] = ids[7]  # ...its id in the second half is scored there
    frame.loc[2500, "MonthlyCharges"] = "lots"
    frame.loc[2600, "PaymentMethod"] = "Bank, transfer"  # quoted: an unknown category
    text = frame.to_csv(index=False)
    lines = text.splitlines(keepends=True)
    lines.insert(50, "1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22\n")
    lines.insert(2700, "\n")
    lines.insert(2800, lines[2800].rstrip("\n") + ",extra\n")
    return "".join(lines).encode()


def test_duplicates_across_the_cut_are_rejected_as_in_one_piece(tmp_path, telco, model, in_threads):
    data = hostile(telco)
    policy = replace(SPLIT, carry=("gender", "tenure"))  # carried cells follow the rows kept
    warm(in_threads, data, model, policy)
    scored = score_whole(data, model, policy, in_threads)
    assert scored.halves
    (one_report, one_files), (two_report, two_files) = both_ways(
        tmp_path, data, model, in_threads, policy
    )
    assert b",gender,tenure" in two_files[Output.RESULTS].split(b"\n")[0]
    assert two_files[Output.REJECTS] == one_files[Output.REJECTS]
    assert two_files[Output.RESULTS] == one_files[Output.RESULTS]
    assert json.dumps(two_report, sort_keys=True) == json.dumps(one_report, sort_keys=True)
    rejects = pd.read_csv(tmp_path / "two" / "out.rejects", dtype=str)
    duplicates = rejects[rejects["reason"].str.startswith("duplicate")]
    assert len(duplicates) == 5 and one_report["reject_reasons"]["duplicate id"] == 5
    # both later copies of the first half's row 7 name it, though the second names a row of
    # the second half when that half is validated alone
    assert (duplicates["reason"] == "duplicate customer id; already scored from row 7").sum() == 2


def test_too_many_rejected_fails_as_in_one_piece(tmp_path, telco, model, in_threads):
    frame = telco.drop(columns=["Churn"]).head(2000).copy()
    frame.loc[1200:, "MonthlyCharges"] = "lots"  # 40% of the rows, all in the second half
    data = frame.to_csv(index=False).encode()
    policy = ScoringPolicy(split_above_bytes=0, split_max_load=float("inf"), max_rejected_share=0.3)
    warm(in_threads, data, model, policy)
    (one_report, one_files), (two_report, two_files) = both_ways(
        tmp_path, data, model, in_threads, policy
    )
    assert one_report["error"] and two_report == one_report and two_files == one_files
    assert Output.RESULTS not in two_files


def test_the_cut_is_at_a_record_end_and_both_halves_have_the_header():
    data = b'id,note\n1,"a\nb"\n2,x\n3,"c\nd\ne"\n4,y\n'
    first, second = cut_in_two(data)  # type: ignore[misc]
    assert first + second[len(b"id,note\n") :] == data
    assert second.startswith(b"id,note\n") and first.count(b'"') % 2 == 0
    assert cut_in_two(b"id,note\n") is None


def test_only_large_plain_files_with_an_id_split_on_a_free_core(model):
    big = ScoringPolicy(split_above_bytes=100, split_max_load=0.75)
    data = b"customerID,x\n" + b"1,2\n" * 50
    assert worth_splitting(data, model, big, load=0.5)
    assert not worth_splitting(data, model, big, load=1.6 * 2)  # both cores busy
    assert not worth_splitting(data[:90], model, big, load=0.0)  # too small
    assert not worth_splitting(b"\x1f\x8b" + data, model, big, load=0.0)  # gzip
    assert not worth_splitting(data.decode().encode("utf-16"), model, big, load=0.0)


def test_a_cold_helper_leaves_the_upload_in_one_piece(telco, model, in_threads):
    data = telco.drop(columns=["Churn"]).head(500).to_csv(index=False).encode()
    assert not score_whole(data, model, SPLIT, in_threads).halves  # starts warming it
    in_threads.loading[(model.name, model.version)].result()
    assert score_whole(data, model, SPLIT, in_threads).halves


@pytest.mark.e2e  # a second interpreter that imports the scoring stack: ~7 s, `make test` only
def test_a_spawned_helper_scores_the_second_half(telco, model):
    """The real helper: a spawned process, the model pickled to it once."""
    data = telco.drop(columns=["Churn"]).to_csv(index=False).encode()
    helper = Helper()
    try:
        warm(helper, data, model)
        split = score_whole(data, model, SPLIT, helper)
    finally:
        helper.close()
    whole = one_piece(data, model, SPLIT)
    assert split.halves and split.results_csv == whole.results_csv
    assert split.rejects_csv == whole.rejects_csv
