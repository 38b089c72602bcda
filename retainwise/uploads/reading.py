"""Bytes of an uploaded file -> a DataFrame of text cells, or UploadRejected saying why not.

Customers send what their tools export: CSV in any common encoding and delimiter, gzip-compressed
CSV, or an Excel workbook. The S3 object has no trustworthy name, so the format is found from the
bytes. Cells stay text here; turning text into numbers is the validator's job (it knows the model).
"""

from __future__ import annotations

import codecs
import csv
import io
import re
import warnings
import zipfile
import zlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv

from retainwise.config.errors import UploadRejected

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
BAD_LINE = re.compile(r"Skipping line (\d+): expected (\d+) fields, saw (\d+)")


@dataclass
class TextTable:
    """The upload as text cells, plus how it was read and the lines that did not fit the header."""

    frame: pd.DataFrame
    source: dict[str, str] = field(default_factory=dict)  # format, encoding, delimiter
    malformed: list[tuple[int, str]] = field(default_factory=list)  # (data row, why)

    @property
    def rows_total(self) -> int:
        return len(self.frame) + len(self.malformed)


def read_table(data: bytes, max_bytes: int | None = None) -> pd.DataFrame:
    """Every cell as text; blank cells are missing. Types are the model's business."""
    return read_upload(data, max_bytes).frame


def read_upload(data: bytes, max_bytes: int | None = None) -> TextTable:
    """Detect the container (gzip, xlsx, plain text), then the encoding and the delimiter."""
    if not data.strip():
        raise UploadRejected("the file is empty")
    compression = None
    if data[:2] == b"\x1f\x8b":
        data, compression = gunzip(data, max_bytes), "gzip"
        if not data.strip():
            raise UploadRejected("the file is empty (the gzip archive holds no data)")
    if data[:4] == b"PK\x03\x04":
        return read_workbook(data, max_bytes)
    for signature, what in BINARY_SIGNATURES.items():
        if data.startswith(signature):
            raise UploadRejected(f"the file is not a CSV text file (it looks like {what})")
    text, encoding = decode(data)
    utf8 = data[len(codecs.BOM_UTF8):] if encoding == "utf-8-sig" else (
        data if encoding == "utf-8" else None)
    table = read_text(text, utf8)
    table.source.update(format="csv" + ("+gzip" if compression else ""), encoding=encoding)
    return table


def gunzip(data: bytes, max_bytes: int | None) -> bytes:
    """Decompress, refusing archives that expand beyond the upload limit (zip bombs included)."""
    limit = max_bytes or 1 << 40
    out, stream = bytearray(), zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        while data:
            out += stream.decompress(data, limit + 1 - len(out))
            if len(out) > limit:
                raise UploadRejected(f"the file expands to more than {limit / 1e6:.0f} MB when "
                                     "decompressed; the limit is the same as for plain files")
            data = stream.unconsumed_tail
            if stream.eof:  # concatenated gzip members
                data = stream.unused_data
                if data[:2] != b"\x1f\x8b":
                    break
                stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
    except zlib.error:
        raise UploadRejected("the file looks gzip-compressed but the archive is damaged") from None
    return bytes(out)


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
        lines = lines[:lines.rfind("\n") + 1] or lines
    best, best_score, best_header = ",", (0.0, 1), []
    for delimiter in DELIMITERS:
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


def read_text(text: str, utf8: bytes | None = None) -> TextTable:
    """Arrow's multithreaded reader when the file is regular; pandas' when a row needs a number.

    `utf8` is the file's bytes when they already are UTF-8 (saves re-encoding a large file).
    """
    delimiter, header = sniff(text)
    data = utf8 if utf8 is not None else text.encode("utf-8")
    table = None
    if len(set(header)) == len(header) and all(header) and text.count('"') % 2 == 0:
        table = read_regular(data, delimiter, header)
    return check_shape(table or read_exact(data, delimiter))


def read_regular(data: bytes, delimiter: str, header: list[str]) -> TextTable | None:
    """Every cell as Arrow-backed text; None if any row does not fit the header's width."""
    misfits = []

    def on_misfit(row) -> str:
        misfits.append(row)
        return "skip"

    try:
        arrow = pa_csv.read_csv(
            io.BytesIO(data),
            parse_options=pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                                              invalid_row_handler=on_misfit),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: pa.string() for name in header}, null_values=[""],
                strings_can_be_null=True, quoted_strings_can_be_null=True))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if misfits or arrow.column_names != header or any(
            t != pa.string() for t in arrow.schema.types):
        return None
    return TextTable(arrow.to_pandas(), {"delimiter": DELIMITER_NAMES[delimiter]})


def read_exact(data: bytes, delimiter: str) -> TextTable:
    """pandas' C reader: slower, but names the row that does not fit or the quote left open."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", pd.errors.ParserWarning)
        try:
            frame = pd.read_csv(io.BytesIO(data), encoding="utf-8",
                                sep=delimiter, dtype=object, index_col=False,
                                keep_default_na=False, na_values=[""], on_bad_lines="warn",
                                skip_blank_lines=True, engine="c")
        except pd.errors.EmptyDataError:
            raise UploadRejected("the file is empty") from None
        except (pd.errors.ParserError, csv.Error) as exc:
            raise UploadRejected(parser_message(str(exc))) from None
    if any("Length of header" in str(w.message) for w in caught):
        raise UploadRejected("the first data row has more fields than the header; check the "
                             "delimiter and the quoting")
    # pandas counts records from 1 at the header, so its "line N" is data row N - 1
    malformed = [(int(line) - 1, f"{saw} fields where the header has {expected}")
                 for warning in caught
                 for line, expected, saw in BAD_LINE.findall(str(warning.message))]
    return TextTable(frame, {"delimiter": DELIMITER_NAMES[delimiter]}, malformed)


def parser_message(error: str) -> str:
    """pandas' tokenizer errors, said in terms of the customer's file."""
    if match := re.search(r"EOF inside string starting at row (\d+)", error):
        return (f"the file ends inside a quoted field that starts in data row {match[1]}; "
                "a closing quote (\") is missing")
    return f"the file is not a readable CSV table: {error.strip()}"


def check_shape(table: TextTable) -> TextTable:
    frame = table.frame
    frame.columns = [str(c).strip() or f"Unnamed: {i}" for i, c in enumerate(frame.columns)]
    if len(frame.columns) < 2:
        raise UploadRejected(
            "the file is not a table: found a single column; expected comma, semicolon, tab or "
            "pipe separated columns")
    if frame.empty and not table.malformed:
        raise UploadRejected("the file has a header but no data rows")
    return table


def read_workbook(data: bytes, max_bytes: int | None = None) -> TextTable:
    """The first sheet of an .xlsx workbook; the first non-empty row is the header."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        is_workbook = "xl/workbook.xml" in archive.namelist()
        expanded = sum(info.file_size for info in archive.infolist())
    except zipfile.BadZipFile:
        raise UploadRejected("the file looks like a ZIP or Excel file but is damaged") from None
    if max_bytes and expanded > max_bytes:
        raise UploadRejected(f"the workbook expands to {expanded / 1e6:.0f} MB; the limit is "
                             f"{max_bytes / 1e6:.0f} MB")
    if not is_workbook:
        raise UploadRejected("the file is a ZIP archive, not a CSV or Excel (.xlsx) file; "
                             "upload the CSV inside it")
    import openpyxl

    try:
        book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        rows = [row for row in book.worksheets[0].iter_rows(values_only=True)
                if any(cell is not None and str(cell).strip() for cell in row)]
        book.close()
    except Exception as exc:  # openpyxl raises many types for broken workbooks
        raise UploadRejected(f"the Excel workbook cannot be read ({type(exc).__name__})") from None
    if not rows:
        raise UploadRejected("the file is empty (the first sheet has no cells)")
    header = [cell_text(cell) for cell in rows[0]]
    width = max(i + 1 for i, name in enumerate(header) if name is not np.nan)
    body = [[cell_text(cell) for cell in row[:width]] + [np.nan] * (width - len(row))
            for row in rows[1:]]
    frame = pd.DataFrame(body, columns=[str(h) if h is not np.nan else f"Unnamed: {i}"
                                        for i, h in enumerate(header[:width])], dtype=object)
    table = TextTable(frame, {"format": "xlsx", "encoding": "n/a", "delimiter": "n/a"})
    return check_shape(table)


def cell_text(value) -> object:
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


def match_columns(frame: pd.DataFrame, required: list[str],
                  aliases: dict[str, str] | None = None) -> pd.DataFrame:
    """Rename headers to the model's names, ignoring case, spaces, underscores and hyphens.

    `aliases` maps other header spellings to a required name; two headers for one name is an error.
    """
    wanted = {normalise_header(name): name for name in required}
    for alias, name in (aliases or {}).items():
        if name in required:
            wanted.setdefault(normalise_header(alias), name)
    renames, seen = {}, {}
    for column in frame.columns:
        name = wanted.get(normalise_header(column))
        if name is None:
            continue
        if name in seen:
            raise UploadRejected(f"columns {seen[name]!r} and {column!r} both match "
                                 f"{name!r}; keep one of them")
        seen[name] = column
        renames[column] = name
    return frame.rename(columns=renames)
