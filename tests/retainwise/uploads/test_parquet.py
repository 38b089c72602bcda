"""Parquet in: the same text cells as the CSV of the same rows, refusals that say why; Parquet
out: the results typed, ids kept as text."""

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retainwise.adapters.mlflow_registry import LoadedModel
from retainwise.config.errors import UploadRejected
from retainwise.local.sample import synthetic_customers
from retainwise.uploads import parquet
from retainwise.uploads.files import LocalFile, LocalSinks
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.reading import Limits, read_upload
from retainwise.uploads.scoring import Output, plan, score_object
from tests.helpers import trained_on_synthetic

LIMITS = Limits(max_bytes=50_000_000)


def parquet_of(frame: pd.DataFrame | pa.Table, **options) -> bytes:
    out = io.BytesIO()
    table = (
        frame if isinstance(frame, pa.Table) else pa.Table.from_pandas(frame, preserve_index=False)
    )
    pq.write_table(table, out, **options)
    return out.getvalue()


def customers(rows: int, seed: int) -> pd.DataFrame:
    """Typed as a customer's own tools would read them (pandas' read_csv)."""
    csv = synthetic_customers(rows, seed=seed, labeled=False).to_csv(index=False)
    return pd.read_csv(io.StringIO(csv))


def test_cells_match_the_csv_of_the_same_rows():
    frame = customers(300, seed=5)
    frame.loc[3, "Tenure Months"] = np.nan  # a null stays missing, as an empty CSV cell
    from_csv = read_upload(frame.to_csv(index=False).encode(), limits=LIMITS).frame
    data = parquet_of(frame)
    assert parquet.is_parquet(data)
    table = parquet.read_parquet(data, LIMITS)
    from_parquet = table.frame
    assert table.source == {"format": "parquet"} and list(from_parquet) == list(from_csv)
    for name in from_csv:
        expected, got = from_csv[name], from_parquet[name]
        assert got.isna().tolist() == expected.isna().tolist(), name
        numeric = pd.to_numeric(expected, errors="coerce")
        if numeric.notna().sum() == expected.notna().sum():
            assert np.allclose(pd.to_numeric(got), numeric, equal_nan=True, rtol=0), name
        else:
            assert got.tolist() == expected.tolist(), name


def local(tmp_path, data: bytes, name: str) -> LocalFile:
    path = tmp_path / name
    path.write_bytes(data)
    return LocalFile(path)


def test_a_parquet_source_reads_as_the_csv_of_its_rows_one_block_per_row_group(tmp_path):
    frame = customers(250, seed=6)
    data = parquet_of(frame, row_group_size=100)
    source = parquet.as_csv_source(local(tmp_path, data, "in.parquet"), LIMITS)
    blocks = list(source.blocks())
    assert len(blocks) == 3 and blocks[0].startswith(b'"customer_id",')
    assert not blocks[1].startswith(b'"customer_id"')  # the header once
    assert source.head(50) == blocks[0][:50] and source.size() > 0
    from_blocks = read_upload(b"".join(blocks), limits=LIMITS).frame
    pd.testing.assert_frame_equal(
        from_blocks, parquet.read_parquet(parquet_of(frame), LIMITS).frame
    )
    csv = local(tmp_path, frame.to_csv(index=False).encode(), "in.csv")
    assert parquet.as_csv_source(csv, LIMITS) is csv


@pytest.mark.parametrize(
    "table, limits, message",
    [
        (pa.table({"id": ["a"], "tags": [[1, 2]]}), LIMITS, "column 'tags' holds list"),
        (pa.table({"id": ["a"], "blob": [b"\x00"]}), LIMITS, "column 'blob' holds binary"),
        (pa.table({f"c{i}": [1] for i in range(12)}), Limits(max_columns=10), "12 columns"),
        (
            pa.table({"id": ["x" * 1000] * 2000, "v": [1] * 2000}),
            Limits(max_bytes=1_000_000),
            "more than 1 MB",
        ),
        (pa.table({"id": ["a"]}), LIMITS, "single column"),
    ],
)
def test_what_cannot_be_scored_is_refused_saying_why(table, limits, message):
    with pytest.raises(UploadRejected, match=message):
        parquet.read_parquet(parquet_of(table), limits)


def test_a_damaged_file_is_refused():
    with pytest.raises(UploadRejected, match="cannot be read"):
        parquet.read_parquet(b"PAR1" + b"\x00" * 100, LIMITS)


def test_results_go_out_typed_with_ids_as_text():
    csv = (
        b"customer_id,churn_probability,churn_risk,predicted_churn\n"
        b"007,0.8125,HIGH,1\n'=1+1,0.1,LOW,0\n"
    )
    table = pq.read_table(io.BytesIO(parquet.csv_to_parquet(csv, parquet.RESULT_TYPES)))
    assert table.schema.types == [pa.string(), pa.float64(), pa.string(), pa.int8()]
    assert table.to_pylist()[0] == {
        "customer_id": "007",
        "churn_probability": 0.8125,
        "churn_risk": "HIGH",
        "predicted_churn": 1,
    }


def test_parquet_scores_as_the_csv_of_its_rows_whole_and_in_chunks(tmp_path):
    """The same results and rejects files, and the same report counts, from the CSV read whole,
    the Parquet read whole, and the Parquet routed to the chunked path (row groups)."""
    trained = trained_on_synthetic(1500, seed=3)
    model = LoadedModel("churn", "1", trained.pipeline, trained.profile)
    frame = customers(400, seed=9)
    frame["Tenure Months"] = frame["Tenure Months"].astype(object)
    frame.loc[[5, 77], "Tenure Months"] = "many"  # rejected rows, the same in each
    frame.loc[12, "MonthlyCharges"] = np.nan
    csv = local(tmp_path, frame.to_csv(index=False).encode(), "in.csv")
    data = parquet_of(frame.astype({"Tenure Months": str}), row_group_size=128)
    source = local(tmp_path, data, "in.parquet")
    in_chunks = ScoringPolicy(LIMITS, chunked_above_bytes=10_000, chunk_bytes=5_000)
    assert plan(source, in_chunks).chunked and not plan(source, ScoringPolicy(LIMITS)).chunked

    runs = {
        "csv": score_object(csv, model, ScoringPolicy(LIMITS), sinks(tmp_path, "csv")),
        "whole": score_object(source, model, ScoringPolicy(LIMITS), sinks(tmp_path, "whole")),
        "chunks": score_object(source, model, in_chunks, sinks(tmp_path, "chunks")),
    }
    assert [r.chunked for r in runs.values()] == [False, False, True]
    assert {(r.report["rows_scored"], r.report["rows_rejected"]) for r in runs.values()} == {
        (398, 2)
    }
    for output in (Output.RESULTS, Output.REJECTS):
        expected = (tmp_path / f"csv.{output.value}").read_bytes()
        for name in ("whole", "chunks"):
            assert (tmp_path / f"{name}.{output.value}").read_bytes() == expected, (name, output)


def sinks(tmp_path, name: str) -> LocalSinks:
    return LocalSinks({output: tmp_path / f"{name}.{output.value}" for output in Output})
