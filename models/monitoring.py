"""Performance after deployment: realised (labels arrived) and estimated (labels not yet known).

Realised figures reuse `models.evaluation`, the code that scores the training holdout. The
estimate is confidence-based (CBPE, as in NannyML): if the probabilities are calibrated and the
relation between features and churn has not changed (no concept shift), each customer churns with
its own probability p, so the expected confusion matrix, churn count and ROC AUC follow from the
scores alone. Bands come from drawing labels from Bernoulli(p): the spread a correct model would
still show by chance on this many customers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from models.evaluation import holdout_metrics, reliability_curve
from models.profile import RiskCutoffs
from models.scoring import risk_tiers

TIERS = ("HIGH", "MEDIUM", "LOW")
DRAWS = 200  # simulated label sets for the bands
MAX_DRAW_ROWS = 20_000  # bands on a fixed-seed sample of larger uploads (their width is what
# shrinks with size, so a sample gives a slightly wider, honest band)
SEED = 15


@dataclass(frozen=True)
class TierRate:
    """One risk tier's labelled rows and the share of them that churned (None: no rows)."""

    rows: int
    churn_rate: float | None

    def to_json(self) -> dict[str, object]:
        return {"rows": self.rows, "churn_rate": self.churn_rate}


@dataclass(frozen=True)
class Realised:
    """Holdout figures on labelled production rows. With one class only the AUC figures are None
    and the threshold figures, lift and reliability curve are absent (None, and not in JSON)."""

    rows: int
    churned: int
    roc_auc: float | None
    pr_auc: float | None
    brier: float
    threshold: float
    expected_calibration_error: float
    tiers: dict[str, TierRate]
    reliability: dict[str, list[float]] | None = None
    lift_top_decile: float | None = None
    recall_at_threshold: float | None = None
    precision_at_threshold: float | None = None

    def to_json(self) -> dict[str, object]:
        """The keys in the order the figures have always been printed and served."""
        both = self.reliability is not None
        return {
            "rows": self.rows,
            "churned": self.churned,
            "roc_auc": self.roc_auc,
            "pr_auc": self.pr_auc,
            "brier": self.brier,
            **(
                {
                    "lift_top_decile": self.lift_top_decile,
                    "recall_at_threshold": self.recall_at_threshold,
                    "precision_at_threshold": self.precision_at_threshold,
                }
                if both
                else {}
            ),
            "threshold": self.threshold,
            "reliability": self.reliability,
            "expected_calibration_error": self.expected_calibration_error,
            "tiers": {tier: rate.to_json() for tier, rate in self.tiers.items()},
        }


def tier_churn_rates(
    y: npt.ArrayLike, p: npt.ArrayLike, cutoffs: RiskCutoffs
) -> dict[str, TierRate]:
    """Observed churn rate and row count per risk tier (HIGH should churn >= 50% by definition)."""
    y, tiers = np.asarray(y, dtype=int), risk_tiers(np.asarray(p, dtype=float), cutoffs)
    return {
        tier: TierRate(
            int((tiers == tier).sum()),
            float(y[tiers == tier].mean()) if (tiers == tier).any() else None,
        )
        for tier in TIERS
    }


def realised_performance(
    y: npt.ArrayLike, p: npt.ArrayLike, threshold: float, cutoffs: RiskCutoffs
) -> Realised:
    """Holdout figures on labelled production rows; AUC figures are None with one class only."""
    y, p = np.asarray(y, dtype=int), np.asarray(p, dtype=float)
    rows, churned = int(len(y)), int(y.sum())
    error, tiers = calibration_error(y, p), tier_churn_rates(y, p, cutoffs)
    if len(np.unique(y)) < 2:
        brier = float(np.mean((p - y) ** 2))
        return Realised(rows, churned, None, None, brier, float(threshold), error, tiers)
    m = holdout_metrics(y, p, threshold)
    return Realised(
        rows,
        churned,
        m["roc_auc"],
        m["pr_auc"],
        m["brier"],
        m["threshold"],
        error,
        tiers,
        reliability_curve(y, p),
        m["lift_top_decile"],
        m["recall_at_threshold"],
        m["precision_at_threshold"],
    )


def calibration_error(y: npt.ArrayLike, p: npt.ArrayLike, bins: int = 10) -> float:
    """Mean |observed - predicted| churn rate over equal-count bins, weighted by rows (ECE)."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    order = np.argsort(p, kind="stable")
    parts = np.array_split(order, min(bins, max(1, len(p))))
    return float(sum(len(b) * abs(y[b].mean() - p[b].mean()) for b in parts if len(b)) / len(p))


def expected_roc_auc(p: npt.ArrayLike) -> float:
    """E[concordant pairs] / E[positive-negative pairs] when customer i churns with probability p_i.

    A pair (i, j) counts when j churns and i does not: weight p_j (1 - p_i); it is concordant when
    p_j > p_i, half when tied. O(n log n) by sorting (`np.unique`), then per distinct value.
    """
    values, counts = np.unique(np.asarray(p, dtype=float), return_counts=True)
    return expected_roc_auc_of(values, counts)


def expected_roc_auc_of(values: np.ndarray, counts: np.ndarray) -> float:
    """`expected_roc_auc` of the scores `values` (sorted, distinct) each held `counts` times."""
    if not len(values):
        return float("nan")
    group_positive = values * counts  # sum of p_i per value
    tied = counts - group_positive  # sum of (1 - p_i) per value
    below = np.r_[0.0, np.cumsum(tied)[:-1]]  # ... strictly below it
    same = values * (1 - values) * counts  # the i == j pairs
    concordant = np.sum(group_positive * below) + 0.5 * np.sum(group_positive * tied - same)
    positive = np.sum(group_positive)
    pairs = positive * (np.sum(counts) - positive) - np.sum(same)
    return float(concordant / pairs) if pairs > 0 else float("nan")


@dataclass(frozen=True)
class Band:
    """An expected figure and the 95% band a correct model still shows by chance."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Estimate:
    """The label-free estimate of one upload's performance (CBPE), each figure with its band."""

    rows: int
    roc_auc: Band
    precision_at_threshold: Band
    recall_at_threshold: Band
    churn_count: Band


def estimated_performance(
    p: npt.ArrayLike, threshold: float, draws: int = DRAWS, seed: int = SEED
) -> Estimate:
    """Expected ROC AUC, precision and recall at the threshold and churn count, each with a
    95% band, from calibrated probabilities alone."""
    p = np.asarray(p, dtype=float)
    values, counts = np.unique(p, return_counts=True)
    rng = np.random.default_rng(seed)
    sample = p if len(p) <= MAX_DRAW_ROWS else rng.choice(p, MAX_DRAW_ROWS, replace=False)
    return estimate_of(values, counts, sample, threshold, draws, rng)


DRAW_BLOCK_CELLS = 1 << 18  # label draws made at once: at most 2 MB of uniforms (1k rows: all)


def simulate(
    sample: np.ndarray, threshold: float, draws: int, rng: np.random.Generator, scale: float
) -> dict[str, list[float]]:
    """Each figure over `draws` label sets drawn from `sample`'s scores. The draws are made a
    block at a time (one generator call for many: the same numbers as one call per draw, since
    the generator fills an array in order) and counted per row; the figures per draw are then
    computed as one draw at a time computed them (the rank sums are exact: halves below 2**53)."""
    simulated: dict[str, list[float]] = {
        name: [] for name in ("roc_auc", "precision_at_threshold", "recall_at_threshold")
    }
    simulated["churn_count"] = []
    ranks = rankdata(sample)  # the scores stay fixed across draws: rank them once (ties averaged)
    above = sample >= threshold
    flagged, n = above.sum(), len(sample)
    block = max(1, DRAW_BLOCK_CELLS // max(n, 1))
    for start in range(0, draws, block):
        y = rng.random((min(block, draws - start), n)) < sample
        all_positives, hits = y.sum(axis=1), (y & above).sum(axis=1)
        rank_sums = np.where(y, ranks, 0.0).sum(axis=1)
        for positives, hit, rank_sum in zip(all_positives, hits, rank_sums, strict=True):
            if 0 < positives < n:  # Mann-Whitney: the same figure as roc_auc_score, in O(n)
                p = int(positives)
                simulated["roc_auc"].append(float((rank_sum - p * (p + 1) / 2) / (p * (n - p))))
            simulated["precision_at_threshold"].append(hit / max(flagged, 1))
            simulated["recall_at_threshold"].append(hit / max(positives, 1))
            simulated["churn_count"].append(positives * scale)
    return simulated


def estimate_of(
    values: np.ndarray,
    counts: np.ndarray,
    sample: np.ndarray,
    threshold: float,
    draws: int,
    rng: np.random.Generator,
) -> Estimate:
    """`estimated_performance` of the scores `values` (sorted, distinct) each held `counts` times,
    its bands drawn on `sample` (every score in file order, or MAX_DRAW_ROWS of them drawn by
    `rng`), so an upload's scores need not all be held at once (`ScoreCounts`)."""
    flagged = values >= threshold
    total, flagged_total = np.sum(values * counts), np.sum(values[flagged] * counts[flagged])
    flagged_rows = int(counts[flagged].sum())
    expected = {
        "roc_auc": expected_roc_auc_of(values, counts),
        "precision_at_threshold": float(flagged_total / flagged_rows) if flagged_rows else 0.0,
        "recall_at_threshold": float(flagged_total / max(total, 1e-12)),
        "churn_count": float(total),
    }
    rows = int(counts.sum())
    scale = rows / len(sample) if len(sample) else 1.0
    simulated = simulate(sample, threshold, draws, rng, scale)
    bands = {}
    for name, value in expected.items():
        spread = np.asarray(simulated[name], dtype=float)
        centred = spread - spread.mean() if spread.size else spread  # the band is the chance
        low, high = np.quantile(centred, [0.025, 0.975]) if spread.size else (np.nan, np.nan)
        bands[name] = Band(value, float(value + low), float(value + high))
    return Estimate(rows, **bands)


SCORE_EDGES = np.linspace(0.0, 1.0, 11)  # tenths of the probability range


def score_shares(p: npt.ArrayLike) -> np.ndarray:
    """Share of scores per tenth of [0, 1]: compared with the profile's for the score PSI."""
    counts = np.histogram(np.clip(np.asarray(p, dtype=float), 0.0, 1.0), bins=SCORE_EDGES)[0]
    shares: np.ndarray = counts / max(counts.sum(), 1)
    return shares


def score_shares_of(values: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """`score_shares` of the scores `values` each held `counts` times (each value falls in the
    same tenth as in `score_shares`, so the shares are the same)."""
    weighted = np.histogram(np.clip(values, 0.0, 1.0), bins=SCORE_EDGES, weights=counts)[0]
    shares: np.ndarray = weighted / max(weighted.sum(), 1)
    return shares


MILLIONTHS = 1_000_000  # the results file's 6 decimals
SORTED_DISTINCT_ROWS = 50_000  # up to this many rows, their distinct scores are found by sorting


class ScoreCounts:
    """An upload's scores at the results file's 6 decimals, added a chunk at a time: each row's
    millionth as 4 bytes in file order (the bands' sample), instead of every probability as
    float64 and its sorted copies. The distinct scores and their counts are found once asked:
    sorted out of the rows for a small upload, else counted per millionth of [0, 1] (8 MB)."""

    def __init__(self) -> None:
        self.parts: list[np.ndarray] = []  # uint32 millionths, one array per chunk added
        self._distinct: tuple[np.ndarray, np.ndarray] | None = None

    @classmethod
    def of(cls, p: npt.ArrayLike) -> ScoreCounts:
        scores = cls()
        scores.add(p)
        return scores

    def add(self, p: npt.ArrayLike) -> None:
        """Add scores in file order, rounded as `np.round(p, 6)` rounds (times 1e6, to even)."""
        units = np.rint(np.asarray(p, dtype=float) * MILLIONTHS)
        if len(units) and not (units.min() >= 0 and units.max() <= MILLIONTHS):
            raise ValueError("a churn probability outside [0, 1]")
        self.parts.append(units.astype(np.uint32))
        self._distinct = None

    @property
    def rows(self) -> int:
        return int(sum(len(part) for part in self.parts))

    def distinct(self) -> tuple[np.ndarray, np.ndarray]:
        """The scores held (sorted, as np.round(p, 6) holds them) and how many rows hold each."""
        if self._distinct is None:
            held, counts = self._held()
            self._distinct = held / MILLIONTHS, counts
        return self._distinct

    def _held(self) -> tuple[np.ndarray, np.ndarray]:
        """The distinct millionths and their counts (int64): sorting a small upload's rows costs
        less than the 8 MB of a count per millionth, which a large one's sort would cost more."""
        if self.rows <= SORTED_DISTINCT_ROWS:
            every = np.concatenate([np.zeros(0, np.uint32), *self.parts])
            held, counts = np.unique(every, return_counts=True)
            return held.astype(np.int64), counts.astype(np.int64)
        per_millionth = np.zeros(MILLIONTHS + 1, dtype=np.int64)
        for part in self.parts:
            per_millionth += np.bincount(part, minlength=MILLIONTHS + 1)
        held = np.flatnonzero(per_millionth)
        return held, per_millionth[held]

    def sample(self, rng: np.random.Generator) -> np.ndarray:
        """Every score in file order, or the MAX_DRAW_ROWS that `rng.choice(p, ...)` would draw."""
        rows = self.rows
        if rows <= MAX_DRAW_ROWS:
            return np.concatenate([np.zeros(0, np.uint32), *self.parts]) / MILLIONTHS
        at = rng.choice(rows, MAX_DRAW_ROWS, replace=False)  # the indices choice(p) takes
        starts = np.cumsum([0] + [len(part) for part in self.parts])
        part = np.searchsorted(starts, at, side="right") - 1
        drawn = np.empty(len(at), dtype=np.uint32)
        for i in np.unique(part):
            mine = part == i
            drawn[mine] = self.parts[i][at[mine] - starts[i]]
        return drawn / MILLIONTHS

    def estimate(self, threshold: float, draws: int = DRAWS, seed: int = SEED) -> Estimate:
        """`estimated_performance` of the scores added (the same figures as of their array)."""
        rng = np.random.default_rng(seed)
        sample = self.sample(rng)
        return estimate_of(*self.distinct(), sample, threshold, draws, rng)

    def shares(self) -> np.ndarray:
        return score_shares_of(*self.distinct())
