"""Property tests over the readers: whatever the bytes, the outcome is a clean rejection
(UploadRejected) or an accounted result (scored + rejected = rows), on the whole-file pipeline
and on the chunked reader, never another exception.

`make test` runs a short pass; `make fuzz` runs RETAINWISE_FUZZ_EXAMPLES (default 40 here).
"""

from __future__ import annotations

import gzip
import io
import os

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from retainwise.adapters.mlflow_registry import LoadedModel
from retainwise.config.errors import UploadRejected
from retainwise.local.sample import synthetic_customers
from retainwise.uploads import streaming
from retainwise.uploads.pipeline import score_file
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.reading import Limits, read_upload
from tests.helpers import trained_on_synthetic

EXAMPLES = int(os.environ.get("RETAINWISE_FUZZ_EXAMPLES", "40"))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=EXAMPLES <= 40,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
    ],
)
SAMPLE = synthetic_customers(30, seed=8, labeled=False).astype(str)
LIMITS = Limits(
    max_bytes=2_000_000,
    max_columns=50,
    max_record_bytes=4096,
    max_workbook_bytes=1_000_000,
    max_cells=100_000,
)


@pytest.fixture(scope="module")
def model():
    trained = trained_on_synthetic(800, seed=5)
    return LoadedModel("churn", "1", trained.pipeline, trained.profile)


# cells: real values, blanks, and the characters that break CSV readers
cells = st.one_of(
    st.sampled_from(sorted(set(SAMPLE.to_numpy().ravel())) + ["", " ", "NA", "-", "=1+1"]),
    st.text(alphabet=st.sampled_from(list(',;"\n\r\t|x9.\x00é\ufeff ')), max_size=8),
    st.text(max_size=6),
)
rows = st.lists(cells, min_size=0, max_size=len(SAMPLE.columns) + 2)
headers = st.one_of(
    st.just(list(SAMPLE.columns)),
    st.lists(
        st.sampled_from(list(SAMPLE.columns) + ["", "x", "customer_id"]), min_size=1, max_size=14
    ),
)


@st.composite
def uploads(draw) -> bytes:
    """Mostly CSV-shaped text (some rows too short or too long, quotes, blank lines), sometimes
    gzip'd or re-encoded, sometimes raw bytes."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=400))
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))

    def quote(cell: str) -> str:
        return '"' + cell.replace('"', '""') + '"' if draw(st.booleans()) else cell

    lines = [delimiter.join(draw(headers))]
    for _ in range(draw(st.integers(0, 12))):
        lines.append(delimiter.join(quote(c) for c in draw(rows)))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(lines) + draw(st.sampled_from(["", newline, newline * 3]))
    data = text.encode(
        draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"])), errors="replace"
    )
    if draw(st.booleans()):
        data = data[: draw(st.integers(0, len(data)))]  # cut off anywhere
    return gzip.compress(data) if draw(st.integers(0, 4)) == 0 else data


@FUZZ
@given(data=uploads())
def test_reading_is_a_clean_rejection_or_accounts_for_every_row(data):
    try:
        table = read_upload(data, limits=LIMITS)
    except UploadRejected as exc:
        assert str(exc)
        return
    rows = [row for row, _ in table.malformed]
    assert table.rows_total == records_under_header(data)
    assert len(set(rows)) == len(rows) and all(1 <= row <= table.rows_total for row in rows)
    assert table.rows_total == len(table.frame) + len(table.malformed)


def records_under_header(data: bytes) -> int:
    """Data rows as Python's csv module counts them (blank lines are no row); the reader must
    account for each of them, in the frame or among the malformed."""
    import csv

    from retainwise.uploads.compression import gunzip
    from retainwise.uploads.reading import decode, sniff

    if data[:2] == b"\x1f\x8b":
        data = gunzip(data, LIMITS.max_bytes)
    text = decode(data)[0]
    records = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=sniff(text)[0]) if r]
    return len(records) - 1


def test_a_lone_carriage_return_in_a_quoted_field_keeps_its_row():
    """Found by `make fuzz`: the row was parsed, then lost when Arrow re-read the kept rows."""
    table = read_upload(b'customer_id,customer_id,customer_id\n , ,"\r9"\n ')
    assert table.rows_total == 2 and len(table.frame) == 1
    assert table.malformed == [(2, "1 fields where the header has 3")]


@FUZZ
@given(data=uploads())
def test_whole_file_pipeline_scores_plus_rejects_equals_rows(model, data):
    try:
        scored = score_file(data, model, ScoringPolicy(LIMITS, max_rejected_share=1.0))
    except UploadRejected:
        return
    upload = scored.upload
    assert len(scored.results) + upload.rows_rejected == upload.rows_total
    assert upload.rejects["row_number"].is_unique


@FUZZ
@given(data=uploads(), chunk_bytes=st.integers(20, 400), block=st.integers(1, 97))
def test_chunked_reader_scores_plus_rejects_equals_rows(model, data, chunk_bytes, block):
    blocks = (data[i : i + block] for i in range(0, len(data), block))
    results, rejects = io.BytesIO(), io.BytesIO()
    try:
        policy = ScoringPolicy(LIMITS, chunk_bytes=chunk_bytes, max_rejected_share=1.0)
        counts, totals = streaming.score_stream(blocks, model, policy, results, rejects)
    except UploadRejected as exc:
        assert str(exc)
        return
    written = pd.read_csv(io.BytesIO(results.getvalue()), dtype=str, keep_default_na=False)
    assert counts.rows_total == totals.rows_total
    assert counts.rows_scored + counts.rows_rejected == counts.rows_total
    assert counts.rows_rejected == totals.rows_rejected
    assert len(written) == counts.rows_scored
