"""Large uploads in bounded memory: read, validate, score and write the file chunk by chunk.

Each chunk (the header plus whole records) goes through the same reading, validation and scoring
functions as a whole file. Only what spans chunks is handled here: row numbers, duplicate ids
across chunks, the rejected share, and the report counts (summed, then one report). The next
chunk is fetched while this one is validated; chunks are scored two at a time and written in
order, so S3, parsing and the trees keep both cores busy.
"""

from __future__ import annotations

import mmap
import re
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

import numpy as np
import pandas as pd

from models.compiled import Remembering
from models.profile import ModelProfile
from models.scoring import ScoringModel, score_frame
from retainwise.config.errors import UploadRejected
from retainwise.uploads import carry, memory
from retainwise.uploads.compression import decompressed
from retainwise.uploads.output import neutralise_results, neutralise_text_columns, to_csv_bytes
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.reading import read_upload, refuse_binary, utf16_without_bom
from retainwise.uploads.report import ReportCounts, upload_counts
from retainwise.uploads.tables import Limits, TextTable
from retainwise.uploads.validation import (
    DUPLICATE_REASON,
    ValidatedUpload,
    id_hashes,
    reject_rows,
    row_numbers,
    too_many_rejected,
    validate_upload,
)

SCORERS = 2  # chunks scored at once (one per core here)
IN_FLIGHT = SCORERS  # chunks validated but not yet written: bounds memory
NOT_BLANK = re.compile(rb"\S")
MAP_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # Linux: map a file with its pages read in
T = TypeVar("T")
P = TypeVar("P")


class Tap(Protocol[P]):
    """What else is done with each scored chunk (its results, its validated rows): `prepare` in
    the chunk's scorer thread as soon as it is scored (chunks at once, in any order; `scored`
    keeps the prepared and encoded rows the scorer read), then `add` on the writer thread, in
    file order, with what `prepare` gave."""

    def prepare(
        self, results: pd.DataFrame, upload: ValidatedUpload, scored: Remembering | None = None
    ) -> P: ...

    def add(
        self, results: pd.DataFrame, upload: ValidatedUpload, prepared: P | None = None
    ) -> None: ...


class Writable(Protocol):
    """Where chunks' CSV goes: an open binary file, a multipart S3 object, a local stream."""

    def write(self, data: bytes, /) -> int: ...


def streamable(head: bytes) -> bool:
    """Byte-level record cutting needs an ASCII-compatible encoding (not UTF-16)."""
    return head[:2] not in (b"\xff\xfe", b"\xfe\xff") and b"\x00" not in head[:4096]


def refuse_unstreamable(head: bytes) -> None:
    """A large file that cannot be cut into records is refused from its first bytes, before it
    is downloaded whole: binary formats by name, UTF-16 with a hint."""
    refuse_binary(head)
    if head[:2] in (b"\xff\xfe", b"\xfe\xff") or utf16_without_bom(head) is not None:
        raise UploadRejected(
            "UTF-16 files over the chunked size are not read; save the file as "
            "UTF-8 CSV (it is also half the size)"
        )
    raise UploadRejected("the file is not a CSV text file (it contains binary data)")


def record_end(buffer: bytes | bytearray, start: int = 0) -> int | None:
    """Index after the last newline that ends a record: one with an even number of quotes
    before it."""
    cut = buffer.rfind(b"\n")
    if cut < 0:
        return None
    if buffer.find(b'"', start) < 0:
        return cut + 1
    quotes = buffer.count(b'"', 0, cut)
    while cut >= 0 and quotes % 2:
        earlier = buffer.rfind(b"\n", 0, cut)
        quotes -= buffer.count(b'"', earlier + 1, cut)
        cut = earlier
    return cut + 1 if cut >= 0 else None


def record_chunks(
    blocks: Iterable[bytes],
    chunk_bytes: int = ScoringPolicy.chunk_bytes,
    max_record_bytes: int = Limits.max_record_bytes,
) -> Iterator[bytes]:
    """Re-cut a byte stream into pieces of about `chunk_bytes`, each the header plus whole records.

    The bytes held are bounded: a record (or header) longer than `max_record_bytes`, which is
    what a quote never closed or a file without newlines looks like, ends the upload.
    """
    header: bytes | None = None
    buffer = bytearray()
    yielded = False
    for block in blocks:
        buffer += block
        if header is None:
            end = _first_record_end(buffer)
            if end is None:
                refuse_long_record(len(buffer), max_record_bytes, "the header")
                continue
            header, buffer = bytes(buffer[:end]), buffer[end:]
        while len(buffer) >= chunk_bytes:
            end = record_end(buffer)
            if end is None:
                break
            if NOT_BLANK.search(buffer, 0, end):  # a run of blank lines is no chunk
                piece = _with_header(header, buffer, end)
                del buffer[:end]
                yield piece
                yielded = True
                del piece
            else:
                del buffer[:end]
        if len(buffer) >= chunk_bytes:  # no record ends in a whole chunk's worth of bytes
            refuse_long_record(len(buffer), max(max_record_bytes, chunk_bytes), "a row")
    if header is None:
        yield bytes(buffer)  # one line or empty: read_table says what is wrong with it
    elif buffer.strip() or not yielded:
        yield header + bytes(buffer)


def _with_header(header: bytes, buffer: bytearray, end: int) -> bytes:
    """The header and the buffer's first `end` bytes in one copy (no slice copies between)."""
    with memoryview(buffer) as view, view[:end] as records:
        return header + records


def refuse_long_record(held: int, max_record_bytes: int, what: str) -> None:
    if held > max_record_bytes:
        raise UploadRejected(
            f"{what} of the file is longer than {max_record_bytes / 2**20:.0f} MiB (the limit for "
            'one row): a quote (") is never closed, or the file has no line breaks'
        )


def _first_record_end(buffer: bytearray) -> int | None:
    """Index after the first newline outside quotes (one vectorised pass, however many lines
    an open quote spans)."""
    first = buffer.find(b"\n")
    if first < 0 or buffer.count(b'"', 0, first) % 2 == 0:
        return None if first < 0 else first + 1
    data = np.frombuffer(buffer, dtype=np.uint8)
    newlines = np.flatnonzero(data == ord("\n"))
    quotes_before = np.cumsum(data == ord('"'))[newlines]
    even = np.flatnonzero(quotes_before % 2 == 0)
    return int(newlines[even[0]]) + 1 if len(even) else None


class SeenIds:
    """64-bit hashes of every id seen so far, with the row it was first seen on, in sorted runs.

    Two different ids sharing a hash (odds ~3e-6 at 10M rows) would wrongly reject the second as
    a duplicate. Runs stop merging at MERGE_LIMIT entries, so a merge never needs more than a few
    tens of MB extra; a run too large to merge again is spilled to a temporary file (`Spilled`)
    and mapped only while searched, so the ids held in memory stay under ~MERGE_LIMIT (24 MB)
    instead of growing 12 bytes a row (120 MB at 10M rows).
    """

    MERGE_LIMIT = 2_000_000

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []  # in memory, oldest first
        self.spilled: list[Spilled] = []  # older than every run in memory

    def first_rows(self, hashes: np.ndarray) -> np.ndarray:
        """Row each hash was first seen on, or 0 where it is new."""
        found = np.zeros(len(hashes), dtype=np.int64)
        order = np.argsort(hashes)  # sorted needles: searchsorted walks each run in order (2x)
        hashes = hashes[order]
        for run in self.spilled:
            hit, at = run.find(hashes)
            hit &= found[order] == 0
            if hit.any():
                found[order[hit]] = run.rows_at(at[hit])
        for keys, rows in self.runs:
            at = np.minimum(np.searchsorted(keys, hashes), len(keys) - 1)
            hit = (keys[at] == hashes) & (found[order] == 0)
            found[order[hit]] = rows[at[hit]]
        return found

    def add(self, hashes: np.ndarray, rows: np.ndarray) -> None:
        order = np.argsort(hashes, kind="stable")
        self.runs.append((hashes[order], rows[order].astype(np.int32)))
        while (
            len(self.runs) > 1
            and len(self.runs[-1][0]) >= len(self.runs[-2][0])
            and len(self.runs[-1][0]) + len(self.runs[-2][0]) <= self.MERGE_LIMIT
        ):
            newer, older = self.runs.pop(), self.runs.pop()
            self.runs.append(merge_sorted(older, newer))
        final = [run for run in self.runs if 2 * len(run[0]) > self.MERGE_LIMIT]
        if final:  # too large for any newer run to merge into: kept on disk (ids are in one run)
            self.spilled += [Spilled(*run) for run in final]
            self.runs = [run for run in self.runs if 2 * len(run[0]) <= self.MERGE_LIMIT]

    def duplicates(self, ids: pd.Series, rows: np.ndarray) -> np.ndarray:
        """For each row: the row its id was first seen on (earlier chunk or this one), else 0."""
        present = ids.notna().to_numpy()
        hashes = id_hashes(ids)
        first = np.where(present, self.first_rows(hashes), 0)
        new = present & (first == 0)
        local = pd.Series(hashes[new])
        repeat = local.duplicated(keep="first").to_numpy()
        first_of = pd.Series(rows[new]).groupby(local.to_numpy()).transform("first").to_numpy()
        new_index = np.flatnonzero(new)
        first[new_index[repeat]] = first_of[repeat]
        self.add(hashes[new_index[~repeat]], rows[new_index[~repeat]])
        return first


class Spilled:
    """A sorted run of seen ids in a temporary file: its keys, then its rows (int32). Searching
    maps the keys and unmaps them after (the pages leave the process's RSS); rows are read only
    for the ids found again."""

    def __init__(self, keys: np.ndarray, rows: np.ndarray) -> None:
        self.size = len(keys)
        self.file = tempfile.TemporaryFile(prefix="seen-ids-")
        keys.astype(np.uint64, copy=False).tofile(self.file)
        rows.astype(np.int32, copy=False).tofile(self.file)
        self.file.flush()

    def find(self, hashes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For sorted `hashes`: whether each is in the run, and where."""
        with self._mapped(MAP_POPULATE) as mapped:  # every page is read: fault them in at once
            keys = np.frombuffer(mapped, dtype=np.uint64, count=self.size)
            at = np.minimum(np.searchsorted(keys, hashes), self.size - 1)
            hit = keys[at] == hashes
            del keys  # the map closes only once no array views it
        return hit, at

    def rows_at(self, at: np.ndarray) -> np.ndarray:
        with self._mapped() as mapped:
            rows = np.frombuffer(mapped, dtype=np.int32, count=self.size, offset=self.size * 8)
            found: np.ndarray = rows[at]  # a copy
            del rows
        return found

    def _mapped(self, flags: int = 0) -> mmap.mmap:
        return mmap.mmap(self.file.fileno(), 0, flags=mmap.MAP_SHARED | flags, prot=mmap.PROT_READ)

    def __del__(self) -> None:
        self.file.close()


def merge_sorted(
    first: tuple[np.ndarray, np.ndarray], second: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Two sorted runs of (keys, rows) as one, by placing the second's entries among the
    first's: no sort, and only an index per entry of the second beside the result."""
    (k1, r1), (k2, r2) = first, second
    at = np.searchsorted(k1, k2, side="right")
    at += np.arange(len(k2))  # where each of the second's entries lands in the merged run
    keys, rows = np.empty(len(k1) + len(k2), k1.dtype), np.empty(len(k1) + len(k2), r1.dtype)
    keys[at], rows[at] = k2, r2
    rest = np.ones(len(keys), dtype=bool)
    rest[at] = False
    keys[rest], rows[rest] = k1, r1
    return keys, rows


@dataclass
class Totals:
    """What spans the chunks of one upload; `timed` is called from the reader, scorer and writer
    threads at once, so the stage seconds are added under a lock."""

    rows_total: int = 0
    rows_rejected: int = 0
    examples: list[tuple[int, str]] = field(default_factory=list)  # first rejects, for the message
    counts: ReportCounts | None = None  # the report counts of the chunks so far, added up
    seconds: dict[str, float] = field(
        default_factory=lambda: dict.fromkeys(("reading", "validating", "scoring", "writing"), 0.0)
    )

    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def timed(self, stage: str, started: float, now: float | None = None) -> None:
        elapsed = (time.perf_counter() if now is None else now) - started
        with self._lock:
            self.seconds[stage] += elapsed

    def add(self, counts: ReportCounts) -> None:
        """The running sum, not every chunk's counts."""
        self.counts = counts if self.counts is None else self.counts.plus(counts)


def read_piece(piece: bytes, first: bool, limits: Limits = Limits()) -> TextTable:
    """One chunk as text cells, read exactly as a whole file is (rows that do not fit the header
    are set aside the same way); a fault in a later chunk says where it is."""
    try:
        return read_upload(piece, limits=limits)
    except UploadRejected as exc:
        if first:
            raise
        raise UploadRejected(f"{exc} (in the part of the file after the first rows)") from None


def validate_piece(
    table: TextTable,
    profile: ModelProfile,
    offset: int,
    seen: SeenIds,
    value_column: str | None = None,
) -> ValidatedUpload:
    """Validate one chunk as a file, then number its rows across the file and reject ids an
    earlier chunk already scored."""
    upload = validate_upload(table, profile, 1.0, value_column)
    rejects = upload.rejects.assign(row_number=upload.rejects["row_number"] + offset)
    if not profile.id_column or upload.accepted.empty:
        return replace(upload, rejects=rejects)
    numbers = row_numbers(len(table.frame), table.malformed) + offset
    positions = np.asarray(upload.accepted.index, dtype=np.int64)  # rows of the parsed chunk
    first_seen = seen.duplicates(upload.customer_ids, numbers[positions])
    duplicate = first_seen > 0
    if not duplicate.any():
        return replace(upload, rejects=rejects)
    later = reject_rows(
        table.frame.reset_index(drop=True),
        positions[duplicate],
        numbers[positions[duplicate]],
        [DUPLICATE_REASON.format(row=row) for row in first_seen[duplicate]],
    )
    return drop_accepted(
        upload,
        duplicate,
        pd.concat([rejects, later], ignore_index=True).sort_values(
            "row_number", kind="stable", ignore_index=True
        ),
    )


def drop_accepted(
    upload: ValidatedUpload, drop: np.ndarray, rejects: pd.DataFrame
) -> ValidatedUpload:
    """The upload without the accepted rows in `drop` (now in `rejects`), its counts kept true."""
    dropped = upload.accepted.loc[drop]
    counts = {name: dict(per_value) for name, per_value in upload.category_counts.items()}
    for name, per_value in counts.items():
        for value, count in dropped[name].value_counts(dropna=False).items():
            key = None if pd.isna(value) else value
            per_value[key] = per_value.get(key, 0) - int(count)
    kinds = dict(upload.quality.reject_kinds)
    kinds["duplicate id"] = kinds.get("duplicate id", 0) + int(drop.sum())
    return replace(
        upload,
        accepted=upload.accepted.loc[~drop],
        customer_ids=upload.customer_ids[~drop],
        values=None if upload.values is None else upload.values[~drop],
        rejects=rejects,
        quality=replace(upload.quality, reject_kinds=kinds),
        category_counts=counts,
    )


def score_piece(
    model: ScoringModel, upload: ValidatedUpload, reasons: bool, tap: Tap[Any] | None = None
) -> tuple[pd.DataFrame, ReportCounts, Any]:
    """Results, report counts and what `tap` prepares of one validated chunk; runs in a scorer
    thread (the trees release the GIL, so two chunks score at once while the next one is
    validated)."""
    kept = None if tap is None else Remembering(model.scorer)
    scorer = model.scorer if kept is None else kept
    results = score_frame(scorer, model.profile, upload.accepted, upload.customer_ids, reasons)
    counts = upload_counts(upload, results, model.profile)
    if tap is None or not len(results):
        return results, counts, None
    return results, counts, tap.prepare(results, upload, kept)


def write_piece(
    scored: Future[tuple[pd.DataFrame, ReportCounts, Any]],
    rejects: pd.DataFrame,
    files: tuple[Writable, Writable],
    first: bool,
    totals: Totals,
    after: Tap[Any] | None = None,
    upload: ValidatedUpload | None = None,
    carried: pd.DataFrame | None = None,
) -> ReportCounts:
    """Append one chunk's results (with its `carried` cells) and rejects, in file order (one
    writer thread); `after` then adds the chunk (results, validated rows, what it prepared), in
    file order too."""
    results, counts, prepared = scored.result()
    started = time.perf_counter()
    out = carry.with_carried(neutralise_results(results), carried)
    files[0].write(to_csv_bytes(out, header=first))
    files[1].write(to_csv_bytes(neutralise_text_columns(rejects), header=first))
    if after is not None and upload is not None and len(results):
        after.add(results, upload, prepared)
    memory.release_free_memory()
    totals.timed("writing", started)
    return counts


def score_stream(
    blocks: Iterable[bytes],
    model: ScoringModel,
    policy: ScoringPolicy,
    results_file: Writable,
    rejects_file: Writable,
    after: Tap[Any] | None = None,
) -> tuple[ReportCounts, Totals]:
    """Score a byte stream into two open binary files; returns the report counts and timings.

    Chunks are read and validated in order (row numbers and duplicate ids span chunks), scored
    by SCORERS threads (which also run `after.prepare`), and written in order by one writer
    thread (which then calls `after.add`).
    """
    totals, seen, columns, limits = Totals(), SeenIds(), None, policy.limits
    memory.bound_allocator()
    with (
        ThreadPoolExecutor(SCORERS, thread_name_prefix="score-chunk") as scorers,
        ThreadPoolExecutor(1, thread_name_prefix="write-results") as writer,
    ):
        pending: deque[Future[ReportCounts]] = deque()
        pieces = record_chunks(
            decompressed(blocks, limits.max_bytes), policy.chunk_bytes, limits.max_record_bytes
        )
        for index, piece in enumerate(_prefetched(pieces, totals)):
            started = time.perf_counter()
            table = read_piece(piece, index == 0, limits)
            del piece  # the text table has what it held
            carried = carry.resolve(table.frame.columns, policy.carry)  # fails the first chunk
            totals.timed("reading", started)
            started = time.perf_counter()
            upload = validate_piece(
                table, model.profile, totals.rows_total, seen, policy.value_column
            )
            totals.timed("validating", started)
            columns = list(upload.rejects.columns) if columns is None else columns
            rejects = upload.rejects.reindex(columns=columns)
            totals.rows_total += upload.rows_total
            totals.rows_rejected += len(rejects)
            totals.examples += list(
                zip(rejects["row_number"][:3], rejects["reason"][:3], strict=False)
            )
            scored = scorers.submit(
                _timed, totals, "scoring", score_piece, model, upload, policy.reasons, after
            )
            pending.append(
                writer.submit(
                    write_piece,
                    scored,
                    rejects,
                    (results_file, rejects_file),
                    index == 0,
                    totals,
                    after,
                    upload if after is not None else None,
                    carry.cells(table.frame, upload.accepted.index, carried),
                )
            )
            del table, upload, rejects
            while len(pending) > IN_FLIGHT:
                totals.add(pending.popleft().result())
        for job in pending:
            totals.add(job.result())
    memory.release_free_memory()  # the ended threads' heaps too (2M rows: ~50 MB), before the end
    if totals.counts is None:  # record_chunks yields a piece even for an empty stream
        raise UploadRejected("the file is empty")
    failure = too_many_rejected(
        totals.rows_rejected, totals.rows_total, policy.max_rejected_share, sorted(totals.examples)
    )
    return totals.counts.finished().with_failure(failure), totals


def _timed(totals: Totals, stage: str, function: Callable[..., T], *args: Any) -> T:
    started = time.perf_counter()
    try:
        return function(*args)
    finally:
        totals.timed(stage, started)


def _prefetched(pieces: Iterator[bytes], totals: Totals) -> Iterator[bytes]:
    """Read and cut the next chunk in a thread while the current one is validated."""

    def take() -> bytes | None:
        started = time.perf_counter()
        piece = next(pieces, None)
        totals.timed("reading", started)
        return piece

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-upload") as reader:
        upcoming = reader.submit(take)
        while True:
            piece = upcoming.result()
            if piece is None:
                return
            upcoming = reader.submit(take)
            yield piece
