"""The boosted candidate: LightGBM trees with native category splits and their own exact TreeSHAP.

LightGBM rather than scikit-learn's HistGradientBoosting because its `pred_contrib` gives exact
per-row contributions with category splits (shap's TreeExplainer misses HistGradientBoosting's
margin by up to 5.4 log-odds there, and with categories as plain numbers the Telco holdout AUC
drops below 0.845); figures in benchmarks/README.md.
"""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

import numpy as np
from lightgbm import LGBMClassifier

THREADS = 2  # explanations and predictions on both cores; training runs one thread per model


class ChurnBooster(LGBMClassifier):
    """An LGBMClassifier with the `decision_function` (log-odds) the pipeline and calibration use.

    The category columns are named by position in the `categorical_column` parameter (LightGBM's
    own alias), so a plain `fit(X, y)` from cross-validation splits them natively."""

    def decision_function(self, X: Any, **options: Any) -> np.ndarray:
        """The margin as a float array; `options` (LightGBM's predict keywords) pass through."""
        margin = self.predict(X, raw_score=True, num_threads=THREADS, **options)
        return np.asarray(margin, dtype=np.float64)

    def contributions(self, X: Any) -> np.ndarray:
        """rows x (features + 1): each feature's exact share of the margin, the base value last."""
        return np.asarray(self.predict(X, pred_contrib=True, num_threads=THREADS), np.float64)


class BoosterParams(TypedDict):
    """ChurnBooster's keyword arguments (LightGBM's names)."""

    learning_rate: float
    n_estimators: int
    num_leaves: int
    min_child_samples: int
    reg_lambda: float
    random_state: int
    deterministic: bool
    force_row_wise: bool
    n_jobs: int
    verbose: int
    categorical_column: NotRequired[list[int]]  # positions of the category columns


def booster_params(categorical: list[int], seed: int) -> BoosterParams:
    """The same shape of model the HistGradientBoosting candidate had (200 trees of 8 leaves)."""
    params: BoosterParams = {
        "learning_rate": 0.05,
        "n_estimators": 200,
        "num_leaves": 8,
        "min_child_samples": 40,
        "reg_lambda": 1.0,
        "random_state": seed,
        "deterministic": True,
        "force_row_wise": True,
        "n_jobs": 1,
        "verbose": -1,
    }
    if categorical:
        params["categorical_column"] = categorical
    return params
