"""The actions list: an upload's customers in the order to contact them, with what changed and why.

Columns ACTION_COLUMNS (+ `value_at_risk` when the account names a value column: probability x
that column, and the rank then follows it). Every HIGH customer and the first `top_n` of the list
get three reasons; the explainer is told which of them rose (`up`), whose reasons then name what
changed since their earlier explanation (models.changes). Built chunk by chunk in bounded memory:
- reasons for HIGH rows are computed as their chunk arrives (only their text is kept, as Arrow
  strings), with the chunk's sorting, by `prepare` (any thread, chunks at once); `put` takes
  the prepared chunks in file order (`add` is both);
- the (key, seq) of the first `top_n` rows of the list so far are kept; the explained rows below
  HIGH come from a pool of the non-HIGH rows among them (their feature rows are kept: at most
  `top_n` + one chunk), explained once at the end (so a list whose first `top_n` are all HIGH
  keeps no pool; the `top_n`-th row is where the explained rows end);
- every chunk's slim rows make a sorted run, held in memory while the runs held stay within
  HELD_BYTES (a 1M-row list), else every run is spilled to an Arrow IPC file in `spill_dir`;
  `batches()` merges the runs a budget of rows at a time (`_merged`), so a large upload's list is
  never in memory at once.
Pure: pandas and pyarrow; the model's explainer is passed in.
"""

from __future__ import annotations

import contextlib
import io
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

REASONS = ["reason_1", "reason_2", "reason_3"]
ACTION_COLUMNS = [
    "rank",
    "customer_id",
    "churn_probability",
    "churn_risk",
    "previous_probability",
    "risk_change",
] + REASONS
VALUE_AT_RISK = "value_at_risk"
POOL_KEYS = ("key", "seq", "customer_id", "rose")  # a pooled row's place, who, whether it rose
SAME_WITHIN = 1e-9  # one model on the same row gives the same probability to the last bit
MERGE_ROWS = 1_024  # rows per block of a spilled run: the least read from it at a time
MERGE_BUDGET = 65_536  # rows merged at a time, however many runs there are
HELD_BYTES = 128 * 2**20  # runs kept in memory up to this; past it every run goes to disk
RUN_BYTES_PER_CSV_BYTE = 0.7  # a Telco CSV's runs: 94 MB for its 136 MB at 1M rows
LAST = (-np.inf, np.iinfo(np.int64).max)  # a (key, seq) every row ranks at or before
FORMATTERS = 2  # CSV batches formatted at once (one per core here)


class Explainer(Protocol):
    """(prepared feature rows, their customer ids[, which of them rose]) -> a frame with the
    REASONS columns, same index; the ids let the caller keep each explained customer's
    explanation (adapters.customers), and name what changed for the rows that rose
    (models.changes). `rose` is passed only when some explained row's risk went up."""

    def __call__(
        self, features: pd.DataFrame, ids: pd.Series, rose: np.ndarray = ..., /
    ) -> pd.DataFrame: ...


Row = dict[str, Any]  # one list row, column -> value (empty cells None): the JSON edge
Source = BinaryIO | io.RawIOBase  # a stored CSV: an open file, or S3 blocks (uploads.blocks)


class Writable(Protocol):
    """Where the list's CSV goes: a file, or a sink stream (an S3 multipart writer)."""

    def write(self, data: bytes, /) -> int: ...


class RiskChange(StrEnum):
    NEW = "new"
    UP = "up"
    DOWN = "down"
    SAME = "same"


def previous_scores(previous: Mapping[str, float] | pa.Table | None) -> pd.Series:
    """Probability by customer id from the previous completed upload (a mapping or a table of
    customer_id, probability); an id seen twice keeps its last value."""
    if previous is None:
        return pd.Series(dtype="float64")
    if isinstance(previous, pa.Table):
        ids, values = previous["customer_id"].to_pylist(), previous["probability"].to_numpy()
    else:
        ids, values = list(previous), list(previous.values())
    series = pd.Series(np.asarray(values, dtype="float64"), index=pd.Index(ids).astype(str))
    return series[~series.index.duplicated(keep="last")]


CHANGES = np.asarray([change.value for change in RiskChange], dtype=object)  # by code


def change_codes(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Each row's RiskChange as its index in CHANGES; `previous` is NaN where it is new."""
    up, down, same = (
        list(RiskChange).index(c) for c in (RiskChange.UP, RiskChange.DOWN, RiskChange.SAME)
    )
    codes = np.where(current > previous, up, down)
    codes = np.where(np.abs(current - previous) <= SAME_WITHIN, same, codes)
    return np.where(np.isnan(previous), list(RiskChange).index(RiskChange.NEW), codes).astype(
        np.int8
    )


def risk_changes(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """new / up / down / same per row; `previous` is NaN where the customer is new."""
    found: np.ndarray = CHANGES[change_codes(current, previous)]
    return found


def rank_order(key: np.ndarray) -> np.ndarray:
    """Positions in rank order: key descending, equal keys by position (`np.lexsort((positions,
    -key))`, for keys without NaN), from unstable sorts: a stable sort of floats is timsort, ~3x
    the cost on a chunk. The argsort's order among equal keys is then fixed by one sort of
    (group of equal keys, position) packed in an int64."""
    if not len(key) or len(key) >= 2**32:
        return np.lexsort((np.arange(len(key)), -key))
    down = np.argsort(-key)
    ordered = key[down]
    group = np.empty(len(key), dtype=np.int64)
    group[0] = 0
    np.not_equal(ordered[1:], ordered[:-1], out=group[1:])
    np.cumsum(group, out=group)
    packed = (group << 32) | down
    packed.sort()
    order: np.ndarray = packed & 0xFFFFFFFF
    return order


def worth_of(values: Any, rows: int) -> np.ndarray:
    """The value column's cells as numbers: blank, text or non-finite cells (and no cells at
    all) are NaN, so their value at risk is empty and they rank after every valued row."""
    if values is None:
        return np.full(rows, np.nan)
    text = pd.Series(np.asarray(values, dtype=object)).astype(str).str.strip()
    worth = pd.to_numeric(text, errors="coerce").to_numpy(dtype="float64")
    return np.where(np.isfinite(worth), worth, np.nan)


class ActionsBuilder:
    """Feed scored chunks with `add`, then read the ranked list from `batches` (or `write_csv`)."""

    def __init__(
        self,
        explainer: Explainer,
        spill_dir: Path,
        top_n: int,
        previous: Mapping[str, float] | pa.Table | None = None,
        value_column: str | None = None,
        explained: Callable[[], None] | None = None,
        csv_bytes: int | None = None,
    ):
        """`explained` is called once every row is explained, before the merge (so what the
        explainer keeps, e.g. its cache, can go before the list's peak); `csv_bytes`, the
        upload's size when known: runs that will not fit HELD_BYTES go to disk from the first
        (held, then written, they raised a 10M-row upload's chunks step by ~100 MB)."""
        self.explainer, self.spill_dir, self.top_n = explainer, Path(spill_dir), top_n
        self.explained = explained
        self.previous = previous_scores(previous)
        self.previous.index.get_indexer(self.previous.index[:1])  # its hash table, built once
        self.value_column = value_column
        self.rows_seen = 0
        self.runs: list[Path | pa.Table] = []  # in file order: spilled, or held in memory
        self.held = 0  # bytes of the runs held
        # once the runs pass HELD_BYTES (or are sure to): every run goes to disk
        self.spilling = (csv_bytes or 0) * RUN_BYTES_PER_CSV_BYTE > HELD_BYTES
        # the first top_n rows of the list so far, in rank order: their key and seq
        self.first_key, self.first_seq = np.empty(0), np.empty(0, dtype=np.int64)
        self.pool = pd.DataFrame()  # the non-HIGH rows among them: key, seq and feature columns

    def add(self, scored: pd.DataFrame, features: pd.DataFrame, values: Any = None) -> None:
        """One chunk: `scored` has customer_id, churn_probability, churn_risk; `features` the
        prepared rows on the same index; `values` the value column's cells when one is named."""
        self.put(self.prepare(scored, features, values))

    def prepare(
        self,
        scored: pd.DataFrame,
        features: pd.DataFrame,
        values: Any = None,
        explainer: Explainer | None = None,
    ) -> Chunk:
        """What `add` does with one chunk that no other chunk changes: its list columns, its HIGH
        rows' reasons (by `explainer`, default the builder's) and its rows in rank order. Safe
        on several threads at once (the chunked path runs it in the scorer threads); `put` then
        takes the chunks in file order."""
        slim = self._slim(scored, values)
        high = pc.equal(slim.risk, "HIGH").to_numpy(zero_copy_only=False)
        rows = np.flatnonzero(high)
        reasons = _EMPTY
        if len(rows):
            ids = pd.Series(slim.ids.take(rows).to_pylist(), index=features.index[rows])
            explained = _explained(
                explainer or self.explainer,
                features.iloc[rows],
                ids,
                _rose(slim.probability[rows], slim.previous[rows]),
            )
            reasons = _Reasons(rows, _texts(explained))
        return Chunk(slim, high, features, self._run(slim, reasons))

    def put(self, chunk: Chunk) -> None:
        """The prepared chunks, in file order: numbered after the rows before them, counted
        among the first `top_n`, and spilled."""
        offset = self.rows_seen
        self.rows_seen += len(chunk.slim.seq)
        slim = replace(chunk.slim, seq=chunk.slim.seq + offset)
        self._keep_first(slim, chunk.high, chunk.features)
        run = chunk.run
        where = run.schema.get_field_index("seq")
        seq = pc.add(run["seq"], pa.scalar(offset, pa.int64()))
        self._spill(run.set_column(where, "seq", seq))

    def _slim(self, scored: pd.DataFrame, values: Any) -> _Slim:
        """The chunk's list columns as arrays (no frame: building and sorting one with text
        columns cost more than the reasons' words)."""
        ids = pa.array(scored["customer_id"].astype(str), pa.string())
        probability = scored["churn_probability"].to_numpy(dtype="float64")
        if self.previous.empty:
            before = np.full(len(ids), np.nan)
        else:
            before = self.previous.reindex(ids.to_numpy(zero_copy_only=False)).to_numpy("float64")
        value_at_risk = None
        key = probability
        if self.value_column:
            value_at_risk = key = probability * worth_of(values, len(ids))
        seq = np.arange(len(ids), dtype=np.int64)  # in the chunk: `put` adds the rows before
        return _Slim(
            ids,
            probability,
            pa.array(scored["churn_risk"].astype(str), pa.string()),
            before,
            value_at_risk,
            np.nan_to_num(key, nan=-np.inf),
            seq,
        )

    def _keep_first(self, slim: _Slim, high: np.ndarray, features: pd.DataFrame) -> None:
        """Update the first `top_n` rows of the list with the chunk's (ties: the earlier row: a
        chunk's rows enter only above the `top_n`-th key), and the pool: the non-HIGH rows
        among them."""
        if not self.top_n:
            return
        enter = np.ones(len(slim.key), dtype=bool)
        if len(self.first_key) == self.top_n:
            enter = slim.key > self.first_key[-1]
        rows = np.flatnonzero(enter)
        if not len(rows):
            return
        key = np.concatenate([self.first_key, slim.key[rows]])
        seq = np.concatenate([self.first_seq, slim.seq[rows]])
        first = rank_order(key)[: self.top_n]  # equal keys: the list's in seq order, then later
        self.first_key, self.first_seq = key[first], seq[first]
        if len(self.first_key) == self.top_n and len(self.pool):
            inside = _at_or_before(self.pool["key"].to_numpy(), self.pool["seq"].to_numpy(), self)
            if not inside.all():
                self.pool = self.pool[inside].reset_index(drop=True)
        pooled = rows[~high[rows]]
        if len(self.first_key) == self.top_n:
            pooled = pooled[_at_or_before(slim.key[pooled], slim.seq[pooled], self)]
        if not len(pooled):
            return
        joined = pd.concat(
            [
                pd.DataFrame(
                    {
                        "key": slim.key[pooled],
                        "seq": slim.seq[pooled],
                        "customer_id": slim.ids.take(pooled),
                        "rose": _rose(slim.probability[pooled], slim.previous[pooled]),
                    },
                    index=features.index[pooled],
                ),
                features.iloc[pooled],
            ],
            axis=1,
        )
        pool = [self.pool, joined] if len(self.pool) else [joined]
        self.pool = pd.concat(pool, ignore_index=True)

    def _run(self, slim: _Slim, reasons: _Reasons) -> pa.Table:
        """The chunk's rows in rank order (key descending, then input order), as spilled."""
        order = rank_order(slim.key)  # seq is the position in the chunk
        codes = pa.array(change_codes(slim.probability, slim.previous)[order])
        columns: dict[str, Any] = {
            "key": slim.key[order],
            "seq": slim.seq[order],
            "customer_id": slim.ids.take(order),
            "churn_probability": slim.probability[order],
            "churn_risk": slim.risk.take(order),
            "previous_probability": slim.previous[order],
            "risk_change": pa.DictionaryArray.from_arrays(codes, pa.array(CHANGES, pa.string())),
        }
        columns.update(zip(REASONS, reasons.placed(order, len(slim.key)), strict=True))
        if self.value_column:
            assert slim.value_at_risk is not None
            columns[VALUE_AT_RISK] = slim.value_at_risk[order]
        schema = schema_of(["key", "seq", *self.columns[1:]])
        return pa.table([_arrow(columns[f.name], f.type) for f in schema], schema=schema)

    def _spill(self, table: pa.Table) -> None:
        """A run held in memory while the runs held stay within HELD_BYTES (writing and reading
        back a 1M-row list's 94 MB cost ~0.15 CPU s), else, with every run held so far, an
        Arrow IPC file (no encoding: Parquet's cost a third of the builder's time) in MERGE_ROWS
        blocks: a larger upload's merge holds no run (its peak at 10M rows)."""
        if not self.spilling and self.held + table.nbytes <= HELD_BYTES:
            self.runs.append(table)
            self.held += table.nbytes
            return
        self.runs = [self._written(run, n) for n, run in enumerate([*self.runs, table])]
        self.held, self.spilling = 0, True

    def _written(self, run: Path | pa.Table, number: int) -> Path:
        if isinstance(run, Path):
            return run
        path = self.spill_dir / f"run-{number:05d}.arrow"
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, run.schema) as writer:
            for batch in run.to_batches(max_chunksize=MERGE_ROWS):
                writer.write_batch(batch)
        return path

    def discard(self) -> None:
        """Let the runs held in memory and the pool go (the list is written, or never will be)."""
        self.runs, self.held, self.pool = [], 0, pd.DataFrame()
        self.spilling = False

    def _explain_pool(self) -> _Pooled | None:
        """Reasons, by seq, for the pooled rows: the non-HIGH rows in the first `top_n`."""
        if self.pool.empty:
            return None
        chosen = self.pool.sort_values(["key", "seq"], ascending=[False, True], kind="stable")
        features = chosen.drop(columns=[*POOL_KEYS])
        rose = chosen["rose"].to_numpy(dtype=bool)
        reasons = _texts(_explained(self.explainer, features, chosen["customer_id"], rose))
        seq = chosen["seq"].to_numpy()
        by_seq = np.argsort(seq, kind="stable")
        return _Pooled(seq[by_seq], [text.take(pa.array(by_seq)) for text in reasons])

    def _merged(self, columns: list[str]) -> Iterator[pa.Table]:
        """Every run's rows in rank order (key descending, then input order), in tables.

        A k-way merge in steps, each up to a bound (`_bounds`: about MERGE_BUDGET rows rank at
        or before it): every run gives its rows ranking at or before the bound, a prefix of
        what it has not yet given (runs are sorted), reading MERGE_ROWS blocks as it needs
        them, so each row is sliced, concatenated and sorted once. Memory: MERGE_BUDGET rows
        and a block per run, whatever the upload's size (a bound at the runs' last loaded rows
        held runs x a block of 8,192 rows: 1.3M rows at 10M).

        The parts are concatenated in run order, each sorted, and every seq of a run comes before
        the next run's: a stable sort on the key alone gives (key down, seq up), and it merges
        the sorted parts (timsort finds them) ~10x faster than a lexsort of both columns."""
        runs = [
            _Held(run.select(columns)) if isinstance(run, pa.Table) else _Run(_blocks(run, columns))
            for run in self.runs
        ]
        for key, seq in _bounds(self.runs, MERGE_BUDGET):
            parts = [part for run in runs for part in run.take_through(key, seq) if part.num_rows]
            if not parts:
                continue
            ready = pa.concat_tables(parts)
            yield ready.take(np.argsort(-ready["key"].to_numpy(), kind="stable"))

    @property
    def columns(self) -> list[str]:
        return ACTION_COLUMNS + ([VALUE_AT_RISK] if self.value_column else [])

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The ranked list in record batches, rank 1 first."""
        schema = schema_of(self.columns)
        pooled = self._explain_pool()
        if self.explained is not None:
            self.explained()
        rank = 0
        for table in self._merged(["key", "seq"] + self.columns[1:]):  # columns[0] is the rank
            if pooled is not None:
                table = pooled.put(table)
            ranks = pa.array(np.arange(rank + 1, rank + table.num_rows + 1, dtype=np.int64))
            rank += table.num_rows
            ranked = table.select(self.columns[1:]).add_column(0, "rank", ranks)
            yield from ranked.cast(schema).to_batches()
        if not rank:
            yield pa.RecordBatch.from_pylist([], schema)

    def write_csv(self, sink: str | Path | Writable) -> int:
        """Write the list as CSV to `sink` (a path, or anything with `write`: a binary file, a
        sink stream, each batch's bytes as it is formatted); returns the rows written.

        The batches are formatted FORMATTERS at a time on threads (Arrow's CSV writer lets go of
        the GIL) while the next ones are merged, and written in order: the bytes one writer
        gives, with both cores at work once the scoring is over."""
        written = 0
        with (
            _opened(sink) as out,
            ThreadPoolExecutor(FORMATTERS, thread_name_prefix="actions-csv") as formatter,
        ):
            out.write(_csv_header(schema_of(self.columns)))
            formatting: deque[Future[pa.Buffer]] = deque()
            for batch in self.batches():
                formatting.append(formatter.submit(_csv_rows, batch))
                written += batch.num_rows
                while len(formatting) > FORMATTERS:
                    out.write(formatting.popleft().result())
            for rows in formatting:
                out.write(rows.result())
        return written


def _rose(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """Whether each row's risk_change is `up`."""
    up: np.ndarray = change_codes(current, previous) == list(RiskChange).index(RiskChange.UP)
    return up


def _explained(
    explainer: Explainer, features: pd.DataFrame, ids: pd.Series, rose: np.ndarray
) -> pd.DataFrame:
    """The explainer's reasons; told which rows rose only when some did (a list with no previous
    upload, or no row up, calls it as before)."""
    if rose.any():
        return explainer(features, ids, rose)
    return explainer(features, ids)


def _opened(sink: str | Path | Writable) -> contextlib.AbstractContextManager[Writable]:
    """A path opened for writing, or the open sink as it is (left open)."""
    if isinstance(sink, str | Path):
        return Path(sink).open("wb")
    return contextlib.nullcontext(sink)


def _csv_header(schema: pa.Schema) -> bytes:
    header = pa.BufferOutputStream()
    pa_csv.write_csv(schema.empty_table(), header)
    return bytes(header.getvalue())


def _csv_rows(batch: pa.RecordBatch) -> pa.Buffer:
    """The batch's CSV rows, made on the formatting thread: Arrow's buffer as it is (every sink
    takes a buffer; a copy into `bytes` cost ~0.05 CPU s per 1M rows)."""
    rows = pa.BufferOutputStream()
    pa_csv.write_csv(batch, rows, pa_csv.WriteOptions(include_header=False))
    return rows.getvalue()


TYPES = {
    "rank": pa.int64(),
    "key": pa.float64(),
    "seq": pa.int64(),
    "churn_probability": pa.float64(),
    "previous_probability": pa.float64(),
    VALUE_AT_RISK: pa.float64(),
}


@dataclass(frozen=True)
class _Slim:
    """One chunk's list columns, in file order; `key` ranks (NaN as -inf), `seq` breaks ties."""

    ids: pa.Array
    probability: np.ndarray
    risk: pa.Array
    previous: np.ndarray
    value_at_risk: np.ndarray | None
    key: np.ndarray
    seq: np.ndarray


@dataclass(frozen=True)
class Chunk:
    """One chunk made ready by `ActionsBuilder.prepare` (seq counted from 0 in the chunk): its
    list columns, which rows are HIGH, its prepared features, and its rows in rank order."""

    slim: _Slim
    high: np.ndarray
    features: pd.DataFrame
    run: pa.Table


def _arrow(column: Any, kind: pa.DataType) -> pa.Array:
    """A spilled column as `kind`: NaN and None are empty cells (as pandas writes them)."""
    if isinstance(column, pa.Array):
        return column.cast(kind)
    return pa.array(column, kind, from_pandas=True)


class _Held:
    """One run held in memory being merged: the rows before `given` are given out. Its rows
    ranking at or before a bound are found by binary search (no blocks to read)."""

    def __init__(self, run: pa.Table):
        self.run, self.given = run, 0
        self.down = -run["key"].to_numpy()  # ascending (the run is in rank order)
        self.seq = run["seq"].to_numpy()

    def take_through(self, key: float, seq: int) -> list[pa.Table]:
        """The rows ranking at or before (key, seq) not given yet (a slice)."""
        above = int(np.searchsorted(self.down, -key, side="left"))  # key greater
        tied = int(np.searchsorted(self.down, -key, side="right"))  # key equal: seq ascending
        stop = above + int(np.searchsorted(self.seq[above:tied], seq, side="right"))
        start, self.given = self.given, max(stop, self.given)
        return [self.run.slice(start, self.given - start)]


class _Run:
    """One spilled run being merged: its loaded block, the rows of it not yet given out."""

    def __init__(self, blocks: Iterator[pa.RecordBatch]):
        self.blocks = blocks
        self.loaded: pa.Table | None = None
        self.key, self.seq = np.empty(0), np.empty(0, dtype=np.int64)
        self._next()

    def _next(self) -> None:
        batch = next(self.blocks, None)
        while batch is not None and not batch.num_rows:
            batch = next(self.blocks, None)
        self.loaded = None if batch is None else pa.Table.from_batches([batch])
        if self.loaded is not None:
            self.key, self.seq = self.loaded["key"].to_numpy(), self.loaded["seq"].to_numpy()

    def take_through(self, key: float, seq: int) -> list[pa.Table]:
        """The rows ranking at or before (key, seq) (a prefix), reading blocks as it needs them;
        the rest of the last block read stays loaded."""
        given = []
        while self.loaded is not None:
            count = int(np.count_nonzero(_at_or_before_bound(self.key, self.seq, key, seq)))
            if count < len(self.key):
                given.append(self.loaded.slice(0, count))
                self.loaded = self.loaded.slice(count)
                self.key, self.seq = self.key[count:], self.seq[count:]
                break
            given.append(self.loaded)
            self._next()
        return given


def _at_or_before_bound(key: np.ndarray, seq: np.ndarray, at_key: float, at_seq: int) -> np.ndarray:
    """Whether each (key, seq) ranks at or before (at_key, at_seq): key down, then seq up."""
    inside: np.ndarray = (key > at_key) | ((key == at_key) & (seq <= at_seq))
    return inside


def _bounds(runs: list[Path | pa.Table], budget: int) -> Iterator[tuple[float, int]]:
    """The merge's steps: (key, seq) bounds in rank order, the last one LAST, with about
    `budget` rows (give or take a block per run) ranking between one and the next. Taken from
    every run's block ends (only their key and seq columns are read)."""
    ends: list[tuple[float, int]] = []
    sizes: list[int] = []
    for run in runs:
        if isinstance(run, pa.Table):  # the blocks a spill of it would have, without slicing
            stops = np.append(np.arange(MERGE_ROWS, run.num_rows, MERGE_ROWS), run.num_rows)
            stops = stops[stops > 0]
            key, seq = run["key"].to_numpy(), run["seq"].to_numpy()
            ends += zip(key[stops - 1].tolist(), seq[stops - 1].tolist(), strict=True)
            sizes += np.diff(stops, prepend=0).tolist()
            continue
        for block in _blocks(run, ["key", "seq"]):
            if block.num_rows:
                ends.append((block["key"][-1].as_py(), block["seq"][-1].as_py()))
                sizes.append(block.num_rows)
    if ends:
        key, seq = np.array([end[0] for end in ends]), np.array([end[1] for end in ends])
        order = np.lexsort((seq, -key))
        total, last = np.cumsum(np.asarray(sizes)[order]), 0
        for at, rows in zip(order, total, strict=True):
            if rows - last >= budget:
                yield float(key[at]), int(seq[at])
                last = rows
    yield LAST


def _at_or_before(key: np.ndarray, seq: np.ndarray, builder: ActionsBuilder) -> np.ndarray:
    """Whether each (key, seq) ranks at or before the builder's `top_n`-th row so far."""
    last_key, last_seq = builder.first_key[-1], builder.first_seq[-1]
    inside: np.ndarray = (key > last_key) | ((key == last_key) & (seq <= last_seq))
    return inside


def _texts(frame: pd.DataFrame) -> list[pa.Array]:
    """The explainer's REASONS columns as Arrow strings (empty cells null); Arrow-backed columns
    (models.reasons.reason_frame) are taken as they are."""
    texts = []
    for name in REASONS:
        column = frame[name]
        if isinstance(column.dtype, pd.ArrowDtype):
            chunked = pa.chunked_array(column.array._pa_array)  # noqa: SLF001 (no copy)
            texts.append(chunked.combine_chunks().cast(pa.string()))
        else:
            texts.append(pa.array(column.to_numpy(dtype=object), pa.string(), from_pandas=True))
    return texts


@dataclass(frozen=True)
class _Reasons:
    """A chunk's explained rows (positions in the chunk) and their REASONS texts."""

    rows: np.ndarray
    texts: list[pa.Array]

    def placed(self, order: np.ndarray, length: int) -> list[pa.Array]:
        """Each REASONS column over the chunk's rows taken in `order`: null where unexplained."""
        if not len(self.rows):
            return [pa.nulls(len(order), pa.string())] * len(REASONS)
        where = np.full(length, -1, dtype=np.int64)
        where[self.rows] = np.arange(len(self.rows))
        taken = where[order]
        index = pa.array(taken, mask=taken < 0)
        return [text.take(index) for text in self.texts]


_EMPTY = _Reasons(np.empty(0, dtype=np.int64), [])


@dataclass(frozen=True)
class _Pooled:
    """The explained pooled rows: their seq (sorted) and REASONS texts in that order."""

    seq: np.ndarray
    texts: list[pa.Array]

    def put(self, table: pa.Table) -> pa.Table:
        """`table` (a merged block) with the pooled rows' reasons in their places (a pooled row
        is non-HIGH: its own reasons are empty)."""
        seq = table["seq"].to_numpy()
        at = np.minimum(np.searchsorted(self.seq, seq), len(self.seq) - 1)
        hit = self.seq[at] == seq
        if not hit.any():
            return table
        index = pa.array(at, mask=~hit)
        for column, text in zip(REASONS, self.texts, strict=True):
            where = table.schema.get_field_index(column)
            merged = pc.coalesce(table[column], text.take(index))
            table = table.set_column(where, column, merged)
        return table


def _blocks(path: Path, columns: list[str]) -> Iterator[pa.RecordBatch]:
    """A spilled run's MERGE_ROWS blocks with only `columns`, read, not mapped: a mapped run's
    pages stay in the process's RSS until it is closed (at the end, all of them: the whole
    spill). A held run is merged as it is (`_Held`)."""
    with pa.OSFile(str(path)) as source:
        reader = pa.ipc.open_file(source, options=_included(path, columns))
        for index in range(reader.num_record_batches):
            yield reader.get_batch(index).select(columns)


def _included(path: Path, columns: list[str]) -> pa.ipc.IpcReadOptions:
    """Only the buffers of `columns` are read (the bounds need key and seq alone)."""
    schema = pa.ipc.open_file(str(path)).schema
    return pa.ipc.IpcReadOptions(included_fields=[schema.get_field_index(c) for c in columns])


def schema_of(names: list[str]) -> pa.Schema:
    return pa.schema([(name, TYPES.get(name, pa.string())) for name in names])


def read_page(source: Source, offset: int, limit: int) -> tuple[list[Row], int | None]:
    """Rows offset..offset+limit of a stored actions CSV (a binary file), read as a stream that
    stops at the page: the first pages of a 1M-row list cost what they show. Returns the rows
    (empty cells as None) and the next page's offset, or None after the last row."""
    rows: list[Row] = []
    seen = 0
    for batch in _csv_batches(source):
        start = max(offset - seen, 0)
        if start < batch.num_rows:
            rows += batch.slice(start, limit + 1 - len(rows)).to_pylist()
        seen += batch.num_rows
        if len(rows) > limit:
            return rows[:limit], offset + limit
    return rows, None


def _csv_batches(source: Source) -> pa_csv.CSVStreamingReader:
    """A raw file (BlockReader) is buffered: Arrow takes a short read of the header for the end
    of the file ("Empty CSV file") when a block ends inside the header line."""
    if isinstance(source, io.RawIOBase):
        source = io.BufferedReader(source, 1 << 20)
    return pa_csv.open_csv(
        source,
        read_options=pa_csv.ReadOptions(block_size=1 << 20),
        convert_options=pa_csv.ConvertOptions(
            column_types=TYPES, strings_can_be_null=True, quoted_strings_can_be_null=False
        ),
    )


def actions_key(account: str, prediction_id: str) -> str:
    """Where an upload's actions list is stored: beside its results (uploads.output)."""
    return f"results/{account}/{prediction_id}/actions.csv"


@dataclass(frozen=True)
class ActionsQuery:
    """What the upload page shows: 0-based `page` of `size` rows, optionally one tier and an id
    search (case-insensitive, anywhere in the id), and the first `rose` rows whose risk went up
    among the first `rose_within` of the list (so an upload where none rose is not read whole)."""

    tier: str | None = None
    search: str = ""
    page: int = 0
    size: int = 50
    rose: int = 8
    rose_within: int = 20_000


@dataclass(frozen=True)
class ActionsView:
    rows: list[Row]  # the page's rows, column -> value (empty cells None)
    more: bool  # whether a later page has rows
    rose: list[Row]  # the first `rose` rows (by rank, unfiltered) whose risk_change is up


def read_view(source: Source, query: ActionsQuery) -> ActionsView:
    """The page and the rose rows from a stored actions CSV (a binary file), read in rank order
    only as far as both need."""
    start, matched, seen = query.page * query.size, 0, 0
    page: list[Row] = []
    rose: list[Row] = []
    for batch in _csv_batches(source):
        frame = batch.to_pandas()
        if len(rose) < query.rose and seen < query.rose_within:
            head = frame.head(query.rose_within - seen)
            up = head[head["risk_change"] == RiskChange.UP.value]
            rose += _records(up.head(query.rose - len(rose)))
        seen += len(frame)
        chosen = frame
        if query.tier:
            chosen = chosen[chosen["churn_risk"] == query.tier]
        if query.search:
            ids = chosen["customer_id"].str.lower()
            chosen = chosen[ids.str.contains(query.search.lower(), regex=False)]
        end = max(start + query.size + 1 - matched, 0)
        page += _records(chosen.iloc[max(start - matched, 0) : end])
        matched += len(chosen)
        if len(page) > query.size and (len(rose) >= query.rose or seen >= query.rose_within):
            break
    return ActionsView(page[: query.size], len(page) > query.size, rose)


def _records(frame: pd.DataFrame) -> list[Row]:
    records: list[Row] = frame.astype(object).where(frame.notna(), None).to_dict("records")
    return records
