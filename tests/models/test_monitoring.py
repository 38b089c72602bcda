"""Realised and estimated performance on DataFrames: milliseconds, no services."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from models.evaluation import holdout_metrics
from models.monitoring import (
    MAX_DRAW_ROWS,
    ScoreCounts,
    TierRate,
    calibration_error,
    estimated_performance,
    expected_roc_auc,
    realised_performance,
    score_shares,
)
from models.profile import RiskCutoffs

CUTOFFS = RiskCutoffs(high=0.6, medium=0.3)


def brute_force_expected_auc(p):
    concordant = pairs = 0.0
    for i, pi in enumerate(p):
        for j, pj in enumerate(p):
            if i != j:
                weight = pj * (1 - pi)
                pairs += weight
                concordant += weight * (1.0 if pj > pi else 0.5 if pj == pi else 0.0)
    return concordant / pairs


def test_expected_auc_is_the_pairwise_expectation_with_ties():
    p = np.round(np.random.default_rng(1).random(60), 1)  # many ties
    assert expected_roc_auc(p) == pytest.approx(brute_force_expected_auc(p), abs=1e-12)


def test_the_estimate_matches_labels_drawn_from_calibrated_probabilities():
    rng = np.random.default_rng(7)
    p = rng.beta(1.2, 3, 2000)
    y = (rng.random(2000) < p).astype(int)  # calibrated by construction
    estimate = estimated_performance(p, threshold=0.35)
    realised = realised_performance(y, p, 0.35, CUTOFFS)
    for name in ("roc_auc", "precision_at_threshold", "recall_at_threshold"):
        band, actual = getattr(estimate, name), getattr(realised, name)
        assert band.low < band.value < band.high
        assert band.low <= actual <= band.high, name
        assert abs(band.value - actual) < 0.03, name
    assert estimate.churn_count.low <= y.sum() <= estimate.churn_count.high


def test_an_overconfident_model_is_flagged_by_its_realised_figures():
    rng = np.random.default_rng(3)
    p = rng.random(3000)
    y = (rng.random(3000) < 0.5 * p).astype(int)  # churns half as often as scored
    realised = realised_performance(y, p, 0.5, CUTOFFS)
    assert realised.expected_calibration_error > 0.2
    assert estimated_performance(p, 0.5).churn_count.low > y.sum()


def test_realised_figures_are_the_holdout_figures_plus_tiers():
    y, p = np.array([0, 0, 1, 1, 0, 1, 0, 1]), np.array([0.1, 0.2, 0.35, 0.7, 0.65, 0.9, 0.3, 0.2])
    realised = realised_performance(y, p, 0.3, CUTOFFS)
    for name, value in holdout_metrics(y, p, 0.3).items():
        assert getattr(realised, name) == value
    assert realised.roc_auc == roc_auc_score(y, p)
    assert realised.tiers["HIGH"] == TierRate(rows=3, churn_rate=2 / 3)
    assert realised.tiers["LOW"] == TierRate(rows=3, churn_rate=1 / 3)


def test_one_class_has_no_auc_but_a_brier_score():
    realised = realised_performance([0, 0, 0], [0.1, 0.2, 0.4], 0.3, CUTOFFS)
    assert realised.roc_auc is None and realised.brier == pytest.approx(0.07)
    shown = realised.to_json()  # the threshold figures need both classes: not shown without
    assert "precision_at_threshold" not in shown and shown["threshold"] == 0.3


def test_calibration_error_is_zero_when_bins_match():
    assert calibration_error([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5], bins=1) == 0.0


@pytest.mark.parametrize("rows", [5_000, 3 * MAX_DRAW_ROWS + 7])
def test_scores_counted_chunk_by_chunk_give_the_figures_of_their_array(rows):
    """The figures an upload stores come from its scores counted a chunk at a time: the same
    estimate (bands drawn on the same rows, in the same order) and shares as the whole array."""
    p = np.round(np.random.default_rng(5).beta(1.2, 3, rows), 6)
    p[:50] = [0.0, 1.0] * 25  # both ends of the range
    counted = ScoreCounts()
    for chunk in np.array_split(p, [1, 999, 1000, rows // 2]):  # uneven chunks, an empty one
        counted.add(chunk)
    assert counted.rows == rows
    assert counted.estimate(0.35) == estimated_performance(p, 0.35)
    assert counted.shares().tolist() == score_shares(p).tolist()


def test_scores_are_counted_as_the_results_file_rounds_them():
    p = np.array([0.1234565, 0.2, 0.99999951, 1e-7])  # 6 decimals as np.round, half to even
    assert ScoreCounts.of(p).sample(np.random.default_rng()).tolist() == np.round(p, 6).tolist()
    with pytest.raises(ValueError, match="outside"):
        ScoreCounts.of([0.5, 1.2])


def test_a_small_uploads_distinct_scores_are_sorted_out_the_same_as_counted(monkeypatch):
    """Up to SORTED_DISTINCT_ROWS the distinct scores come from sorting the rows (no 8 MB count
    per millionth): the same values, counts and dtypes as counting them."""
    from models import monitoring

    p = np.random.default_rng(3).beta(1.2, 3, 2_000)
    p[:4] = [0.0, 1.0, 0.25, 0.25]
    sorted_out = ScoreCounts.of(p).distinct()
    monkeypatch.setattr(monitoring, "SORTED_DISTINCT_ROWS", 0)
    counted = ScoreCounts.of(p).distinct()
    for mine, theirs in zip(sorted_out, counted, strict=True):
        assert mine.dtype == theirs.dtype
        assert mine.tolist() == theirs.tolist()


@pytest.mark.parametrize("rows", [1_000, MAX_DRAW_ROWS + 1])
def test_label_draws_made_in_blocks_give_the_bands_of_one_draw_at_a_time(monkeypatch, rows):
    """The bands' label sets are drawn a block at a time: the same numbers, so the same bands,
    as drawing one label set per call (a block of one)."""
    from models import monitoring

    p = np.random.default_rng(9).beta(1.2, 3, rows)
    in_blocks = estimated_performance(p, 0.4)
    monkeypatch.setattr(monitoring, "DRAW_BLOCK_CELLS", 1)
    assert estimated_performance(p, 0.4) == in_blocks
