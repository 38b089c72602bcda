"""A readable file over an iterator of byte blocks: an S3 object read block by block handed to
a reader that wants a file (pyarrow's CSV reader, boto3's upload_fileobj), nothing held whole."""

from __future__ import annotations

import io
from collections.abc import Iterable


class BlockReader(io.RawIOBase):
    """`read`/`readinto` over `blocks`, one block held at a time."""

    def __init__(self, blocks: Iterable[bytes]):
        self.blocks, self.pending = iter(blocks), b""

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self.pending:
            self.pending = next(self.blocks, None)
            if self.pending is None:
                self.pending = b""
                return 0
        size = min(len(buffer), len(self.pending))
        buffer[:size], self.pending = self.pending[:size], self.pending[size:]
        return size
