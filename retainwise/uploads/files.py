"""Local files as a scoring source and sinks, for `retainwise score` (no S3, same steps)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from retainwise.uploads.scoring import Discard, Output, Stream

READ_BLOCK = 4 * 2**20  # the block size aws.iter_blocks reads an S3 object in


@dataclass(frozen=True)
class LocalFile:
    """A file on disk as a scoring source (retainwise.uploads.scoring.Source)."""

    path: Path

    def size(self) -> int:
        return self.path.stat().st_size

    def head(self, size: int = 4096) -> bytes:
        with self.path.open("rb") as handle:
            return handle.read(size)

    def blocks(self) -> Iterator[bytes]:
        with self.path.open("rb") as handle:
            while block := handle.read(READ_BLOCK):
                yield block

    def read(self) -> bytes:
        return self.path.read_bytes()


class LocalStream:
    """A file written beside its target and renamed into place on completion, so an aborted
    (failed) upload leaves no half-written results."""

    def __init__(self, target: Path) -> None:
        self.target, self.partial = target, target.with_name(f".{target.name}.partial")
        self.handle = self.partial.open("wb")

    def write(self, data: bytes) -> int:
        return self.handle.write(data)

    def complete(self) -> None:
        self.handle.close()
        self.partial.replace(self.target)

    def abort(self) -> None:
        self.handle.close()
        self.partial.unlink(missing_ok=True)


@dataclass(frozen=True)
class LocalSinks:
    """Each output to its path; outputs without one are not kept."""

    paths: Mapping[Output, Path]

    def location(self, output: Output) -> str | None:
        path = self.paths.get(output)
        return None if path is None else str(path)

    def put(self, files: Mapping[Output, bytes]) -> None:
        for output, body in files.items():
            if output in self.paths:
                self.paths[output].write_bytes(body)

    def open(self, output: Output) -> Stream:
        path = self.paths.get(output)
        return Discard() if path is None else LocalStream(path)
