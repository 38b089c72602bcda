"""Bytes of an uploaded file -> a DataFrame of text cells, or UploadRejected saying why not.

Customers send what their tools export: CSV in any common encoding and delimiter, gzip-compressed
CSV, or an Excel workbook. The S3 object has no trustworthy name, so the format is found from the
bytes. Cells stay text here; turning text into numbers is the validator's job (it knows the model).
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
import zipfile
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from retainwise.config.errors import UploadRejected
from retainwise.uploads.compression import GZIP_MAGIC, gunzip
from retainwise.uploads.parquet import read_parquet
from retainwise.uploads.tables import Limits, TextTable, check_shape, refuse_wide

DELIMITERS = [",", ";", "\t", "|"]
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
SNIFF_CHARS = 65536
BINARY_SIGNATURES = {
    b"%PDF": "a PDF document",
    b"\x89PNG": "a PNG image",
    b"\xff\xd8\xff": "a JPEG image",
    b"GIF8": "a GIF image",
    b"\xd0\xcf\x11\xe0": "an old-format Excel (.xls) or Office file; save it as .xlsx or CSV",
    b"7z\xbc\xaf": "a 7-Zip archive",
    b"Rar!": "a RAR archive",
}
CONTROL_CHARS = re.compile(r"[\x00-\x08\x0e-\x1f]")
FIELD_CHARS = csv.field_size_limit()  # 131072: the csv module's own cap on one field


def read_table(data: bytes, max_bytes: int | None = None) -> pd.DataFrame:
    """Every cell as text; blank cells are missing. Types are the model's business."""
    return read_upload(data, max_bytes).frame


def read_upload(
    data: bytes, max_bytes: int | None = None, limits: Limits | None = None
) -> TextTable:
    """Detect the container (gzip, xlsx, plain text), then the encoding and the delimiter."""
    limits = limits or (Limits(max_bytes=max_bytes) if max_bytes else Limits())
    if blank(data):
        raise UploadRejected("the file is empty")
    compression = None
    if data[:2] == GZIP_MAGIC:
        data, compression = gunzip(data, limits.max_bytes), "gzip"
        if blank(data):
            raise UploadRejected("the file is empty (the gzip archive holds no data)")
    if data[:4] == b"PK\x03\x04":
        return read_workbook(data, limits)
    if data[:4] == b"PAR1":  # Parquet: read typed, cells given as text (uploads/parquet.py)
        return read_parquet(data, limits)
    refuse_binary(data)
    text, encoding = decode(data)
    utf8 = (
        data[len(codecs.BOM_UTF8) :]
        if encoding == "utf-8-sig"
        else (data if encoding == "utf-8" else None)
    )
    table = read_text(text, utf8, limits.max_columns)
    table.source.update(format="csv" + ("+gzip" if compression else ""), encoding=encoding)
    return table


def blank(data: bytes) -> bool:
    """Nothing but ASCII whitespace (what `not data.strip()` says, without copying the file)."""
    return not data or data.isspace()


def refuse_binary(head: bytes) -> None:
    """Images, PDFs and other formats people rename to .csv, named by their signature."""
    for signature, what in BINARY_SIGNATURES.items():
        if head.startswith(signature):
            raise UploadRejected(f"the file is not a CSV text file (it looks like {what})")


def decode(data: bytes) -> tuple[str, str]:
    """Text and the encoding that produced it: BOMs first, then UTF-8, then cp1252/Latin-1."""
    if data.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8-sig"]
    elif data[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE):
        candidates = ["utf-16"]
    elif (bom_less := utf16_without_bom(data[:4096])) is not None:
        candidates = [bom_less]
    elif b"\x00" in data[:8192]:
        raise UploadRejected("the file is not a CSV text file (it contains binary data)")
    else:
        candidates = ["utf-8", "cp1252", "latin-1"]
    for encoding in candidates:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        head = text[:8192]
        if len(CONTROL_CHARS.findall(head)) > max(2, len(head) // 100):
            raise UploadRejected("the file is not a CSV text file (it contains binary data)")
        return text, encoding
    raise UploadRejected("the file's text encoding is not recognised; save it as UTF-8 CSV")


def utf16_without_bom(head: bytes) -> str | None:
    """UTF-16 saved without a BOM shows as ASCII interleaved with zero bytes."""
    if len(head) < 4:
        return None
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "utf-16-be"
    return None


def sniff(text: str) -> tuple[str, list[str]]:
    """The delimiter that splits the header widest and the most rows into the header's width,
    and the header it gives."""
    lines = text[:SNIFF_CHARS]
    if len(text) > SNIFF_CHARS:  # drop the last, probably cut, record
        lines = lines[: lines.rfind("\n") + 1] or lines
    best, best_score, best_header = ",", (0.0, 1), []
    for delimiter in DELIMITERS:
        if delimiter not in lines:  # every row one field: never the best (parsing cost ~2 ms)
            continue
        try:
            rows = [row for row in csv.reader(io.StringIO(lines), delimiter=delimiter) if row]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        width = len(rows[0])
        body = rows[1:] or rows
        fit = sum(len(row) == width for row in body) / len(body)
        if (fit, width) > best_score:
            best, best_score, best_header = delimiter, (fit, width), rows[0]
    return best, best_header


def normalise_header(name: str) -> str:
    """A header as matched against the model's columns: case, spaces, `_` and `-` ignored."""
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def read_text(
    text: str, utf8: bytes | None = None, max_columns: int = Limits.max_columns
) -> TextTable:
    """Arrow's multithreaded reader when every row fits the header; the csv module's when not.

    `utf8` is the file's bytes when they already are UTF-8 (saves re-encoding a large file).
    """
    delimiter, header = sniff(text)
    refuse_wide(len(header), max_columns)
    table = None
    if len(set(header)) == len(header) and all(header) and text.count('"') % 2 == 0:
        data = utf8 if utf8 is not None else text.encode("utf-8")
        table = read_regular(data, delimiter, header)
    return check_shape(table or read_exact(text, delimiter, max_columns), max_columns)


def read_regular(data: bytes, delimiter: str, header: list[str]) -> TextTable | None:
    """Every cell as Arrow-backed text; None if any row does not fit the header's width."""
    misfits: list[object] = []

    def on_misfit(row: object) -> str:
        misfits.append(row)
        return "skip"

    try:
        arrow = pa_csv.read_csv(
            io.BytesIO(data),
            parse_options=pa_csv.ParseOptions(
                delimiter=delimiter, newlines_in_values=True, invalid_row_handler=on_misfit
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in header},
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if misfits or arrow.column_names != header or any(t != pa.string() for t in arrow.schema.types):
        return None
    return TextTable(arrow.to_pandas(), {"delimiter": DELIMITER_NAMES[delimiter]})


def read_exact(text: str, delimiter: str, max_columns: int = Limits.max_columns) -> TextTable:
    """Record by record with the csv module: slower, but names every row that does not fit the
    header (fewer fields, or more that are not just trailing empty ones) and the quote left open.

    The rows that fit are written back out as regular CSV and read by Arrow, so cells come out
    exactly as on the fast path.
    """
    records = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header, width, row, last_start, line = None, 0, 0, 0, 0
    malformed: list[tuple[int, str]] = []
    kept = io.StringIO()
    writer = csv.writer(kept, delimiter=",", lineterminator="\r\n")  # quotes a lone CR too
    try:
        for record in records:
            line, last_start = records.line_num, line
            if not record:
                continue  # a blank line is not a row
            if header is None:
                header, width = unique_names(record), len(record)
                refuse_wide(width, max_columns)
                writer.writerow(header)
                continue
            row += 1
            if len(record) > width and not any(record[width:]):
                record = record[:width]  # trailing empty fields, as spreadsheets export them
            if len(record) == width:
                writer.writerow(record)
            else:
                malformed.append((row, misfit_reason(len(record), width)))
    except csv.Error as exc:
        raise UploadRejected(parser_message(str(exc), row + 1)) from None
    if header is None:
        raise UploadRejected("the file is empty")
    if row and unclosed_quote(text, delimiter, last_start):
        raise UploadRejected(parser_message("unexpected end of data", row))
    regular = read_regular(kept.getvalue().encode("utf-8"), ",", header)
    if regular is None or len(regular.frame) != row - len(malformed):
        # a safety net: if Arrow reads the rewritten rows differently, build the frame from
        # the records themselves rather than lose a row
        rows = list(csv.reader(io.StringIO(kept.getvalue(), newline="")))[1:]
        frame = pd.DataFrame(rows, columns=header, dtype=object).replace("", np.nan)
    else:
        frame = regular.frame
    return TextTable(frame, {"delimiter": DELIMITER_NAMES[delimiter]}, malformed)


def misfit_reason(fields: int, width: int) -> str:
    """The one wording for a row that does not fit the header, on both paths."""
    return f"{fields} fields where the header has {width}"


def unique_names(header: list[str]) -> list[str]:
    """Blank header cells named by position, repeats numbered (as pandas did): `a`, `a.1`."""
    names: list[str] = []
    seen: dict[str, int] = {}
    for i, name in enumerate(header):
        name = name.strip() or f"Unnamed: {i}"
        count = seen.get(name, 0)
        seen[name] = count + 1
        names.append(name if not count else f"{name}.{count}")
    return names


def unclosed_quote(text: str, delimiter: str, start_line: int) -> bool:
    """True if the last record, which starts after `start_line` physical lines, ends inside a
    quoted field (the lenient reader keeps such a field; the strict one says so)."""
    tail = "".join(itertools.islice(io.StringIO(text, newline=""), start_line, None))
    if '"' not in tail:
        return False
    try:
        for _ in csv.reader(io.StringIO(tail, newline=""), delimiter=delimiter, strict=True):
            pass
    except csv.Error as exc:
        return "unexpected end of data" in str(exc)
    return False


def parser_message(error: str, row: int) -> str:
    """The csv module's errors, said in terms of the customer's file."""
    if "unexpected end of data" in error:
        return (
            f"the file ends inside a quoted field that starts in data row {row}; "
            'a closing quote (") is missing'
        )
    if "field larger than field limit" in error:
        return (
            f"data row {row} has a field longer than {FIELD_CHARS} characters (the limit), "
            'or a quote (") that is never closed'
        )
    return f"the file is not a readable CSV table (data row {row}): {error.strip()}"


def read_workbook(data: bytes, limits: Limits | None = None) -> TextTable:
    """The first sheet of an .xlsx workbook; the first non-empty row is the header."""
    limits = limits or Limits()
    archive = open_workbook(data, limits)
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        sheet = book.worksheets[0]
        declared = (sheet.max_row or 0) * (sheet.max_column or 0)
        if declared > limits.max_cells:
            raise UploadRejected(
                f"the workbook's first sheet declares {sheet.max_row} rows x {sheet.max_column} "
                f"columns; the limit is {limits.max_cells:,} cells; save it as CSV"
            )
        rows = list(sheet_rows(sheet, limits.max_cells))
        book.close()
    except UploadRejected:
        raise
    except Exception as exc:  # openpyxl raises many types for broken workbooks
        raise UploadRejected(f"the Excel workbook cannot be read ({type(exc).__name__})") from None
    finally:
        archive.close()
    if not rows:
        raise UploadRejected("the file is empty (the first sheet has no cells)")
    header = [cell_text(cell) for cell in rows[0]]
    width = max(i + 1 for i, name in enumerate(header) if name is not np.nan)
    refuse_wide(width, limits.max_columns)
    body, malformed = [], []
    for row_number, row in enumerate(rows[1:], start=1):
        cells = [cell_text(cell) for cell in row]
        if any(cell is not np.nan for cell in cells[width:]):  # cells right of the header
            last = max(i + 1 for i, cell in enumerate(cells) if cell is not np.nan)
            malformed.append((row_number, misfit_reason(last, width)))
            continue
        body.append(cells[:width] + [np.nan] * (width - len(cells)))
    frame = pd.DataFrame(
        body,
        columns=[
            str(h) if h is not np.nan else f"Unnamed: {i}" for i, h in enumerate(header[:width])
        ],
        dtype=object,
    )
    table = TextTable(frame, {"format": "xlsx", "encoding": "n/a", "delimiter": "n/a"}, malformed)
    return check_shape(table, limits.max_columns)


def open_workbook(data: bytes, limits: Limits) -> zipfile.ZipFile:
    """The .xlsx zip, checked before anything is decompressed: total expanded size (Python's
    zipfile never inflates a member past its declared size) and the declared shared strings."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        names = set(archive.namelist())
        expanded = sum(info.file_size for info in archive.infolist())
        cap = min(limits.max_bytes, limits.max_workbook_bytes)
        if expanded > cap:
            raise UploadRejected(
                f"the workbook expands to {expanded / 1e6:.0f} MB; workbooks are read whole and "
                f"the limit is {cap / 1e6:.0f} MB; save it as CSV (CSV files may be larger)"
            )
        if "xl/workbook.xml" not in names:
            raise UploadRejected(
                "the file is a ZIP archive, not a CSV or Excel (.xlsx) file; "
                "upload the CSV inside it"
            )
        if "xl/sharedStrings.xml" in names:
            with archive.open("xl/sharedStrings.xml") as part:
                head = part.read(1024).decode("utf-8", "replace")
            declared = re.search(r'(?:uniqueCount|count)="(\d+)"', head)
            if declared and int(declared[1]) > limits.max_shared_strings:
                raise UploadRejected(
                    f"the workbook declares {int(declared[1]):,} shared strings; the limit is "
                    f"{limits.max_shared_strings:,}; save it as CSV"
                )
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, NotImplementedError):
        raise UploadRejected("the file looks like a ZIP or Excel file but is damaged") from None
    return archive


def sheet_rows(sheet: Any, max_cells: int) -> Iterator[tuple[Any, ...]]:
    """Non-empty rows of a read-only sheet, stopping at `max_cells` cells (empty ones count)."""
    cells = 0
    for row in sheet.iter_rows(values_only=True):
        cells += max(len(row), 1)
        if cells > max_cells:
            raise UploadRejected(
                f"the workbook's first sheet holds more than {max_cells:,} "
                "cells (the limit); save it as CSV"
            )
        if any(cell is not None and str(cell).strip() for cell in row):
            yield row


def cell_text(value: object) -> object:
    """An Excel cell as the text a CSV export would hold; empty cells are missing."""
    if value is None:
        return np.nan
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def match_columns(
    frame: pd.DataFrame, required: list[str], aliases: dict[str, str] | None = None
) -> pd.DataFrame:
    """Rename headers to the model's names, ignoring case, spaces, underscores and hyphens.

    `aliases` maps other header spellings to a required name; two headers for one name is an error.
    """
    wanted = {normalise_header(name): name for name in required}
    for alias, name in (aliases or {}).items():
        if name in required:
            wanted.setdefault(normalise_header(alias), name)
    renames: dict[str, str] = {}
    seen: dict[str, str] = {}
    for column in frame.columns:
        found = wanted.get(normalise_header(column))
        if found is None:
            continue
        name = found
        if name in seen:
            raise UploadRejected(
                f"columns {seen[name]!r} and {column!r} both match {name!r}; keep one of them"
            )
        seen[name] = column
        renames[column] = name
    return frame.rename(columns=renames)
