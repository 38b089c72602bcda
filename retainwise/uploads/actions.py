"""The actions list: an upload's customers in the order to contact them, with what changed and why.

Columns ACTION_COLUMNS (+ `value_at_risk` when the account names a value column: probability x
that column, and the rank then follows it). Every HIGH customer and the first `top_n` of the list
get three reasons. Built chunk by chunk in bounded memory:
- reasons for HIGH rows are computed as their chunk arrives (only their text is kept);
- the explained rows below HIGH come from a pool of the best `top_n` non-HIGH rows seen so far
  (their feature rows are kept: at most `top_n` + one chunk), explained once at the end;
- every chunk's slim rows are spilled, sorted, to a Parquet run in `spill_dir`, and `batches()`
  merges the runs (heapq over row batches), so the whole list is never in memory at once.
Pure: pandas and pyarrow; the model's explainer is passed in.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator, Mapping
from enum import StrEnum
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

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
SAME_WITHIN = 1e-9  # one model on the same row gives the same probability to the last bit
BATCH_ROWS = 65_536

# prepared feature rows -> a frame with (at least) the REASONS columns, on the same index
Explainer = Callable[[pd.DataFrame], pd.DataFrame]


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


def risk_changes(current: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """new / up / down / same per row; `previous` is NaN where the customer is new."""
    change = np.where(current > previous, RiskChange.UP.value, RiskChange.DOWN.value)
    change = np.where(np.abs(current - previous) <= SAME_WITHIN, RiskChange.SAME.value, change)
    return np.where(np.isnan(previous), RiskChange.NEW.value, change).astype(object)


class ActionsBuilder:
    """Feed scored chunks with `add`, then read the ranked list from `batches` (or `write_csv`)."""

    def __init__(
        self,
        explainer: Explainer,
        spill_dir: Path,
        top_n: int,
        previous: Mapping[str, float] | pa.Table | None = None,
        value_column: str | None = None,
    ):
        self.explainer, self.spill_dir, self.top_n = explainer, Path(spill_dir), top_n
        self.previous = previous_scores(previous)
        self.value_column = value_column
        self.rows_seen, self.runs = 0, []
        self.pool = pd.DataFrame()  # best non-HIGH rows so far: key, seq and feature columns
        self.pool_reasons = pd.DataFrame(columns=REASONS)

    def add(self, scored: pd.DataFrame, features: pd.DataFrame, values=None) -> None:
        """One chunk: `scored` has customer_id, churn_probability, churn_risk; `features` the
        prepared rows on the same index; `values` the value column's cells when one is named."""
        slim = self._slim(scored, values)
        high = (slim["churn_risk"] == "HIGH").to_numpy()
        for column in REASONS:
            slim[column] = ""
        if high.any():
            reasons = self.explainer(features[high])[REASONS]
            slim.loc[high, REASONS] = reasons.to_numpy()
        self._keep_best(slim.loc[~high, ["key", "seq"]], features[~high])
        self._spill(slim)

    def _slim(self, scored: pd.DataFrame, values) -> pd.DataFrame:
        ids = scored["customer_id"].astype(str).to_numpy()
        probability = scored["churn_probability"].to_numpy(dtype="float64")
        before = self.previous.reindex(ids).to_numpy(dtype="float64")
        slim = pd.DataFrame(
            {
                "customer_id": ids,
                "churn_probability": probability,
                "churn_risk": scored["churn_risk"].astype(str).to_numpy(),
                "previous_probability": before,
                "risk_change": risk_changes(probability, before),
            },
            index=scored.index,
        )
        key = probability
        if self.value_column:
            worth = pd.to_numeric(pd.Series(np.asarray(values)), errors="coerce").to_numpy()
            slim[VALUE_AT_RISK] = key = probability * worth
        slim["key"] = np.nan_to_num(key, nan=-np.inf)
        slim["seq"] = np.arange(self.rows_seen, self.rows_seen + len(slim), dtype=np.int64)
        self.rows_seen += len(slim)
        return slim

    def _keep_best(self, order: pd.DataFrame, features: pd.DataFrame) -> None:
        """The pool keeps the `top_n` best non-HIGH rows (ties: the earlier row)."""
        if not self.top_n or order.empty:
            return
        joined = pd.concat([order, features], axis=1)
        pool = pd.concat([self.pool, joined], ignore_index=True) if len(self.pool) else joined
        ranked = pool.sort_values(["key", "seq"], ascending=[False, True], kind="stable")
        self.pool = ranked.head(self.top_n).reset_index(drop=True)

    def _spill(self, slim: pd.DataFrame) -> None:
        ranked = slim.sort_values(["key", "seq"], ascending=[False, True], kind="stable")
        path = self.spill_dir / f"run-{len(self.runs):05d}.parquet"
        pq.write_table(pa.Table.from_pandas(ranked, preserve_index=False), path)
        self.runs.append(path)

    def _explain_pool(self, cutoff: tuple[float, int] | None) -> dict[int, list[str]]:
        """Reasons for the pooled rows that rank inside the first `top_n` of the whole list."""
        if cutoff is None or self.pool.empty:
            return {}
        key, seq = self.pool["key"], self.pool["seq"]
        inside = (key > cutoff[0]) | ((key == cutoff[0]) & (seq <= cutoff[1]))
        chosen = self.pool[inside.to_numpy()]
        if chosen.empty:
            return {}
        reasons = self.explainer(chosen.drop(columns=["key", "seq"]))[REASONS]
        return dict(zip(chosen["seq"].tolist(), reasons.to_numpy().tolist(), strict=True))

    def _cutoff(self) -> tuple[float, int] | None:
        """(key, seq) of the `top_n`-th row of the merged list: the last one always explained."""
        if not self.top_n:
            return None
        last = None
        for position, row in enumerate(self._merged(("key", "seq")), start=1):
            last = row
            if position == self.top_n:
                break
        return last

    def _merged(self, columns) -> Iterator[tuple]:
        """Rows of every run in rank order (key descending, then input order)."""
        streams = [self._rows(path, columns) for path in self.runs]
        return heapq.merge(*streams, key=lambda row: (-row[0], row[1]))

    @staticmethod
    def _rows(path: Path, columns) -> Iterator[tuple]:
        for batch in pq.ParquetFile(path).iter_batches(BATCH_ROWS, columns=list(columns)):
            yield from zip(*(batch.column(name).to_pylist() for name in columns), strict=True)

    @property
    def columns(self) -> list[str]:
        return ACTION_COLUMNS + ([VALUE_AT_RISK] if self.value_column else [])

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The ranked list in record batches of BATCH_ROWS rows, rank 1 first."""
        fields = ["key", "seq"] + self.columns[1:]  # self.columns[0] is the rank
        pooled = self._explain_pool(self._cutoff())
        reason_at = [fields.index(column) for column in REASONS]
        chunk: list[tuple] = []
        for rank, row in enumerate(self._merged(fields), start=1):
            if row[1] in pooled:
                row = list(row)
                for index, text in zip(reason_at, pooled[row[1]], strict=True):
                    row[index] = text
            chunk.append((rank, *row[2:]))
            if len(chunk) == BATCH_ROWS:
                yield self._batch(chunk)
                chunk = []
        if chunk or not self.rows_seen:
            yield self._batch(chunk)

    def _batch(self, rows: list[tuple]) -> pa.RecordBatch:
        """Rows (rank first, then the other columns in order) as a batch; NaN becomes empty."""
        schema = schema_of(self.columns)
        cells = list(zip(*rows, strict=True)) if rows else [()] * len(schema)
        arrays = [
            pa.array(list(values), field.type, from_pandas=True)
            for values, field in zip(cells, schema, strict=True)
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=schema)

    def write_csv(self, sink) -> int:
        """Write the list as CSV to `sink` (a path or a binary file); returns the rows written."""
        written = 0
        with pa_csv.CSVWriter(sink, schema_of(self.columns)) as writer:
            for batch in self.batches():
                writer.write_batch(batch)
                written += batch.num_rows
        return written


TYPES = {
    "rank": pa.int64(),
    "churn_probability": pa.float64(),
    "previous_probability": pa.float64(),
    VALUE_AT_RISK: pa.float64(),
}


def schema_of(names: list[str]) -> pa.Schema:
    return pa.schema([(name, TYPES.get(name, pa.string())) for name in names])
