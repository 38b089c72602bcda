"""Each customer over time, kept by the score-upload flow (adapters.customers).

The previous completed upload's probabilities feed the actions list; this upload's scores are
kept chunk by chunk as they are written, a compressed row per chunk (`upload_scores`: what the
account's next upload reads as "previous", there before COMPLETED is); once the upload is
COMPLETED they are stored as each customer's history at its completed_at (`customer_scores`),
off the customer's wait, and its explanations with them.
The explanations wait in a temporary file, not in memory (a small upload's, up to `HELD_BYTES`,
are held as they are: pickling them and reading them back cost more than they weigh), and are
stored a block of customers at a time (`EXPLAIN_BLOCK`), so what an upload holds does not grow
with its size.
A redelivered run drops what an earlier run of the same upload stored (`start`), so nothing is
stored twice; a failed upload keeps no history (`forget`).
"""

from __future__ import annotations

import io
import pickle
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import IO

import pandas as pd
import pyarrow as pa
from sqlalchemy.engine import Engine

from models.changes import Earlier
from models.explain import Explanation
from models.monitoring import ScoreCounts
from retainwise.adapters import customers
from retainwise.adapters.customers import UploadScored
from tasks.retry import retried

EXPLAIN_BLOCK = 20_000  # explained customers stored at a time (their JSON is ~1.5 KB each)
HELD_BYTES = 2 * 2**20  # explanations held in memory up to this (a 1k-row upload's: ~0.3 MB)

Part = tuple[pd.Series, Explanation, pd.DataFrame]  # one `explained` call's


class CustomerHistory:
    """uploads.contacts.History for one upload; explanations are held, or past HELD_BYTES spilled
    to a temporary file, until `completed` (a chunk's, then the pool's: in the order they were
    explained)."""

    def __init__(self, engine: Engine, upload: UploadScored):
        self.engine, self.upload = engine, upload
        self.spill: IO[bytes] | None = None  # pickled (ids, Explanation, X), one per `explained`
        self.held: list[Part] = []  # or, while they fit in HELD_BYTES, the parts themselves
        self.held_bytes = 0
        self.parts = 0
        self.score_parts = 0  # chunks of scores kept so far
        self.scores: ScoreCounts | None = None  # every scored row's, once `completed`

    @classmethod
    def for_upload(
        cls, engine: Engine, account: str, prediction_id: str, model, now: datetime | None = None
    ) -> CustomerHistory:
        """`now` (when scoring began) stands for the upload's time until it is COMPLETED."""
        upload = UploadScored(
            account, prediction_id, model.name, str(model.version), now or datetime.now(UTC)
        )
        return cls(engine, upload)

    def start(self) -> None:
        customers.forget_upload(self.engine, self.upload.prediction_id)
        self.drop_explanations()
        self.score_parts = 0

    def forget(self) -> None:
        customers.forget_upload(self.engine, self.upload.prediction_id)
        self.drop_explanations()
        self.score_parts = 0

    def previous(self) -> pa.Table | None:
        upload = self.upload
        return customers.previous_scores(
            self.engine, upload.account, upload.model_name, upload.prediction_id
        )

    def earlier(self, ids: pd.Series) -> Earlier:
        """The customers' stored explanations from the account's earlier uploads (one read per
        block of ids), never this upload's own (a rerun of a completed upload)."""
        upload = self.upload
        return customers.earlier_explanations(
            self.engine, upload.account, ids.astype(str), before=upload.prediction_id
        )

    def scored(self, results: pd.DataFrame) -> None:
        """One insert per chunk: the rows per customer wait for `completed`."""
        customers.keep_scores(self.engine, self.upload.prediction_id, self.score_parts, results)
        self.score_parts += 1

    def explained(self, ids: pd.Series, explanation: Explanation, X: pd.DataFrame) -> None:
        """Held while every part so far fits in HELD_BYTES; past it, all go to the spill file."""
        part = (ids, explanation, X)
        if self.spill is None:
            weight = self.held_bytes + weighed(part)
            if weight <= HELD_BYTES:
                self.held.append(part)
                self.held_bytes = weight
                return
            self.spill = tempfile.TemporaryFile(prefix="explanations-")  # our own pickles only
            for earlier in self.held:
                self._spilled(*earlier)
            self.held, self.held_bytes = [], 0
        self._spilled(*part)

    def _spilled(self, ids: pd.Series, explanation: Explanation, X: pd.DataFrame) -> None:
        assert self.spill is not None
        self.spill.seek(0, io.SEEK_END)
        pickle.dump((ids, explanation, compact(X)), self.spill, pickle.HIGHEST_PROTOCOL)
        self.parts += 1

    def kept(self) -> Iterator[Part]:
        """The explanations kept while scoring, one `explained` call at a time, in order."""
        yield from self.held
        if self.spill is None:
            return
        self.spill.seek(0)
        for _ in range(self.parts):
            yield pickle.load(self.spill)  # noqa: S301 (this object's own temporary file)

    def drop_explanations(self) -> None:
        if self.spill is not None:
            self.spill.close()
        self.spill, self.parts = None, 0
        self.held, self.held_bytes = [], 0

    def completed(self, block: int = EXPLAIN_BLOCK) -> int:
        """Store the kept scores as the customers' history at the upload's completed_at (keeping
        every row's probability for the monitoring figures), then the explanations kept while
        scoring with that time, `block` customers per write; returns how many explanation rows
        were written (a customer explained twice counts twice when its rows fall in two blocks).
        An upload not COMPLETED keeps the time scoring began."""
        moment = customers.completed_at(self.engine, self.upload.prediction_id)
        if moment is not None:
            self.upload = replace(self.upload, completed_at=moment)
        scores = ScoreCounts()  # counted a chunk at a time: no array of every probability
        for table in customers.store_kept_scores(self.engine, self.upload):
            scores.add(table["churn_probability"].to_numpy())
        self.scores = scores
        stored = 0
        for ids, found, X in blocks(self.kept(), block):
            stored += customers.record_explanations(self.engine, self.upload, ids, found, X)
        self.drop_explanations()
        return stored


def weighed(part: Part) -> int:
    """A part's bytes in memory, its text cells counted (`memory_usage(deep=True)`)."""
    ids, explanation, X = part
    arrays = explanation.base.nbytes + explanation.contributions.nbytes
    frames = int(ids.memory_usage(deep=True)) + int(X.memory_usage(deep=True).sum())
    return arrays + frames


def compact(X: pd.DataFrame) -> pd.DataFrame:
    """Text columns as categories: pickled as codes and the distinct values (a column of Python
    strings pickles a string per cell, ~1 CPU s for 200k rows); the same cells, the same JSON."""
    text = [name for name, dtype in X.dtypes.items() if pd.api.types.is_object_dtype(dtype)]
    return X.astype(dict.fromkeys(text, "category")) if text else X


def blocks(
    parts: Iterable[tuple[pd.Series, Explanation, pd.DataFrame]], size: int
) -> Iterator[tuple[pd.Series, Explanation, pd.DataFrame]]:
    """The explanations in order, at most `size` customers at a time: each block is stored in a
    transaction of its own, and a customer explained twice keeps the later one (a later block's
    upsert overwrites an earlier one's: the same completed_at), as when they were stored at once."""
    for ids, found, X in parts:
        for first in range(0, len(ids), size):
            rows = slice(first, first + size)
            yield (
                ids.iloc[rows],
                Explanation(found.features, found.base[rows], found.contributions[rows]),
                X.iloc[rows],
            )


def record_explanations(history: CustomerHistory) -> int:
    """After COMPLETED (tasks.background): the scores and the explanations stored at
    completed_at, retried (a replace and an upsert, so a retry stores nothing twice)."""
    return retried(history.completed)
