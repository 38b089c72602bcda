"""Parquet in: the same text cells as the CSV of the same rows, refusals that say why; Parquet
out: the results typed, ids kept as text."""

import io

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from retainwise.config.errors import UploadRejected
from retainwise.local.sample import synthetic_customers
from retainwise.uploads import parquet
from retainwise.uploads.reading import Limits, read_upload

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
    frame.loc[3, "tenure"] = np.nan  # a null stays missing, as an empty CSV cell
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


def test_row_groups_are_the_chunks():
    frame = customers(250, seed=6)
    file = parquet.open_parquet(parquet_of(frame, row_group_size=100), LIMITS)
    sizes = [len(t.frame) for t in parquet.row_groups(file, LIMITS)]
    assert sizes == [100, 100, 50]


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
