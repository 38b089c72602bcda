"""The promotion gate's rule: accept unless clearly worse on ROC AUC or Brier."""

from models.gate import judge

CHAMPION = {"roc_auc": 0.850, "brier": 0.130}


def test_first_promotion_passes():
    assert judge({"roc_auc": 0.6, "brier": 0.3}, None).passed


def test_small_differences_pass():
    assert judge({"roc_auc": 0.846, "brier": 0.134}, CHAMPION).passed


def test_lower_auc_is_refused_with_the_numbers():
    decision = judge({"roc_auc": 0.840, "brier": 0.130}, CHAMPION)
    assert not decision.passed
    assert "0.8400" in decision.problems[0] and "0.8500" in decision.problems[0]


def test_worse_brier_is_refused():
    decision = judge({"roc_auc": 0.860, "brier": 0.1360}, CHAMPION)
    assert not decision.passed and "Brier" in decision.problems[0]
