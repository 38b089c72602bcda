"""Platt scaling on out-of-fold scores: probabilities that mean what they say, one fit only."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.special import expit
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from threadpoolctl import threadpool_limits


def fit_platt(scores: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Slope and intercept mapping a raw score to a probability, fitted on held-out scores."""
    platt = LogisticRegression(C=1e6, max_iter=1000).fit(np.asarray(scores).reshape(-1, 1), y)
    return float(platt.coef_[0, 0]), float(platt.intercept_[0])


class CalibratedModel(ClassifierMixin, BaseEstimator):  # type: ignore[misc]  # sklearn: no stubs
    """A fitted pipeline whose decision scores go through a fitted sigmoid (monotone: AUC kept)."""

    def __init__(self, base: Any = None, slope: float = 1.0, intercept: float = 0.0) -> None:
        self.base = base
        self.slope = slope
        self.intercept = intercept

    @property
    def classes_(self) -> np.ndarray:
        return np.array([0, 1])

    def fit(self, X: npt.ArrayLike, y: npt.ArrayLike) -> CalibratedModel:  # pragma: no cover
        # the parts are fitted separately by training
        raise NotImplementedError(
            "built from a fitted pipeline and fit_platt(); see models.training"
        )

    def decision_function(self, X: npt.ArrayLike) -> np.ndarray:
        # One OpenMP thread: on a shared 2-core box the boosted trees' threads spin-wait and a
        # 20k-row batch took 3.9 s instead of 1.2 s.
        with threadpool_limits(limits=1, user_api="openmp"):
            scores: np.ndarray = self.base.decision_function(X)
            return scores

    def predict_proba_from_scores(self, scores: np.ndarray) -> np.ndarray:
        """Churn probability for raw decision scores (used on out-of-fold scores in training)."""
        churn: np.ndarray = expit(self.slope * np.asarray(scores, dtype=float) + self.intercept)
        return churn

    def predict_proba(self, X: npt.ArrayLike) -> np.ndarray:
        churn = self.predict_proba_from_scores(self.decision_function(X))
        return np.column_stack([1 - churn, churn])

    def predict(self, X: npt.ArrayLike) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)
