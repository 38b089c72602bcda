"""Each customer over time, kept by the score-upload flow (adapters.customers).

The previous completed upload's probabilities feed the actions list; this upload's scores are
stored chunk by chunk as they are written (dated, for now, when scoring began), then once the
upload is COMPLETED they take its completed_at and its explanations are stored with it.
A redelivered run drops what an earlier run of the same upload stored (`start`), so nothing is
stored twice; a failed upload keeps no history (`forget`).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pandas as pd
import pyarrow as pa
from sqlalchemy.engine import Engine

from models.explain import Explanation
from retainwise.adapters import customers
from retainwise.adapters.customers import UploadScored
from tasks.retry import retried


class CustomerHistory:
    """uploads.contacts.History for one upload; explanations are held until `completed`."""

    def __init__(self, engine: Engine, upload: UploadScored):
        self.engine, self.upload = engine, upload
        self.explanations: list[tuple[pd.Series, Explanation, pd.DataFrame]] = []

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
        self.explanations.clear()

    def forget(self) -> None:
        customers.forget_upload(self.engine, self.upload.prediction_id)

    def previous(self) -> pa.Table | None:
        upload = self.upload
        return customers.previous_scores(
            self.engine, upload.account, upload.model_name, upload.prediction_id
        )

    def scored(self, results: pd.DataFrame) -> None:
        customers.record_scores(self.engine, self.upload, results)

    def explained(self, ids: pd.Series, explanation: Explanation, X: pd.DataFrame) -> None:
        self.explanations.append((ids, explanation, X))

    def completed(self) -> int:
        """Date the stored scores at the upload's completed_at and store the explanations kept
        while scoring with that time; returns how many explanations were stored."""
        moment = customers.date_upload(self.engine, self.upload.prediction_id)
        if moment is not None:
            self.upload = replace(self.upload, completed_at=moment)
        if not self.explanations:
            return 0
        ids, found, X = joined(self.explanations)
        stored = customers.record_explanations(self.engine, self.upload, ids, found, X)
        self.explanations.clear()
        return stored


def joined(
    parts: list[tuple[pd.Series, Explanation, pd.DataFrame]],
) -> tuple[pd.Series, Explanation, pd.DataFrame]:
    """The explanations kept while scoring as one, in order: stored in one transaction (a
    customer explained twice keeps the later one, as when they were stored one after another)."""
    if len(parts) == 1:
        return parts[0]
    ids = pd.concat([p[0] for p in parts], ignore_index=True)
    X = pd.concat([p[2] for p in parts], ignore_index=True)
    found = Explanation(
        parts[0][1].features,
        np.concatenate([p[1].base for p in parts]),
        np.concatenate([p[1].contributions for p in parts]),
    )
    return ids, found, X


def record_explanations(history: CustomerHistory) -> int:
    """After COMPLETED (tasks.background): the scores dated at completed_at and the explanations
    stored, retried (an update and an upsert, so a retry stores nothing twice)."""
    return retried(history.completed)
