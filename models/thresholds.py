"""Decision threshold and risk tiers, chosen on validation (out-of-fold) probabilities.

The rule, written down:
- threshold (predicted_churn): the probability that maximises F1 on the validation predictions;
  among equal F1 the higher threshold wins. MEDIUM starts at the threshold, so predicted_churn is
  true exactly for MEDIUM and HIGH customers.
- HIGH: the lowest validation probability from which on the observed churn rate reaches
  HIGH_RATE, i.e. customers there churned more often than not (rates of equal-count bins of at
  least MIN_BIN_ROWS customers, made monotone by isotonic regression). If no bin gets there,
  HIGH is the top decile of validation scores. HIGH is never below the threshold.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from sklearn.isotonic import IsotonicRegression

from models.profile import RiskCutoffs

HIGH_RATE = 0.5
MIN_BIN_ROWS = 50
MAX_BINS = 50


def choose_threshold(y: npt.ArrayLike, p: npt.ArrayLike) -> float:
    """The F1-maximising probability (highest among ties)."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    order = np.argsort(-p, kind="stable")
    p_sorted = p[order]
    true_positives = np.cumsum(y[order])
    last_of_value = np.r_[p_sorted[1:] != p_sorted[:-1], True]
    flagged = np.arange(1, len(p) + 1)[last_of_value]
    f1 = 2 * true_positives[last_of_value] / (flagged + max(int(y.sum()), 1))
    return float(p_sorted[last_of_value][int(np.argmax(f1))])  # first max = highest probability


def observed_rates(y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Lowest probability and (monotone) observed churn rate of equal-count bins of validation rows.

    Bins of at least MIN_BIN_ROWS rows keep a handful of lucky customers from defining a tier.
    """
    order = np.argsort(p, kind="stable")
    bins = np.array_split(order, max(1, min(MAX_BINS, len(p) // MIN_BIN_ROWS)))
    starts = np.array([p[b].min() for b in bins])
    rates = np.array([y[b].mean() for b in bins])
    sizes = np.array([len(b) for b in bins])
    fitted = IsotonicRegression().fit(starts, rates, sample_weight=sizes).predict(starts)
    return starts, fitted


def choose_cutoffs(y: npt.ArrayLike, p: npt.ArrayLike, threshold: float) -> RiskCutoffs:
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    starts, rates = observed_rates(y, p)
    reached = starts[rates >= HIGH_RATE]
    high = float(reached.min()) if reached.size else float(np.quantile(p, 0.9))
    return RiskCutoffs(high=max(high, threshold), medium=threshold)


def choose_threshold_and_cutoffs(y: npt.ArrayLike, p: npt.ArrayLike) -> tuple[float, RiskCutoffs]:
    threshold = choose_threshold(y, p)
    return threshold, choose_cutoffs(y, p, threshold)
