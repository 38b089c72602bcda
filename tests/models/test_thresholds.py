"""Threshold and risk-tier rules on hand-made validation probabilities."""

import numpy as np
import pytest

from models.thresholds import choose_cutoffs, choose_threshold, choose_threshold_and_cutoffs


def test_threshold_maximises_f1():
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.9])
    # flagging >= 0.35 catches all 4 churners with 1 false alarm: F1 = 8/9, the best
    assert choose_threshold(y, p) == pytest.approx(0.35)


def test_ties_in_f1_keep_the_higher_threshold():
    y, p = np.array([1, 0, 0, 1]), np.array([0.8, 0.6, 0.5, 0.3])
    assert choose_threshold(y, p) == pytest.approx(0.8)  # >=0.8 and >=0.3 both give F1 2/3


def test_high_starts_where_most_customers_churned():
    rng = np.random.default_rng(0)
    p = rng.uniform(0, 1, 20000)
    y = (rng.random(20000) < p).astype(int)  # perfectly calibrated
    threshold, cutoffs = choose_threshold_and_cutoffs(y, p)
    assert cutoffs.medium == threshold
    assert cutoffs.high == pytest.approx(0.5, abs=0.03)
    assert cutoffs.high >= threshold


def test_high_falls_back_to_the_top_decile_when_nobody_is_likely_to_churn():
    rng = np.random.default_rng(1)
    p = rng.uniform(0, 0.2, 5000)
    y = (rng.random(5000) < p).astype(int)
    cutoffs = choose_cutoffs(y, p, threshold=0.05)
    assert cutoffs.high == pytest.approx(np.quantile(p, 0.9))


def test_high_is_never_below_the_threshold():
    y = np.array([0, 1, 1, 1, 1])
    p = np.array([0.1, 0.6, 0.7, 0.8, 0.9])
    cutoffs = choose_cutoffs(y, p, threshold=0.75)
    assert cutoffs.high >= 0.75
