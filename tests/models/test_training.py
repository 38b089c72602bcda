"""Training end to end on generated tables with other schemas (spaces, text labels, no id)."""

import numpy as np
import pandas as pd
import pytest

from models.training import LABEL_COLUMN, TrainingError, train
from retainwise.local.sample import synthetic_customers


def other_schema(rows: int = 1200) -> pd.DataFrame:
    """No id column, spaces in names, the label as text, and a field only churners have."""
    table = synthetic_customers(rows, seed=5).drop(columns=["customer_id"])
    table = table.rename(columns={"PaymentMethod": "Payment Method", "Churn": "Customer Status"})
    churned = table["Customer Status"] == "Yes"
    table["Customer Status"] = np.where(churned, "Churned", "Stayed")
    table["Churn Reason"] = np.where(churned, "Competitor offer", "")
    return table.astype(str).replace({"": np.nan})


@pytest.fixture(scope="module")
def trained():
    return train(other_schema(), "Customer Status", positive="Churned")


def test_the_same_call_works_on_another_schema(trained):
    assert {"Tenure Months", "Payment Method", "Contract"} <= set(trained.profile.feature_names)
    assert 0.7 < trained.metrics["roc_auc"] < 0.95
    assert trained.kind in ("logistic_regression", "gradient_boosting")


def test_without_an_id_the_row_number_is_used_and_said(trained):
    assert trained.profile.id_column is None
    assert any("row number" in note for note in trained.notes)


def test_a_field_only_churners_have_is_excluded_and_reported(trained):
    assert "Churn Reason" in trained.excluded
    assert "Churn Reason" not in trained.profile.feature_names
    assert any(note.startswith("Churn Reason: excluded") for note in trained.notes)


def test_threshold_tiers_and_calibration_figures_are_recorded(trained):
    p, m = trained.profile, trained.metrics
    assert 0 < p.threshold == p.cutoffs.medium <= p.cutoffs.high < 1
    assert m["brier"] < m["churn_rate"] * (1 - m["churn_rate"])  # beats the base rate
    assert m["lift_top_decile"] > 1.5
    assert set(trained.candidates) == {"logistic_regression", "gradient_boosting"}
    assert len(trained.curves["reliability"]["observed"]) == 10


def test_the_held_out_rows_are_kept_raw_with_their_labels(trained):
    evaluation = trained.evaluation
    assert len(evaluation) == 240 and set(evaluation[LABEL_COLUMN]) == {0, 1}
    assert "Customer Status" in evaluation.columns  # raw rows, as read


def test_allow_column_keeps_a_flagged_column():
    kept = train(
        other_schema(300), "Customer Status", positive="Churned", allow_columns=["Churn Reason"]
    )
    assert "Churn Reason" in kept.profile.feature_names
    assert any("kept by --allow-column" in note for note in kept.notes)


def test_unknown_columns_and_tiny_classes_are_errors_in_plain_words():
    table = other_schema(300)
    with pytest.raises(TrainingError, match="'Churn' is not in the table"):
        train(table, "Churn")
    tiny = table.assign(**{"Customer Status": ["Churned"] * 5 + ["Stayed"] * 295})
    with pytest.raises(TrainingError, match="at least 10 rows of each label"):
        train(tiny, "Customer Status", positive="Churned")
