"""The chunked scoring path gives the same results, rejects and counts as the whole-file path."""

from __future__ import annotations

import gzip
import io
import time

import numpy as np
import pandas as pd
import pytest

from retainwise.adapters.mlflow_registry import LoadedModel
from retainwise.config.errors import UploadRejected
from retainwise.local.sample import synthetic_customers
from retainwise.uploads import streaming
from retainwise.uploads.pipeline import score_file
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.report import build_report, report_from_counts
from tests.helpers import trained_on_synthetic


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    trained = trained_on_synthetic(1500, seed=5)
    return LoadedModel("churn", "1", trained.pipeline, trained.profile)


def messy_upload(rows: int = 600) -> bytes:
    """Duplicates within and across chunks, blank ids, bad numbers, quoted commas and newlines."""
    frame = synthetic_customers(rows, seed=9, labeled=False).astype(str)
    frame.loc[10, "customer_id"] = frame.loc[3, "customer_id"]  # near duplicate
    frame.loc[500, "customer_id"] = frame.loc[20, "customer_id"]  # far duplicate
    frame.loc[30, "customer_id"] = ""  # missing id
    frame.loc[40, "MonthlyCharges"] = "lots"  # not a number
    frame.loc[50, "Tenure Months"] = "9999"  # out of range
    frame.loc[60, "PaymentMethod"] = 'Cheque, "paper"\nby post'  # quoted, spans two lines
    return frame.to_csv(index=False).encode()


def whole_file(data: bytes, model: LoadedModel, share: float = 1.0):
    """(results, rejects, report) as the whole-file path makes them."""
    scored = score_file(data, model, ScoringPolicy(max_rejected_share=share))
    read = lambda b: pd.read_csv(io.BytesIO(b), dtype=str)  # noqa: E731
    results = read(scored.results_csv).astype({"churn_probability": float})
    rejects = read(scored.rejects_csv).astype({"row_number": int})
    return results, rejects, build_report(scored.upload, scored.results, model)


def chunked(data: bytes, model: LoadedModel, chunk_bytes: int, share: float = 1.0):
    results, rejects = io.BytesIO(), io.BytesIO()
    blocks = (data[i : i + 1000] for i in range(0, len(data), 1000))
    policy = ScoringPolicy(chunk_bytes=chunk_bytes, max_rejected_share=share)
    counts, _ = streaming.score_stream(blocks, model, policy, results, rejects)
    read = lambda b: pd.read_csv(io.BytesIO(b.getvalue()), dtype=str)  # noqa: E731
    scored = read(results).astype({"churn_probability": float})
    return scored, read(rejects).astype({"row_number": int}), report_from_counts(counts, model)


@pytest.mark.parametrize("chunk_bytes", [4_000, 25_000, 10**9])
def test_chunked_equals_whole_file(model, chunk_bytes):
    data = messy_upload()
    expected, expected_rejects, expected_report = whole_file(data, model)
    results, rejects, report = chunked(data, model, chunk_bytes)

    assert report["rows_total"] == expected_report["rows_total"] == 600
    assert report["rows_total"] == report["rows_scored"] + report["rows_rejected"]
    assert results["customer_id"].tolist() == expected["customer_id"].tolist()
    np.testing.assert_allclose(
        results["churn_probability"], expected["churn_probability"], atol=5e-7
    )
    assert results["churn_risk"].tolist() == expected["churn_risk"].tolist()
    assert rejects["row_number"].tolist() == expected_rejects["row_number"].tolist()
    assert rejects["reason"].tolist() == expected_rejects["reason"].tolist()
    assert sum(report["risk_counts"].values()) == len(results)
    assert report == expected_report  # drift, per-column counts and reasons add up across chunks


def test_gzip_stream_equals_plain(model):
    data = messy_upload(300)
    plain, _, plain_report = chunked(data, model, 5_000)
    packed, _, packed_report = chunked(gzip.compress(data), model, 5_000)
    assert plain.equals(packed)
    accounting = ("rows_total", "rows_scored", "rows_rejected")
    assert [plain_report[k] for k in accounting] == [packed_report[k] for k in accounting]


def test_record_chunks_never_split_a_quoted_newline():
    data = b'id,note\n1,"a\nb"\n2,plain\n3,"x\n\ny"\n4,z\n'
    pieces = list(streaming.record_chunks([data], chunk_bytes=10))
    assert all(piece.startswith(b"id,note\n") for piece in pieces)
    assert b"".join(piece[len(b"id,note\n") :] for piece in pieces) == data[len(b"id,note\n") :]
    assert all(piece.count(b'"') % 2 == 0 for piece in pieces)


def test_too_many_rejected_rows_fail_the_whole_stream(model):
    frame = synthetic_customers(200, seed=4, labeled=False).astype(str)
    frame.loc[:150, "MonthlyCharges"] = "lots"
    _, rejects, report = chunked(frame.to_csv(index=False).encode(), model, 3_000, share=0.5)
    assert report["status"] == "FAILED" and len(rejects) == 151
    assert report["error"].startswith(
        "151 of 200 rows are invalid (more than 50%); for example row 1:"
    )


def test_utf16_is_not_streamed():
    assert not streaming.streamable("customer_id,x\n1,2\n".encode("utf-16"))
    assert streaming.streamable(b"\xef\xbb\xbfcustomer_id,x\n1,2\n")


def test_bad_lines_and_decimal_commas_keep_their_file_row_numbers_across_chunks(model):
    frame = synthetic_customers(400, seed=12, labeled=False).astype(str)
    text = frame.to_csv(index=False, sep=";").replace(".", ",")  # a European export
    lines = text.splitlines(keepends=True)
    lines[101] = lines[101].rstrip("\n") + ";extra;cells\n"  # data row 101: too many fields
    lines[250] = "only;three;fields\n"  # data row 250: too few
    data = "".join(lines).encode()
    expected, expected_rejects, expected_report = whole_file(data, model)
    results, rejects, report = chunked(data, model, 3_000)
    assert rejects["row_number"].tolist() == expected_rejects["row_number"].tolist() == [101, 250]
    assert rejects["reason"].tolist() == expected_rejects["reason"].tolist()
    assert results["customer_id"].tolist() == expected["customer_id"].tolist()
    np.testing.assert_allclose(
        results["churn_probability"], expected["churn_probability"], atol=5e-7
    )
    assert report == expected_report and report["source"]["delimiter"] == "semicolon"


def test_an_overlong_row_at_the_start_of_a_later_chunk_is_a_bad_row_not_a_bad_file():
    header = b"id,note\n"
    table = streaming.read_piece(header + b"1,a,EXTRA\n2,b\n3,c\n", first=False)
    assert table.malformed == [(1, "3 fields where the header has 2")]
    assert table.frame["id"].tolist() == ["2", "3"]
    first = streaming.read_piece(header + b"1,a,EXTRA\n2,b\n", first=True)
    assert first.malformed == [(1, "3 fields where the header has 2")]
    alone = streaming.read_piece(header + b"1,a,EXTRA", first=False)  # no final newline
    assert alone.malformed == [(1, "3 fields where the header has 2")] and alone.frame.empty


def test_short_and_overlong_rows_are_rejected_alike_on_both_paths(model):
    frame = synthetic_customers(300, seed=4, labeled=False).astype(str)
    lines = frame.to_csv(index=False).splitlines(keepends=True)
    lines[5] = ",".join(lines[5].split(",")[:-3]) + "\n"  # data row 5: cut off mid-line
    lines[120] = lines[120].rstrip("\n") + ",,\n"  # data row 120: trailing empties, kept
    lines[200] = lines[200].rstrip("\n") + ",x\n"  # data row 200: one field too many
    data = "".join(lines).encode()
    _, expected_rejects, expected_report = whole_file(data, model)
    _, rejects, report = chunked(data, model, 3_000)
    width = len(frame.columns)
    assert expected_rejects["row_number"].tolist() == rejects["row_number"].tolist() == [5, 200]
    assert (
        expected_rejects["reason"].tolist()
        == rejects["reason"].tolist()
        == [
            f"{width - 3} fields where the header has {width}",
            f"{width + 1} fields where the header has {width}",
        ]
    )
    assert report == expected_report and report["rows_total"] == 300
    assert report["rows_rejected"] == 2


def test_a_record_that_never_ends_is_refused_naming_the_limit():
    endless = (b'id,note\n1,a\n2,"' + b"x" * 5000 + b"\n") * 3
    with pytest.raises(UploadRejected, match="longer than 0 MiB .*quote"):
        list(streaming.record_chunks([endless], chunk_bytes=1000, max_record_bytes=2000))
    with pytest.raises(UploadRejected, match="the header of the file is longer"):
        list(streaming.record_chunks([b"a" * 10_000], chunk_bytes=1000, max_record_bytes=2000))


def test_seen_ids_name_the_first_row_across_pieces_whatever_the_order():
    seen = streaming.SeenIds()
    first = pd.Series(["C9", "C1", "C5", "C1"], dtype="str")
    assert seen.duplicates(first, np.array([1, 2, 3, 4])).tolist() == [0, 0, 0, 2]
    second = pd.Series(["C7", "C5", None, "C9", "C7", "C1"], dtype="str")
    assert seen.duplicates(second, np.array([5, 6, 7, 8, 9, 10])).tolist() == [0, 3, 0, 1, 5, 2]
    third = pd.Series(["C7", "C2", "C9"], dtype="str")
    assert seen.duplicates(third, np.array([11, 12, 13])).tolist() == [5, 0, 1]


def test_seen_ids_kept_on_disk_name_the_first_row_as_those_in_memory(monkeypatch):
    """Runs too large to merge again are spilled to files: every id found again still names
    the row it was first seen on, in whichever run (in memory or on disk) it is."""
    monkeypatch.setattr(streaming.SeenIds, "MERGE_LIMIT", 64)
    rng = np.random.default_rng(4)
    seen, first_row, row = streaming.SeenIds(), {}, 0
    for size in rng.integers(1, 40, 80):
        ids = [f"C{v}" for v in rng.integers(0, 1500, size)]
        rows = np.arange(row + 1, row + 1 + size)
        expected = []
        for customer, number in zip(ids, rows.tolist(), strict=True):
            expected.append(first_row.get(customer, 0))
            first_row.setdefault(customer, number)
        assert seen.duplicates(pd.Series(ids, dtype="str"), rows).tolist() == expected
        row += size
    assert len(seen.spilled) > 3 and sum(len(keys) for keys, _ in seen.runs) <= 64


@pytest.mark.parametrize("sizes", [(0, 4), (4, 0), (1000, 700), (3, 3000)])
def test_merging_two_runs_of_seen_ids_equals_sorting_them_together(sizes):
    rng = np.random.default_rng(sum(sizes))
    runs = []
    for size in sizes:
        keys = np.sort(rng.integers(0, 2**63, size, dtype=np.uint64))
        runs.append((keys, rng.integers(1, 10**6, size).astype(np.int32)))
    keys, rows = streaming.merge_sorted(*runs)
    everything = np.concatenate([runs[0][0], runs[1][0]])
    order = np.argsort(everything, kind="stable")
    assert keys.tolist() == everything[order].tolist()
    assert rows.tolist() == np.concatenate([runs[0][1], runs[1][1]])[order].tolist()


def test_stage_seconds_added_from_many_threads_at_once_are_all_kept():
    """The reader, the scorers and the writer time their stages at the same time; a thread
    switch between reading and writing a stage's sum (forced here) loses no time."""
    import threading

    class Switching(dict):
        def __getitem__(self, stage):
            value = super().__getitem__(stage)
            time.sleep(0)  # let another thread run between the read and the write
            return value

    totals = streaming.Totals()
    totals.seconds = Switching(totals.seconds)

    def add() -> None:
        for _ in range(2_000):
            totals.timed("scoring", 0.0, now=1.0)

    threads = [threading.Thread(target=add) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert totals.seconds["scoring"] == 8_000.0
