"""One streaming gzip decompressor for both paths: every member, in bounded pieces, with a cap.

A gzip bomb expands a few KB into GBs, and a multi-member gzip is many archives end to end; the
whole-file reader and the chunked reader both go through `gunzip_blocks`, so both stop at the same
limit with the same message and neither stops after the first member.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterable, Iterator

from retainwise.config.errors import UploadRejected

GZIP_MAGIC = b"\x1f\x8b"
PIECE_BYTES = 1 << 20  # decompressed bytes handed on at a time


def expands_past(limit: int) -> UploadRejected:
    return UploadRejected(
        f"the file expands to more than {limit / 1e6:.0f} MB when decompressed; "
        "the limit is the same as for plain files"
    )


def damaged() -> UploadRejected:
    return UploadRejected("the file looks gzip-compressed but the archive is damaged")


def gunzip_blocks(blocks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """Decompressed pieces of at most PIECE_BYTES; UploadRejected past `limit` bytes in total or
    on a damaged or truncated archive. Bytes after the last member that are not gzip are ignored."""
    total, stream, pending, finished = 0, None, b"", False
    try:
        for block in blocks:
            data = pending + block
            pending = b""
            while data and not finished:
                if stream is None:  # at a member boundary: another member, or the end
                    if len(data) < 2:
                        pending = data
                        break
                    if data[:2] != GZIP_MAGIC:
                        finished = total > 0
                        if not finished:
                            raise damaged()
                        break
                    stream = zlib.decompressobj(16 + zlib.MAX_WBITS)
                piece = stream.decompress(data, PIECE_BYTES)
                data = stream.unconsumed_tail
                while True:
                    total += len(piece)
                    if total > limit:
                        raise expands_past(limit)
                    if piece:
                        yield piece
                    if len(piece) < PIECE_BYTES or data:
                        break
                    piece = stream.decompress(b"", PIECE_BYTES)  # output still held by zlib
                if stream.eof:
                    data, stream = stream.unused_data, None
    except zlib.error:
        raise damaged() from None
    if stream is not None or pending:
        raise damaged()  # cut off inside a member


def gunzip(data: bytes, limit: int) -> bytes:
    """A whole gzip file in memory (already known to expand to no more than `limit`)."""
    return b"".join(gunzip_blocks([data], limit))


def expanded_head(
    blocks: Iterable[bytes], stop_after: int, limit: int, head_bytes: int = 4096
) -> tuple[int, bytes]:
    """Decompressed size of a gzip stream, counted only up to `stop_after` (enough to route it),
    and its first `head_bytes` decompressed bytes (to tell text from binary)."""
    size, head = 0, b""
    for piece in gunzip_blocks(blocks, limit):
        head += piece[: head_bytes - len(head)]
        size += len(piece)
        if size > stop_after:
            break
    return size, head


def decompressed(blocks: Iterable[bytes], limit: int) -> Iterator[bytes]:
    """The blocks unchanged, or decompressed on the fly if they start as gzip."""
    iterator = iter(blocks)
    first = next(iterator, b"")
    rest = itertools.chain([first], iterator)
    return gunzip_blocks(rest, limit) if first.startswith(GZIP_MAGIC) else rest
