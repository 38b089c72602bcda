"""A corpus of hostile uploads, generated (never committed): each case streams its bytes lazily.

`corpus(sample, scale)` builds the cases around a small valid CSV `sample` (so rows fit the model
under test). `Scale.REAL` has the sizes of issue 13 (benchmarks/hostile.py runs them);
`Scale.small()` has the same shapes at sizes a test runs in seconds, with the limits shrunk to
match through Settings (`Scale.environment`).
"""

from __future__ import annotations

import io
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from retainwise.uploads.blocks import BlockReader

PIECE = 16 * 2**20


@dataclass(frozen=True)
class Scale:
    chunked_above: int  # RETAINWISE_CHUNKED_ABOVE_BYTES
    max_bytes: int  # RETAINWISE_MAX_UPLOAD_BYTES
    max_record: int  # RETAINWISE_MAX_RECORD_BYTES
    chunk_bytes: int  # RETAINWISE_CHUNK_BYTES
    member_bytes: int  # zeros (newlines) in each member of the gzip bomb
    members: int
    past_limit: int  # what the small gzip expands to
    long_line: int  # the line with no newline, and the text after an open quote

    def environment(self) -> dict[str, str]:
        return {
            "RETAINWISE_CHUNKED_ABOVE_BYTES": str(self.chunked_above),
            "RETAINWISE_MAX_UPLOAD_BYTES": str(self.max_bytes),
            "RETAINWISE_MAX_RECORD_BYTES": str(self.max_record),
            "RETAINWISE_CHUNK_BYTES": str(self.chunk_bytes),
        }

    @classmethod
    def small(cls) -> Scale:
        return cls(
            chunked_above=2**20,
            max_bytes=4_000_000,
            max_record=256 * 2**10,
            chunk_bytes=256 * 2**10,
            member_bytes=2 * 2**20,
            members=3,
            past_limit=6_000_000,
            long_line=3_000_000,
        )


Scale.REAL = Scale(
    chunked_above=64 * 2**20,
    max_bytes=200_000_000,
    max_record=4 * 2**20,
    chunk_bytes=8 * 2**20,
    member_bytes=2**30,
    members=65,
    past_limit=300_000_000,
    long_line=100_000_000,
)


@dataclass(frozen=True)
class Case:
    name: str
    chunks: Callable[[], Iterator[bytes]]
    status: str  # the prediction's final status
    message: str  # a fragment its error must hold ("" for COMPLETED)

    def data(self) -> bytes:
        return b"".join(self.chunks())


def corpus(sample: bytes, scale: Scale) -> list[Case]:
    header, _, body = sample.partition(b"\n")
    header += b"\n"
    first_row = body.split(b"\n", 1)[0] + b"\n"
    return [
        Case(
            "gzip bomb, concatenated members",
            lambda: gzip_bomb(sample, scale),
            "FAILED",
            "expands to more than",
        ),
        Case(
            "small gzip expanding past the limit",
            lambda: gzip_members([repeated(header, body, scale.past_limit)]),
            "FAILED",
            "expands to more than",
        ),
        Case(
            "xlsx zip bomb",
            lambda: iter([xlsx_bomb(scale.max_bytes * 2)]),
            "FAILED",
            "the workbook expands to",
        ),
        Case(
            "xlsx with a huge declared sheet",
            lambda: iter([xlsx_declaring(sample)]),
            "FAILED",
            "declares 1048576 rows x 16384 columns",
        ),
        Case(
            "line without a newline",
            lambda: endless(header.split(b",")[0] + b",", scale.long_line),
            "FAILED",
            "the header of the file is longer than",
        ),
        Case(
            "unclosed quote at row 2",
            lambda: endless(header + first_row + b'X,"', scale.long_line),
            "FAILED",
            'a quote (") is never closed',
        ),
        Case(
            "5,000 columns",
            lambda: iter([wide(5000)]),
            "FAILED",
            "the file has 5000 columns; the limit is 1000 columns",
        ),
        Case(
            "NUL bytes",
            lambda: iter([sample.replace(b",", b",\x00", 200)]),
            "FAILED",
            "contains binary data",
        ),
        Case(
            "UTF-16 without a BOM",
            lambda: iter([sample.decode().encode("utf-16-le")]),
            "COMPLETED",
            "",
        ),
        Case(
            "PNG renamed .csv",
            lambda: iter([b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40]),
            "FAILED",
            "it looks like a PNG image",
        ),
        Case("empty file", lambda: iter([b""]), "FAILED", "the file is empty"),
        Case("header only", lambda: iter([header]), "FAILED", "header but no data rows"),
    ]


def gzip_members(member_sources: list[Iterator[bytes]]) -> Iterator[bytes]:
    """One gzip member per source, concatenated, compressed piece by piece."""
    for source in member_sources:
        packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        for piece in source:
            if out := packer.compress(piece):
                yield out
        yield packer.flush()


def gzip_bomb(sample: bytes, scale: Scale) -> Iterator[bytes]:
    """A valid first member, then `members` members of blank lines: the same compressed bytes
    repeated, so even 65 x 1 GiB costs one compression."""
    yield from gzip_members([iter([sample])])
    member = b"".join(gzip_members([blank_lines(scale.member_bytes)]))
    for _ in range(scale.members):
        yield member


def blank_lines(size: int) -> Iterator[bytes]:
    piece = b"\n" * min(PIECE, size)
    for start in range(0, size, len(piece)):
        yield piece[: size - start]


def repeated(header: bytes, body: bytes, size: int) -> Iterator[bytes]:
    yield header
    written = len(header)
    while written < size:
        yield body
        written += len(body)


def endless(prefix: bytes, size: int) -> Iterator[bytes]:
    """`prefix`, then `size` bytes of one field's text with no newline and no quote."""
    yield prefix
    piece = b"x" * min(PIECE, size)
    for start in range(0, size, len(piece)):
        yield piece[: size - start]


def wide(columns: int) -> bytes:
    line = lambda cell: ",".join(cell(i) for i in range(columns)).encode() + b"\n"  # noqa: E731
    return line(lambda i: f"col{i}") + line(lambda i: str(i)) * 10


def xlsx_bomb(expanded: int) -> bytes:
    """A workbook whose sheet inflates to `expanded` bytes (spaces compress ~1000:1)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/workbook.xml", "<workbook/>")
        with archive.open("xl/worksheets/sheet1.xml", "w", force_zip64=True) as sheet:
            for piece in blank_lines(expanded):
                sheet.write(piece.replace(b"\n", b" "))
    return buffer.getvalue()


def xlsx_declaring(sample: bytes) -> bytes:
    """A real workbook of the sample's first rows whose sheet claims A1:XFD1048576."""
    import csv

    import openpyxl

    book = openpyxl.Workbook()
    for row in list(csv.reader(io.StringIO(sample.decode())))[:6]:
        book.active.append(row)
    saved = io.BytesIO()
    book.save(saved)
    source, patched = zipfile.ZipFile(saved), io.BytesIO()
    with zipfile.ZipFile(patched, "w", zipfile.ZIP_DEFLATED) as out:
        for info in source.infolist():
            data = source.read(info.filename)
            if info.filename == "xl/worksheets/sheet1.xml":
                start = data.index(b'<dimension ref="') + len(b'<dimension ref="')
                data = data[:start] + b"A1:XFD1048576" + data[data.index(b'"', start) :]
            out.writestr(info, data)
    return patched.getvalue()


ChunkReader = BlockReader  # a file over the chunks, for boto3's upload_fileobj
