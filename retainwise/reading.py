"""Bytes of an uploaded file -> a DataFrame of text cells, or UploadRejected saying why not."""

from __future__ import annotations

import csv
import io
import re

import pandas as pd

from retainwise.errors import UploadRejected

DELIMITERS = [",", ";", "\t", "|"]
ENCODINGS = ["utf-8-sig", "utf-16", "cp1252", "latin-1"]


def decode(data: bytes) -> str:
    if not data.strip():
        raise UploadRejected("the file is empty")
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        return data.decode("utf-16")
    if b"\x00" in data[:4096]:
        raise UploadRejected("the file is not a CSV text file (it contains binary data)")
    for encoding in ENCODINGS:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise UploadRejected("the file's text encoding is not recognised; save it as UTF-8 CSV")


def sniff_delimiter(text: str) -> str:
    """The delimiter that splits the header and the first rows into the same, largest width."""
    sample = text[:65536].splitlines()[:20]
    best, best_width = ",", 1
    for delimiter in DELIMITERS:
        widths = {len(row) for row in csv.reader(sample, delimiter=delimiter) if row}
        if len(widths) >= 1 and min(widths) > best_width:
            best, best_width = delimiter, min(widths)
    return best


def normalise_header(name: str) -> str:
    return re.sub(r"[\s_\-]+", "", str(name)).lower()


def read_table(data: bytes) -> pd.DataFrame:
    """Every cell as text; blank cells are missing. Types are the model's business, not the reader's."""
    text = decode(data)
    delimiter = sniff_delimiter(text)
    try:
        frame = pd.read_csv(io.StringIO(text), sep=delimiter, dtype=str, keep_default_na=False,
                            na_values=[""], skipinitialspace=False)
    except (pd.errors.ParserError, csv.Error) as exc:
        raise UploadRejected(f"the file is not a readable CSV table: {exc}") from None
    except pd.errors.EmptyDataError:
        raise UploadRejected("the file is empty") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if len(frame.columns) < 2:
        raise UploadRejected(
            "the file is not a table: found a single column; expected comma, semicolon, tab or "
            "pipe separated columns")
    if frame.empty:
        raise UploadRejected("the file has a header but no data rows")
    return frame


def match_columns(frame: pd.DataFrame, required: list[str]) -> pd.DataFrame:
    """Rename headers to the model's names, ignoring case, spaces, underscores and hyphens."""
    wanted = {normalise_header(name): name for name in required}
    renames, seen = {}, {}
    for column in frame.columns:
        key = normalise_header(column)
        if key in wanted:
            if key in seen:
                raise UploadRejected(f"columns {seen[key]!r} and {column!r} both match "
                                     f"{wanted[key]!r}; keep one of them")
            seen[key] = column
            renames[column] = wanted[key]
    return frame.rename(columns=renames)
