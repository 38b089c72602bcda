"""Parquet in and out. An upload is Parquet when its bytes start with `PAR1` (not by its name);
its cells become the same text cells a CSV of the same rows gives, so validation, rejects and
scores are the same. Results go out as Parquet on request, typed.
"""

from __future__ import annotations

import io
import tempfile
from collections.abc import Iterator
from functools import cached_property
from typing import Protocol

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from retainwise.config.errors import UploadRejected
from retainwise.uploads.tables import Limits, TextTable, check_shape, refuse_wide

PARQUET_MAGIC = b"PAR1"
MEDIA_TYPE = "application/vnd.apache.parquet"
# the results' typed columns; every other column of an output stays text
RESULT_TYPES = {"churn_probability": pa.float64(), "predicted_churn": pa.int8()}


class ByteSource(Protocol):
    """What an upload's bytes offer (retainwise.uploads.scoring.Source)."""

    def size(self) -> int: ...

    def head(self, size: int = 4096) -> bytes: ...

    def blocks(self) -> Iterator[bytes]: ...

    def read(self) -> bytes: ...


def is_parquet(head: bytes) -> bool:
    return head[:4] == PARQUET_MAGIC


def as_csv_source(source: ByteSource, limits: Limits) -> ByteSource:
    """A Parquet upload whose blocks are the CSV of its rows (others unchanged), so the chunked
    path, the validation and the rejects are the CSV ones."""
    return CsvOfParquet(source, limits) if is_parquet(source.head(4)) else source


class CsvOfParquet:
    """A Parquet source for the chunked path as CSV: a header, then each row group's rows as
    one block; the whole-file path `read`s the Parquet itself (reading.read_upload reads it).

    The file is spooled to a temporary file (Parquet needs its footer first); memory holds one
    row group at a time. `size` is the data's size as the footer declares it, uncompressed.
    """

    def __init__(self, source: ByteSource, limits: Limits) -> None:
        self.source, self.limits = source, limits

    @cached_property
    def file(self) -> pq.ParquetFile:
        spool = tempfile.TemporaryFile()
        for block in self.source.blocks():
            spool.write(block)
        spool.seek(0)
        return open_parquet(pa.PythonFile(spool, mode="r"), self.limits)

    def size(self) -> int:
        meta = self.file.metadata
        return sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))

    def head(self, size: int = 4096) -> bytes:
        head = b""
        for block in self.blocks():
            head += block
            if len(head) >= size:
                break
        return head[:size]

    def blocks(self) -> Iterator[bytes]:
        first = True
        for table in row_groups(self.file, self.limits):
            yield csv_bytes(text_columns(table), header=first)
            first = False
        if first:  # no row group: the header alone
            yield csv_bytes(text_columns(self.file.schema_arrow.empty_table()))

    def read(self) -> bytes:
        return self.source.read()


def csv_bytes(table: pa.Table, header: bool = True) -> bytes:
    """Text columns as CSV, every value quoted (a cell may hold a delimiter or a newline)."""
    out = io.BytesIO()
    options = pa_csv.WriteOptions(include_header=header, quoting_style="all_valid")
    pa_csv.write_csv(table, out, options)
    return out.getvalue()


def open_parquet(source: pa.NativeFile | bytes, limits: Limits) -> pq.ParquetFile:
    """The file, refused before a row is read if too wide. Text columns are read as
    dictionaries, so their size once expanded is known before it is made (`_text_bytes`)."""
    reader = pa.BufferReader(source) if isinstance(source, bytes) else source
    try:
        schema = pq.ParquetFile(reader).schema_arrow
        refuse_wide(len(schema.names), limits.max_columns)
        texts = [f.name for f in schema if _texts(f.type)]
        return pq.ParquetFile(reader, read_dictionary=texts)
    except (pa.ArrowInvalid, OSError) as exc:
        raise UploadRejected(f"the file starts like Parquet but cannot be read: {exc}") from None


def read_parquet(data: bytes, limits: Limits) -> TextTable:
    """The whole file as text cells."""
    file = open_parquet(data, limits)
    tables = list(row_groups(file, limits))
    return text_table(pa.concat_tables(tables) if tables else file.schema_arrow.empty_table())


def row_groups(file: pq.ParquetFile, limits: Limits) -> Iterator[pa.Table]:
    """The file's row groups one by one, refused once their data passes the size limit."""
    size = 0
    for index in range(file.num_row_groups):
        table = _read(file, index)
        size += _text_bytes(table)
        refuse_large(size, limits)
        yield table


def refuse_large(size: int, limits: Limits) -> None:
    if size > limits.max_bytes:
        raise UploadRejected(
            f"the Parquet file holds more than {limits.max_bytes // 1_000_000} MB of data once "
            "decompressed (the limit)"
        )


def _read(file: pq.ParquetFile, index: int) -> pa.Table:
    try:
        return file.read_row_group(index)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise UploadRejected(f"the Parquet file cannot be read: {exc}") from None


def _text_bytes(table: pa.Table) -> int:
    """About the bytes the table takes with every dictionary expanded: a small file of repeated
    long texts is as large as the CSV it stands for."""
    size = 0
    for chunk in (c for column in table.columns for c in column.chunks):
        if not pa.types.is_dictionary(chunk.type):
            size += chunk.nbytes
        elif _texts(chunk.type.value_type):
            lengths = pc.binary_length(chunk.dictionary)
            size += (pc.sum(pc.take(lengths, chunk.indices)).as_py() or 0) + 4 * len(chunk)
        else:
            size += 24 * len(chunk)
    return size


def _texts(kind: pa.DataType) -> bool:
    return bool(
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind)
    )


def text_table(table: pa.Table) -> TextTable:
    return check_shape(TextTable(text_columns(table).to_pandas(), {"format": "parquet"}))


def text_columns(table: pa.Table) -> pa.Table:
    """Every column as text, as the CSV reader gives it: numbers in their shortest form, nulls
    missing."""
    columns = [as_text(name, table.column(name)) for name in table.column_names]
    return pa.table(columns, names=table.column_names)


def as_text(name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_dictionary(kind):
        column, kind = column.cast(kind.value_type), kind.value_type
    if pa.types.is_string(kind):
        return column
    flat = pa.types.is_nested(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind)
    if not flat:
        try:
            return pc.cast(column, pa.string())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    raise UploadRejected(f"column {name!r} holds {kind} values; use numbers, text or dates")


def csv_to_parquet(data: bytes, types: dict[str, pa.DataType] | None = None) -> bytes:
    """A CSV output (results, rejects, actions) as Parquet: text columns, `types` where named."""
    header = pa_csv.read_csv(
        io.BytesIO(data.split(b"\n", 1)[0] + b"\n"),
        convert_options=pa_csv.ConvertOptions(strings_can_be_null=True),
    ).column_names
    types = types or {}
    table = pa_csv.read_csv(
        io.BytesIO(data),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True),
        convert_options=pa_csv.ConvertOptions(
            column_types={name: types.get(name, pa.string()) for name in header},
            strings_can_be_null=True,
            null_values=[""],
        ),
    )
    out = io.BytesIO()
    pq.write_table(table, out, compression="zstd")
    return out.getvalue()
