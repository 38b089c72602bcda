"""The shapes every reader returns and the limits every reader keeps: shared by `reading` and
`parquet` (each reader imports this, neither the other)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from retainwise.config.errors import UploadRejected
from retainwise.config.settings import Settings, setting_default


@dataclass(frozen=True)
class Limits:
    """What one upload may cost; each cap ends the upload FAILED with a message naming it."""

    max_bytes: int = setting_default("max_upload_bytes")  # decompressed size
    max_columns: int = setting_default("max_columns")  # fields in the header
    max_record_bytes: int = setting_default("max_record_bytes")  # one row, chunked reader
    # an .xlsx expanded (workbooks are read whole, so no larger than a whole-file upload)
    max_workbook_bytes: int = setting_default("chunked_above_bytes")
    max_cells: int = 20_000_000  # an .xlsx sheet's declared rows x columns
    max_shared_strings: int = 2_000_000  # distinct texts an .xlsx declares

    @classmethod
    def from_settings(cls, settings: Settings) -> Limits:
        return cls(
            max_bytes=settings.max_upload_bytes,
            max_columns=settings.max_columns,
            max_record_bytes=settings.max_record_bytes,
            max_workbook_bytes=settings.chunked_above_bytes,
        )


@dataclass
class TextTable:
    """The upload as text cells, plus how it was read and the lines that did not fit the header."""

    frame: pd.DataFrame
    source: dict[str, str] = field(default_factory=dict)  # format, encoding, delimiter
    malformed: list[tuple[int, str]] = field(default_factory=list)  # (data row, why)

    @property
    def rows_total(self) -> int:
        return len(self.frame) + len(self.malformed)


def refuse_wide(columns: int, max_columns: int) -> None:
    if columns > max_columns:
        raise UploadRejected(f"the file has {columns} columns; the limit is {max_columns} columns")


def check_shape(table: TextTable, max_columns: int = Limits.max_columns) -> TextTable:
    frame = table.frame
    frame.columns = [str(c).strip() or f"Unnamed: {i}" for i, c in enumerate(frame.columns)]
    refuse_wide(len(frame.columns), max_columns)
    if len(frame.columns) < 2:
        raise UploadRejected(
            "the file is not a table: found a single column; expected comma, semicolon, tab or "
            "pipe separated columns"
        )
    if frame.empty and not table.malformed:
        raise UploadRejected("the file has a header but no data rows")
    return table
