"""Figures reported for a model on labeled rows: the same functions for training and promotion."""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score, roc_curve

from models.features import prepare_features
from models.profile import ModelProfile


def lift_top_decile(y: np.ndarray, p: np.ndarray) -> float:
    """Churn rate among the 10% highest scores divided by the overall churn rate."""
    top = max(1, int(np.ceil(0.1 * len(p))))
    chosen = np.argsort(-p, kind="stable")[:top]
    return float(np.mean(y[chosen]) / max(np.mean(y), 1e-12))


def holdout_metrics(y: npt.ArrayLike, p: npt.ArrayLike, threshold: float) -> dict[str, float]:
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    predicted = p >= threshold
    true_positives = float(np.sum(predicted & (y == 1)))
    return {
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "lift_top_decile": lift_top_decile(y, p),
        "recall_at_threshold": true_positives / max(float(np.sum(y == 1)), 1.0),
        "precision_at_threshold": true_positives / max(float(np.sum(predicted)), 1.0),
        "threshold": float(threshold),
    }


def reliability_curve(y: npt.ArrayLike, p: npt.ArrayLike, bins: int = 10) -> dict[str, list[float]]:
    """Mean predicted vs observed churn rate per equal-count bin (calibrated: on the line y=x)."""
    observed, predicted = calibration_curve(
        np.asarray(y), np.asarray(p), n_bins=bins, strategy="quantile"
    )
    return {"predicted": [float(v) for v in predicted], "observed": [float(v) for v in observed]}


def roc_points(y: npt.ArrayLike, p: npt.ArrayLike) -> dict[str, list[float]]:
    fpr, tpr, _ = roc_curve(np.asarray(y), np.asarray(p))
    return {"fpr": [float(v) for v in fpr], "tpr": [float(v) for v in tpr]}


def evaluate_model(
    pipeline: Any, profile: ModelProfile, rows: pd.DataFrame, labels: np.ndarray
) -> dict[str, float]:
    """ROC AUC and Brier of one version on labeled raw rows (the promotion gate's figures)."""
    missing = [name for name in profile.feature_names if name not in rows.columns]
    if missing:
        raise ValueError(
            f"the evaluation set lacks columns this version needs: {', '.join(missing)}"
        )
    p = pipeline.predict_proba(prepare_features(rows, profile.features))[:, 1]
    labels = np.asarray(labels, dtype=int)
    return {
        "roc_auc": float(roc_auc_score(labels, p)),
        "brier": float(brier_score_loss(labels, p)),
        "rows": float(len(labels)),
    }
