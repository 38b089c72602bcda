"""A large whole file on both cores: cut in two at a record boundary, the second half read,
validated and scored in a warm helper process while this one does the first, then merged so the
files and the report are what the one-piece path gives.

Two Python threads gain ~1.1x (reading, validation and the column transform hold the GIL); two
processes ~1.4x (benchmarks/README.md). The helper is spawned, never forked: a fork after OpenMP's
or Arrow's threads ran hangs. What spans the cut is settled here: rejects' row numbers (the
second half numbers its rows from 1), ids the first half scored (the second half's copies are
rejected, as one piece rejects later copies), the rejected share, and the report counts (summed).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from models.scoring import NamedModel, ScoringModel, score_frame
from retainwise.uploads import carry
from retainwise.uploads.output import neutralise_results, neutralise_text_columns, to_csv_bytes
from retainwise.uploads.pipeline import score_file
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.reading import read_upload
from retainwise.uploads.report import RISK_TIERS, ReportCounts, upload_counts
from retainwise.uploads.streaming import SeenIds, drop_accepted, record_end, streamable
from retainwise.uploads.validation import (
    DUPLICATE_REASON,
    ValidatedUpload,
    id_hashes,
    reject_rows,
    row_numbers,
    too_many_rejected,
    validate_upload,
)

log = logging.getLogger(__name__)
NOT_PLAIN_TEXT = (b"\x1f\x8b", b"PK\x03\x04", b"PAR1")  # gzip, xlsx, Parquet: read whole
WARM_BYTES = 64 * 2**10  # the start of the first large upload warms the helper
HELD_VERSIONS = 4  # model versions a helper keeps
_before, _after = DUPLICATE_REASON.split("{row}")
DUPLICATE_OF = re.compile(f"^{re.escape(_before)}(\\d+){re.escape(_after)}$")
STAGES = ("reading", "validating", "scoring", "writing")


@dataclass(frozen=True)
class WholeFile:
    """A file read whole, scored: its files' bytes, its report counts, and what the actions list
    is fed (results and the accepted rows they came from, in file order)."""

    counts: ReportCounts
    results_csv: bytes | None  # None when too many rows were rejected
    rejects_csv: bytes
    parts: list[tuple[pd.DataFrame, ValidatedUpload]]  # what the actions list is fed
    seconds: dict[str, float]  # busy seconds per stage, both processes added up
    halves: bool = False


@dataclass(frozen=True)
class Piece:
    """One half, validated as a file of its own (rows numbered from 1, never FAILED) and scored."""

    upload: ValidatedUpload
    accepted_rows: np.ndarray  # the data row number of each accepted row
    results: pd.DataFrame
    results_csv: bytes  # without the header
    carried: list[str]  # the file's headers of the columns carried into the results
    counts: ReportCounts
    seconds: dict[str, float]


def one_piece(data: bytes, model: ScoringModel, policy: ScoringPolicy) -> WholeFile:
    """The file in one piece in this process (pipeline.score_file)."""
    scored = score_file(data, model, policy)
    upload = scored.upload
    return WholeFile(
        upload_counts(upload, scored.results, model.profile),
        scored.results_csv,
        scored.rejects_csv,
        [] if scored.results is None else [(scored.results, upload)],
        scored.seconds,
    )


def score_whole(
    data: bytes, model: NamedModel, policy: ScoringPolicy, helper: Helper | None
) -> WholeFile:
    """In two halves when that pays and the helper is warm, else in one piece."""
    if helper is not None and worth_splitting(data, model, policy):
        halves = cut_in_two(data)
        if halves is not None and helper.ready(model, halves[0][:WARM_BYTES], policy):
            scored = in_halves(halves, model, policy, helper)
            if scored is not None:
                return scored
    return one_piece(data, model, policy)


def worth_splitting(
    data: bytes, model: NamedModel, policy: ScoringPolicy, load: float | None = None
) -> bool:
    """Large plain CSV with an id column, and the other core free: a second process then costs
    ~0.3 CPU s more (+16% at 400k rows) for up to ~1.4x the speed; under a burst both cores are
    busy anyway. The load is the machine's (a container's host where /proc is not its own)."""
    if len(data) < policy.split_above_bytes or not model.profile.id_column:
        return False
    if data[:4].startswith(NOT_PLAIN_TEXT) or not streamable(data[:4096]):
        return False
    load = os.getloadavg()[0] if load is None else load
    return load / (os.cpu_count() or 1) < policy.split_max_load


def cut_in_two(data: bytes) -> tuple[bytes, bytes] | None:
    """The file as two files: up to the record end nearest its middle, and the header plus the
    rest (a quoted field's newline is no record end); None if it holds no such cut."""
    header = record_end(data[: data.find(b"\n") + 1])
    middle = record_end(data[: len(data) // 2])
    if header is None or middle is None or middle <= header:
        return None
    return data[:middle], data[:header] + data[middle:]


def in_halves(
    halves: tuple[bytes, bytes], model: NamedModel, policy: ScoringPolicy, helper: Helper
) -> WholeFile | None:
    """The second half in the helper while this process scores the first; None (score it in one
    piece) when either half fails or they were read differently (encoding, delimiter)."""
    second = helper.submit(model, halves[1], policy)
    try:
        first = score_piece(halves[0], model, policy, header=True)
    except Exception as exc:  # the one-piece path says what is wrong with the whole file
        log.info("first half not scored (%s); scoring the file in one piece", exc)
        second.cancel()
        return None
    try:
        piece = second.result()
    except Exception as exc:
        log.info("second half not scored (%s); scoring the file in one piece", exc)
        helper.forget(model, exc)
        return None
    if first.upload.source != piece.upload.source:
        return None
    return merge(first, piece, halves[1], model, policy)


def score_piece(
    data: bytes, model: ScoringModel, policy: ScoringPolicy, header: bool = False
) -> Piece:
    """Read, validate, score one half and write its results (with the header for the first)."""
    marks = [time.perf_counter()]
    table = read_upload(data, limits=policy.limits)
    carried = carry.resolve(table.frame.columns, policy.carry)
    marks.append(time.perf_counter())
    upload = validate_upload(table, model.profile, 1.0, policy.value_column)
    numbers = row_numbers(len(table.frame), table.malformed)
    accepted_rows = numbers[np.asarray(upload.accepted.index, dtype=np.int64)]
    marks.append(time.perf_counter())
    results = score_frame(
        model.scorer, model.profile, upload.accepted, upload.customer_ids, reasons=policy.reasons
    )
    counts = upload_counts(upload, results, model.profile)
    marks.append(time.perf_counter())
    results_csv = results_bytes(results, table.frame, upload, carried, header)
    marks.append(time.perf_counter())
    seconds = {stage: marks[i + 1] - marks[i] for i, stage in enumerate(STAGES)}
    return Piece(upload, accepted_rows, results, results_csv, carried, counts, seconds)


def results_bytes(
    results: pd.DataFrame,
    frame: pd.DataFrame,
    upload: ValidatedUpload,
    carried: list[str],
    header: bool,
) -> bytes:
    """A half's results CSV with its carried cells, as the one-piece path writes them."""
    cells = carry.cells(frame, upload.accepted.index, carried)
    return to_csv_bytes(carry.with_carried(neutralise_results(results), cells), header=header)


def merge(
    first: Piece, second: Piece, second_data: bytes, model: NamedModel, policy: ScoringPolicy
) -> WholeFile:
    """The two halves as one file's outcome: rows numbered through, the second half's copies of
    ids the first half scored rejected, the rejected share judged on the whole."""
    started = time.perf_counter()
    offset = first.upload.rows_total
    positions, first_rows = cross_duplicates(first, second)
    moved = dict(zip(second.accepted_rows[positions].tolist(), first_rows.tolist(), strict=True))
    rejects = renumbered(second.upload.rejects, offset, moved)
    if len(positions):
        second = without_duplicates(
            second, (positions, first_rows), rejects, second_data, policy, offset
        )
        second = replace(second, counts=upload_counts(second.upload, second.results, model.profile))
        rejects = second.upload.rejects
    rejects = pd.concat([first.upload.rejects, rejects], ignore_index=True)
    rows_total = first.upload.rows_total + second.upload.rows_total
    failure = too_many_rejected(
        len(rejects),
        rows_total,
        policy.max_rejected_share,
        zip(rejects["row_number"], rejects["reason"], strict=False),
    )
    counts = first.counts.plus(second.counts).finished()
    if failure is not None:
        counts = unscored(counts, failure)
    rejects_csv = to_csv_bytes(neutralise_text_columns(rejects))
    seconds = {stage: first.seconds[stage] + second.seconds[stage] for stage in STAGES}
    seconds["writing"] += time.perf_counter() - started
    return WholeFile(
        counts,
        None if failure else first.results_csv + second.results_csv,
        rejects_csv,
        [] if failure else [(p.results, p.upload) for p in (first, second)],
        seconds,
        halves=True,
    )


def cross_duplicates(first: Piece, second: Piece) -> tuple[np.ndarray, np.ndarray]:
    """Positions among the second half's accepted rows whose id the first half scored, and the
    first half's row of each. Hashes find candidates; the text decides, as in one piece."""
    ids, earlier = second.upload.customer_ids, first.upload.customer_ids
    seen, known = SeenIds(), earlier.notna().to_numpy()
    if not known.any() or ids.empty:
        return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.int64)
    seen.add(id_hashes(earlier[known]), first.accepted_rows[known])
    rows = np.where(ids.notna().to_numpy(), seen.first_rows(id_hashes(ids)), 0)
    hits = np.flatnonzero(rows > 0)
    by_row = pd.Series(earlier.to_numpy(), index=first.accepted_rows)
    same = by_row.reindex(rows[hits]).to_numpy() == ids.iloc[hits].to_numpy()
    return hits[same], rows[hits[same]].astype(np.int64)


def renumbered(rejects: pd.DataFrame, offset: int, moved: dict[int, int]) -> pd.DataFrame:
    """The second half's rejects numbered in the whole file; a copy of an id names the row it
    repeats in the whole file (a first half's row where that copy is now rejected too)."""
    reasons = rejects["reason"].astype(object)
    repeats = reasons.str.extract(DUPLICATE_OF, expand=False).dropna()
    if len(repeats):
        reasons = reasons.copy()
        for at, row in repeats.astype(int).items():
            reasons[at] = DUPLICATE_REASON.format(row=moved.get(row, row + offset))
    return rejects.assign(row_number=rejects["row_number"] + offset, reason=reasons)


def without_duplicates(
    piece: Piece,
    duplicates: tuple[np.ndarray, np.ndarray],
    rejects: pd.DataFrame,
    data: bytes,
    policy: ScoringPolicy,
    offset: int,
) -> Piece:
    """The second half without the accepted rows whose id the first half scored (`duplicates`:
    their positions and the first half's rows), rejected with their cells as uploaded (the half
    is read again: only hostile files get here); `rejects` are already numbered in the file."""
    positions, first_rows = duplicates
    table = read_upload(data, limits=policy.limits)
    numbers = piece.accepted_rows[positions] + offset
    frame_rows = np.asarray(piece.upload.accepted.index, dtype=np.int64)[positions]
    later = reject_rows(
        table.frame.reset_index(drop=True),
        frame_rows,
        numbers,
        [DUPLICATE_REASON.format(row=row) for row in first_rows],
    )
    drop = np.zeros(len(piece.upload.accepted), dtype=bool)
    drop[positions] = True
    upload = drop_accepted(
        piece.upload,
        drop,
        pd.concat([rejects, later], ignore_index=True).sort_values(
            "row_number", kind="stable", ignore_index=True
        ),
    )
    results = piece.results.iloc[np.flatnonzero(~drop)].reset_index(drop=True)
    return replace(
        piece,
        upload=upload,
        accepted_rows=piece.accepted_rows[~drop],
        results=results,
        results_csv=results_bytes(results, table.frame, upload, piece.carried, header=False),
    )


def unscored(counts: ReportCounts, failure: str) -> ReportCounts:
    """A failed upload's counts: nothing scored (as one piece never scores it)."""
    return replace(
        counts,
        failure=failure,
        rows_scored=0,
        risk_counts=dict.fromkeys(RISK_TIERS, 0),
        probability_counts=np.zeros_like(counts.probability_counts),
    )


class Helper:
    """One warm spawned process that scores second halves, started on the first large upload
    and kept for this process's life. Until it holds the model version (warming takes seconds:
    imports, the model, Great Expectations), uploads are scored in one piece."""

    def __init__(self, spawn: Callable[[], ProcessPoolExecutor] | None = None) -> None:
        self.spawn = spawn or spawn_helper
        self.pool: ProcessPoolExecutor | None = None
        self.loading: dict[tuple[str, str], Future[None]] = {}
        self.lock = threading.Lock()

    def ready(self, model: NamedModel, sample: bytes, policy: ScoringPolicy) -> bool:
        """True when the helper holds `model`; else it starts loading it (scoring `sample` to
        warm up) and this upload goes in one piece."""
        key = (model.name, model.version)
        with self.lock:
            loading = self.loading.get(key)
            if loading is None:
                if self.pool is None:
                    self.pool = self.spawn()
                if len(self.loading) >= HELD_VERSIONS:
                    self.loading.clear()  # the helper drops the oldest; send each again
                self.loading[key] = self.pool.submit(_hold, key, model, sample, policy)
                return False
        if not loading.done():
            return False
        if loading.exception() is not None:
            self.forget(model, loading.exception())
            return False
        return True

    def submit(self, model: NamedModel, data: bytes, policy: ScoringPolicy) -> Future[Piece]:
        """Score `data` (the second half) with `model`, which the helper holds."""
        assert self.pool is not None
        return self.pool.submit(_score, (model.name, model.version), data, policy)

    def forget(self, model: NamedModel, error: BaseException | None) -> None:
        """After a failure: send the model again next time, and start a new process if this one
        died."""
        log.warning("scoring helper: %s", error)
        with self.lock:
            self.loading.pop((model.name, model.version), None)
            if self.pool is not None and isinstance(error, BrokenProcessPool):
                self.pool.shutdown(wait=False, cancel_futures=True)
                self.pool, self.loading = None, {}

    def close(self) -> None:
        with self.lock:
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
            self.pool, self.loading = None, {}


def spawn_helper() -> ProcessPoolExecutor:
    """One spawned process that ends when this one does, even if this one is killed."""
    return ProcessPoolExecutor(
        1,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_watch_parent,
        initargs=(os.getpid(),),
    )


_held: dict[tuple[str, str], ScoringModel] = {}  # in the helper process: the versions it holds
_process_helper: Helper | None = None


def helper_of_process() -> Helper:
    """This process's helper (a worker child's), made on first use."""
    global _process_helper
    if _process_helper is None:
        _process_helper = Helper()
    return _process_helper


def _watch_parent(parent: int) -> None:
    """In the helper: exit when the process that spawned it is gone (a killed worker child
    would otherwise leave it holding its memory)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, name="watch-parent", daemon=True).start()


def _hold(key: tuple[str, str], model: ScoringModel, sample: bytes, policy: ScoringPolicy) -> None:
    """In the helper: keep the model and score a small piece, so the first half it gets finds
    every import and cache warm."""
    while len(_held) >= HELD_VERSIONS:
        _held.pop(next(iter(_held)))
    _held[key] = model
    end = record_end(sample)
    if end is not None:
        score_piece(sample[:end], model, policy)


def _score(key: tuple[str, str], data: bytes, policy: ScoringPolicy) -> Piece:
    """In the helper: one half with a model it holds."""
    return score_piece(data, _held[key], policy)
