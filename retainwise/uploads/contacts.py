"""The actions list of one upload being scored: fed each scored chunk, written beside the results.

Glue between the scoring paths (uploads.scoring, both whole and chunked) and the pure builder
(uploads.actions): it prepares each chunk for the list (on the chunked path in the scorer thread,
reusing the rows the scorer prepared and encoded), hands every explanation and every chunk's
scores to the account's `History` in file order, and writes the finished CSV to its sink. The
rows whose risk rose have their customers' earlier explanations read through the History (one
read per chunk, and one for the pool), so their reasons name what changed (models.changes).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import pandas as pd
import pyarrow as pa

from models.changes import Earlier
from models.compiled import Remembering
from models.explain import EncodedRows, Explanation, NotExplainable
from models.features import prepare_features
from models.reasons import REASON_COLUMNS, ReasonsExplainer, reasons_for
from models.scoring import ScoringModel
from models.tree_tables import ContributionCache
from retainwise.uploads.actions import ActionsBuilder, Chunk
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.validation import ValidatedUpload


class History(Protocol):
    """The account's customers over time: the previous upload's probabilities and the customers'
    earlier explanations in, this upload's scores (per chunk, in file order) and explanations
    out."""

    def previous(self) -> pa.Table | None: ...

    def earlier(self, ids: pd.Series) -> Earlier: ...

    def scored(self, results: pd.DataFrame) -> None: ...

    def explained(self, ids: pd.Series, explanation: Explanation, X: pd.DataFrame) -> None: ...


Kept = tuple[pd.Series | None, Explanation, pd.DataFrame]  # an explanation for the History


@dataclass(frozen=True)
class Prepared:
    """A chunk made ready off the writer thread, and its explanations for the History (handed
    over in file order by `add`)."""

    chunk: Chunk
    kept: list[Kept]


class Writable(Protocol):
    def write(self, data: bytes, /) -> int: ...


class ContactList:
    """Use as a context manager (the spilled runs live in a temporary directory): `add` each
    scored chunk, then `write_to` a stream."""

    def __init__(
        self,
        model: ScoringModel,
        policy: ScoringPolicy,
        history: History | None,
        csv_bytes: int | None = None,
    ):
        """`csv_bytes`: the upload's (decompressed) size when known, which sizes the list's runs."""
        self.model, self.history = model, history
        self.spill = tempfile.TemporaryDirectory(prefix="actions-")
        self.cache = ContributionCache()  # the chunks' explained rows share their bins
        keep = history.explained if history is not None else None
        self.earlier = history.earlier if history is not None else None
        explainer = reasons_for(
            model.scorer, model.profile, keep=keep, cache=self.cache, earlier=self.earlier
        )
        self.builder = ActionsBuilder(
            tolerant(explainer),
            Path(self.spill.name),
            policy.explain_top_n,
            history.previous() if history is not None else None,
            policy.value_column,
            explained=self.cache.clear,
            csv_bytes=csv_bytes,
        )

    def __enter__(self) -> ContactList:
        return self

    def __exit__(self, *exc: object) -> None:
        self.builder.discard()
        self.spill.cleanup()

    def prepare(
        self, results: pd.DataFrame, upload: ValidatedUpload, scored: Remembering | None = None
    ) -> Prepared:
        """One chunk's work that needs no other chunk (its HIGH rows' reasons, its sorted rows):
        the chunked path runs it in the scorer threads, both cores at once, with the prepared
        and encoded rows the scorer kept (`scored`), so they are not made again."""
        features = None if scored is None else scored.features
        if features is None:
            features = prepare_features(upload.accepted, self.model.profile.features)
        features = features.set_axis(results.index)
        encoded = None
        if scored is not None and scored.encoded is not None:
            encoded = EncodedRows(features.index, scored.encoded)
        values = None if upload.values is None else upload.values.to_numpy()
        kept: list[Kept] = []
        keep = None if self.history is None else lambda *explained: kept.append(explained)
        explainer = reasons_for(
            self.model.scorer, self.model.profile, keep, encoded, self.cache, earlier=self.earlier
        )
        chunk = self.builder.prepare(results, features, values, tolerant(explainer))
        return Prepared(chunk, kept)

    def add(
        self, results: pd.DataFrame, upload: ValidatedUpload, prepared: Prepared | None = None
    ) -> None:
        """One chunk, in file order: its results and the validated rows they were scored from
        (same order), with the value column's cells when the account names one; `prepared` is
        what `prepare` gave for it (else it is prepared here)."""
        prepared = prepared or self.prepare(results, upload)
        self.builder.put(prepared.chunk)
        if self.history is not None:
            for ids, explanation, X in prepared.kept:
                self.history.explained(ids, explanation, X)
            self.history.scored(results)

    def write_to(self, stream: Writable) -> int:
        """The ranked list as CSV into `stream`, batch by batch as it is merged (no copy of the
        whole CSV in a file first: ~77 MB written and read back at 1M rows); returns the rows
        written. A failure midway leaves part of the list in `stream`: its caller aborts it."""
        return self.builder.write_csv(stream)


def tolerant(explainer: ReasonsExplainer) -> ReasonsExplainer:
    """A model version without an exact explainer (trained before LightGBM) still gets its
    ranked list, with empty reasons, rather than a failed upload."""

    def explain(
        X: pd.DataFrame, ids: pd.Series | None = None, rose: np.ndarray | None = None, /
    ) -> pd.DataFrame:
        try:
            return explainer(X, ids) if rose is None else explainer(X, ids, rose)
        except NotExplainable:
            return pd.DataFrame(None, index=X.index, columns=REASON_COLUMNS, dtype=object)

    return explain
