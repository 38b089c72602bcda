"""Large uploads in bounded memory: read, validate, score and write the file chunk by chunk.

Each chunk (the header plus whole records) goes through the same reading, validation and scoring
functions as a whole file. Only what spans chunks is handled here: global row numbers, duplicate
ids across chunks, the rejected share, and the report totals. Reading the next chunk from S3 and
writing the previous one's results overlap with scoring the current one.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd

from models.features import blank_to_missing
from models.scoring import RESULT_COLUMNS, score_frame
from retainwise.errors import UploadRejected
from retainwise.output import build_report, neutralise_formulas, to_csv_bytes
from retainwise.reading import read_table
from retainwise.validation import require_columns, validate_upload

log = logging.getLogger("retainwise.streaming")
CHUNK_BYTES = 8 * 2**20           # ~60k Telco rows per chunk
STREAM_ABOVE_BYTES = 64 * 2**20   # smaller files keep the whole-file tasks
READ_BLOCK = 4 * 2**20
GZIP_MAGIC = b"\x1f\x8b"
REJECT_COLUMNS = ["row_number", "customer_id", "reason"]


def streamable(head: bytes) -> bool:
    """Byte-level record cutting needs an ASCII-compatible encoding (not UTF-16)."""
    return head[:2] not in (b"\xff\xfe", b"\xfe\xff") and b"\x00" not in head[:4096]


def gunzipped(blocks: Iterable[bytes]) -> Iterator[bytes]:
    """The blocks unchanged, or decompressed on the fly if they start as gzip."""
    iterator = iter(blocks)
    first = next(iterator, b"")
    if not first.startswith(GZIP_MAGIC):
        yield first
        yield from iterator
        return
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
    for block in _chain(first, iterator):
        yield inflate.decompress(block)
    yield inflate.flush()


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def record_end(buffer: bytes | bytearray, start: int = 0) -> int | None:
    """Index after the last newline that ends a record: one with an even number of quotes before it."""
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


def record_chunks(blocks: Iterable[bytes], chunk_bytes: int = CHUNK_BYTES) -> Iterator[bytes]:
    """Re-cut a byte stream into pieces of about `chunk_bytes`, each the header plus whole records."""
    header: bytes | None = None
    buffer = bytearray()
    yielded = False
    for block in blocks:
        buffer += block
        if header is None:
            end = _first_record_end(buffer)
            if end is None:
                continue
            header, buffer = bytes(buffer[:end]), buffer[end:]
        while len(buffer) >= chunk_bytes:
            end = record_end(buffer)
            if end is None:
                break
            yield header + bytes(buffer[:end])
            del buffer[:end]
            yielded = True
    if header is None:
        yield bytes(buffer)  # one line or empty: read_table says what is wrong with it
    elif buffer.strip() or not yielded:
        yield header + bytes(buffer)


def _first_record_end(buffer: bytearray) -> int | None:
    position = 0
    while True:
        newline = buffer.find(b"\n", position)
        if newline < 0:
            return None
        if buffer.count(b'"', 0, newline) % 2 == 0:
            return newline + 1
        position = newline + 1


class SeenIds:
    """64-bit hashes of every id seen so far, with the row it was first seen on, in sorted runs.

    10M ids cost ~120 MB instead of the ~1 GB a set of strings would; two different ids sharing
    a hash (odds ~3e-6 at 10M rows) would wrongly reject the second as a duplicate. Runs stop
    merging at MERGE_LIMIT entries, so a merge never needs more than a few tens of MB extra.
    """

    MERGE_LIMIT = 2_000_000

    def __init__(self) -> None:
        self.runs: list[tuple[np.ndarray, np.ndarray]] = []

    def first_rows(self, hashes: np.ndarray) -> np.ndarray:
        """Row each hash was first seen on, or 0 where it is new."""
        found = np.zeros(len(hashes), dtype=np.int64)
        for keys, rows in self.runs:
            at = np.minimum(np.searchsorted(keys, hashes), len(keys) - 1)
            hit = (keys[at] == hashes) & (found == 0)
            found[hit] = rows[at[hit]]
        return found

    def add(self, hashes: np.ndarray, rows: np.ndarray) -> None:
        order = np.argsort(hashes, kind="stable")
        self.runs.append((hashes[order], rows[order].astype(np.int32)))
        while (len(self.runs) > 1 and len(self.runs[-1][0]) >= len(self.runs[-2][0])
               and len(self.runs[-1][0]) + len(self.runs[-2][0]) <= self.MERGE_LIMIT):
            (k2, r2), (k1, r1) = self.runs.pop(), self.runs.pop()
            keys, rows = np.concatenate([k1, k2]), np.concatenate([r1, r2])
            order = np.argsort(keys, kind="stable")
            self.runs.append((keys[order], rows[order]))

    def duplicates(self, ids: pd.Series, rows: np.ndarray) -> np.ndarray:
        """For each row: the row its id was first seen on (earlier chunk or this one), else 0."""
        present = ids.notna().to_numpy()
        hashes = pd.util.hash_pandas_object(ids.astype("object"), index=False).to_numpy()
        first = np.where(present, self.first_rows(hashes), 0)
        new = present & (first == 0)
        local = pd.Series(hashes[new])
        repeat = local.duplicated(keep="first").to_numpy()
        first_of = pd.Series(rows[new]).groupby(local.to_numpy()).transform("first").to_numpy()
        new_index = np.flatnonzero(new)
        first[new_index[repeat]] = first_of[repeat]
        self.add(hashes[new_index[~repeat]], rows[new_index[~repeat]])
        return first


@dataclass
class Totals:
    rows_total: int = 0
    rows_rejected: int = 0
    examples: list[tuple[int, str]] = field(default_factory=list)
    reports: list[dict[str, Any]] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: dict.fromkeys(
        ("reading", "validating", "scoring", "writing"), 0.0))


@dataclass
class ChunkResult:
    results: pd.DataFrame
    rejects: pd.DataFrame
    report: dict[str, Any]
    rows: int


def score_chunk(piece: bytes, first_row: int, model, seen: SeenIds, totals: Totals,
                reasons: bool = False) -> ChunkResult:
    """One chunk through reading, validation and scoring, with rows numbered across the file."""
    profile = model.profile
    started = time.perf_counter()
    frame = read_table(piece)
    frame = require_columns(frame, profile).reset_index(drop=True)
    read_done = time.perf_counter()
    rows = np.arange(first_row, first_row + len(frame), dtype=np.int64)
    duplicate_rejects = _empty_rejects()
    if profile.id_column:
        ids = blank_to_missing(frame[profile.id_column])
        first_seen = seen.duplicates(ids, rows)
        duplicate = first_seen > 0
        duplicate_rejects = pd.DataFrame({
            "row_number": rows[duplicate], "customer_id": ids[duplicate].to_numpy(),
            "reason": [f"duplicate customer id; already scored from row {r}"
                       for r in first_seen[duplicate]]})
        frame, rows = frame.loc[~duplicate].reset_index(drop=True), rows[~duplicate]
    upload = validate_upload(frame, profile, max_rejected_share=1.0)
    rejects = upload.rejects.assign(row_number=rows[upload.rejects["row_number"].to_numpy(int) - 1])
    rejects = pd.concat([r for r in (rejects, duplicate_rejects) if len(r)] or [_empty_rejects()],
                        ignore_index=True).sort_values("row_number", kind="stable")
    validated = time.perf_counter()
    if len(upload.accepted):
        results = score_frame(model.pipeline, profile, upload.accepted, upload.customer_ids,
                              reasons=reasons)
    else:
        results = pd.DataFrame({name: [] for name in RESULT_COLUMNS})
    report = build_report(upload, results, model)
    scored = time.perf_counter()
    totals.seconds["reading"] += read_done - started
    totals.seconds["validating"] += validated - read_done
    totals.seconds["scoring"] += scored - validated
    return ChunkResult(results, rejects, report, len(duplicate_rejects) + upload.rows_total)


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts add up across chunks; shares are averaged by rows; anything else is the first chunk's."""
    if not reports:
        return {}
    weights = [max(int(r.get("rows_total", 0)), 0) for r in reports]
    merged: dict[str, Any] = {}
    for key, first in reports[0].items():
        values = [r.get(key) for r in reports]
        if isinstance(first, bool) or not isinstance(first, (int, float, dict)):
            merged[key] = first
        elif isinstance(first, dict):
            merged[key] = merge_reports([v if isinstance(v, dict) else {} for v in values])
        elif isinstance(first, int):
            merged[key] = sum(int(v or 0) for v in values)
        else:
            total = sum(weights) or 1
            merged[key] = sum(float(v or 0) * w for v, w in zip(values, weights)) / total
    for report in reports[1:]:  # keys a later chunk has that the first lacked (e.g. new categories)
        for key, value in report.items():
            if key not in merged:
                merged[key] = merge_reports([r.get(key, {}) for r in reports]) \
                    if isinstance(value, dict) else value
    return merged


def _empty_rejects() -> pd.DataFrame:
    return pd.DataFrame({"row_number": pd.Series([], dtype="int64"),
                         "customer_id": pd.Series([], dtype="object"),
                         "reason": pd.Series([], dtype="object")})


def write_chunk(chunk: ChunkResult, results_file, rejects_file, first: bool, totals: Totals) -> None:
    started = time.perf_counter()
    results = chunk.results.assign(customer_id=neutralise_formulas(chunk.results["customer_id"]))
    rejects = chunk.rejects.assign(customer_id=neutralise_formulas(chunk.rejects["customer_id"]))
    results_file.write(to_csv_bytes(results, header=first))
    rejects_file.write(to_csv_bytes(rejects[REJECT_COLUMNS], header=first))
    totals.seconds["writing"] += time.perf_counter() - started


def score_stream(blocks: Iterable[bytes], model, max_rejected_share: float, results_file,
                 rejects_file, chunk_bytes: int = CHUNK_BYTES,
                 reasons: bool = False) -> tuple[dict[str, Any], Totals]:
    """Score a byte stream into two open binary files; returns the merged report and timings."""
    totals, seen = Totals(), SeenIds()
    pieces = _prefetched(record_chunks(gunzipped(blocks), chunk_bytes), totals)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="write-results") as writer:
        pending = None
        for index, piece in enumerate(pieces):
            chunk = score_chunk(piece, totals.rows_total + 1, model, seen, totals, reasons)
            totals.rows_total += chunk.rows
            totals.rows_rejected += len(chunk.rejects)
            totals.examples += list(zip(chunk.rejects["row_number"][:3], chunk.rejects["reason"][:3]))
            totals.reports.append(chunk.report)
            if pending is not None:
                pending.result()
            pending = writer.submit(write_chunk, chunk, results_file, rejects_file, index == 0,
                                    totals)
        if pending is not None:
            pending.result()
    check_rejected_share(totals, max_rejected_share)
    report = merge_reports(totals.reports)
    report.update(rows_total=totals.rows_total, rows_rejected=totals.rows_rejected)
    return report, totals


def check_rejected_share(totals: Totals, max_rejected_share: float) -> None:
    if totals.rows_total and totals.rows_rejected / totals.rows_total > max_rejected_share:
        examples = "; ".join(f"row {r}: {m}" for r, m in sorted(totals.examples)[:3])
        raise UploadRejected(
            f"{totals.rows_rejected} of {totals.rows_total} rows are invalid (more than "
            f"{max_rejected_share:.0%}); for example {examples}")


def _prefetched(pieces: Iterator[bytes], totals: Totals) -> Iterator[bytes]:
    """Read and cut the next chunk in a thread while the current one is scored."""
    def take() -> bytes | None:
        started = time.perf_counter()
        piece = next(pieces, None)
        totals.seconds["reading"] += time.perf_counter() - started
        return piece

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="read-upload") as reader:
        upcoming = reader.submit(take)
        while True:
            piece = upcoming.result()
            if piece is None:
                return
            upcoming = reader.submit(take)
            yield piece


def s3_blocks(s3, bucket: str, key: str) -> Iterator[bytes]:
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        yield from body.iter_chunks(READ_BLOCK)
    finally:
        body.close()


def head_bytes(s3, bucket: str, key: str, size: int = 4096) -> bytes:
    return s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{size - 1}")["Body"].read()


def should_stream(s3, bucket: str, key: str, max_bytes: int,
                  above_bytes: int = STREAM_ABOVE_BYTES) -> bool:
    """Large, ASCII-compatible files stream; the size limit is enforced for both paths here."""
    size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    if size > max_bytes:
        raise UploadRejected(f"the file is {size / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    return size > above_bytes and streamable(head_bytes(s3, bucket, key))


def score_object(s3, bucket: str, key: str, keys, model, max_rejected_share: float,
                 reasons: bool = False) -> dict:
    """S3 object in, results + rejects + report objects out (under `keys`); returns the report."""
    with tempfile.TemporaryFile() as results_file, tempfile.TemporaryFile() as rejects_file:
        report, totals = score_stream(s3_blocks(s3, bucket, key), model, max_rejected_share,
                                      results_file, rejects_file, reasons=reasons)
        started = time.perf_counter()
        for handle, target in ((results_file, keys.results), (rejects_file, keys.rejects)):
            handle.seek(0)
            s3.upload_fileobj(handle, bucket, target, ExtraArgs={"ContentType": "text/csv"})
        s3.put_object(Bucket=bucket, Key=keys.report, Body=json.dumps(report, indent=2).encode(),
                      ContentType="application/json")
        totals.seconds["writing"] += time.perf_counter() - started
    log.info("streamed %d rows; seconds per stage %s", totals.rows_total, totals.seconds,
             extra={"stage_seconds": dict(totals.seconds)})
    return report

