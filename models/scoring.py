"""Turn a fitted model and prepared rows into the four result columns customers receive."""

from __future__ import annotations

from typing import Protocol

import numpy as np
import pandas as pd

from models.features import prepare_features
from models.profile import ModelProfile, RiskCutoffs

# the contract customers' integrations read, in this order; optional columns come after it
RESULT_COLUMNS = ["customer_id", "churn_probability", "churn_risk", "predicted_churn"]
REASONS_COLUMN = "top_reasons"
OPTIONAL_COLUMNS = [REASONS_COLUMN]


class Predictor(Protocol):
    """A fitted pipeline or the compiled trees: probabilities of both classes per row."""

    def predict_proba(self, features: pd.DataFrame) -> np.ndarray: ...


class ScoringModel(Protocol):
    """What scoring needs of a model: a registry LoadedModel or a freshly TrainedModel."""

    @property
    def profile(self) -> ModelProfile: ...

    @property
    def scorer(self) -> Predictor: ...


class NamedModel(ScoringModel, Protocol):
    """A registered version, named in reports."""

    @property
    def name(self) -> str: ...

    @property
    def version(self) -> str: ...


def risk_tiers(probabilities: np.ndarray, cutoffs: RiskCutoffs) -> np.ndarray:
    return np.where(
        probabilities >= cutoffs.high,
        "HIGH",
        np.where(probabilities >= cutoffs.medium, "MEDIUM", "LOW"),
    )


def score_frame(
    pipeline: Predictor,
    profile: ModelProfile,
    frame: pd.DataFrame,
    customer_ids: pd.Series,
    reasons: bool = False,
) -> pd.DataFrame:
    """One result row per input row, in input order; `reasons` adds the top_reasons column."""
    if not len(frame):  # every row rejected: the header alone (the trees refuse zero rows)
        return pd.DataFrame({name: [] for name in RESULT_COLUMNS + ([REASONS_COLUMN] * reasons)})
    features = prepare_features(frame, profile.features)
    probabilities = pipeline.predict_proba(features)[:, 1]
    results = pd.DataFrame(
        {
            "customer_id": customer_ids.to_numpy(),
            "churn_probability": probabilities,
            "churn_risk": risk_tiers(probabilities, profile.cutoffs),
            "predicted_churn": (probabilities >= profile.threshold).astype("int8"),  # 1/0
        }
    )
    if reasons:
        from models.reasons import top_reasons

        explained = getattr(pipeline, "sklearn", pipeline)  # compiled trees explain as their model
        results[REASONS_COLUMN] = top_reasons(explained, profile, features).to_numpy()
    return results
