"""Outcomes files joined to an upload's scores: every row matched or counted with a reason."""

import pandas as pd
import pytest

from models.monitoring import Realised
from retainwise.config.errors import UploadRejected
from retainwise.modelops.monitoring import (
    MIN_LABELLED_ROWS,
    Alert,
    Event,
    ModelFigures,
    RealisedGroup,
)
from retainwise.modelops.outcomes import (
    DEGRADED,
    FOR_REVIEW,
    gate_retraining,
    join_outcomes,
    outcome_ids,
)

RESULTS = pd.DataFrame(
    {
        "customer_id": ["a", "b", "c", "'=d", "dup", "dup"],
        "churn_probability": ["0.9", "0.2", "0.6", "0.1", "0.5", "0.4"],
        "churn_risk": ["HIGH", "LOW", "MEDIUM", "LOW", "MEDIUM", "MEDIUM"],
    }
)


def test_rows_are_matched_or_counted():
    outcomes = pd.DataFrame(
        {
            "Customer_ID": ["a", "b", "zz", "a", "c", "", "b2", "=d"],
            "churned": ["Yes", "0", "1", "1", "maybe", "1", "no", "TRUE"],
        }
    )
    joined = join_outcomes(outcomes, RESULTS)
    summary = joined.summary()
    assert (
        summary["rows_total"],
        summary["matched"],
        summary["unmatched"],
        summary["invalid"],
        summary["duplicate"],
    ) == (8, 3, 2, 2, 1)
    assert (
        summary["matched"] + summary["unmatched"] + summary["invalid"] + summary["duplicate"] == 8
    )
    assert summary["examples"]["unmatched"] == ["zz", "b2"]
    assert summary["examples"]["churned is not 1/0, yes/no or true/false"] == ["6"]
    rows = joined.rows.set_index("customer_id")
    assert rows.loc["a", "churned"] == 1 and rows.loc["b", "churned"] == 0
    assert rows.loc["'=d", "churn_probability"] == 0.1  # neutralised like the results file
    assert rows["churn_probability"].dtype == float


def test_an_id_scored_twice_is_not_guessed():
    joined = join_outcomes(pd.DataFrame({"customer_id": ["dup"], "churned": ["1"]}), RESULTS)
    assert (len(joined.rows), joined.unmatched) == (0, 1)


def test_observed_at_is_parsed_and_checked():
    outcomes = pd.DataFrame(
        {
            "customer_id": ["a", "b"],
            "churned": ["1", "0"],
            "observed_at": ["2026-10-01", "last spring"],
        }
    )
    joined = join_outcomes(outcomes, RESULTS)
    assert joined.invalid == 1 and joined.rows["observed_at"].iloc[0] == pd.Timestamp(
        "2026-10-01", tz="UTC"
    )


def test_missing_columns_are_named():
    with pytest.raises(UploadRejected, match="missing churned"):
        join_outcomes(pd.DataFrame({"customer_id": ["a"]}), RESULTS)


def test_the_ids_to_read_are_the_usable_rows_as_results_store_them():
    outcomes = pd.DataFrame({"customer_id": ["a", "=d", "", "a", "e"], "churned": list("11101")})
    assert outcome_ids(outcomes) == {"a", "'=d", "e"}


def figures_with(accounts_below_floor: list[str], rows: int = MIN_LABELLED_ROWS) -> ModelFigures:
    def group(account: str, roc_auc: float) -> RealisedGroup:
        realised = Realised(rows, rows // 3, roc_auc, 0.5, 0.2, 0.5, 0.02, {})
        return RealisedGroup("1", realised, account=account)

    return ModelFigures(
        uploads=[],
        versions=[],
        accounts=[group("initech", 0.85), *(group(a, 0.4) for a in accounts_below_floor)],
        drift={},
        drift_alert_psi=0.25,
        alerts=[
            Alert(DEGRADED, "1", reasons=["realised ROC AUC 0.5"]),
            Alert(Event.DRIFTED, "1", prediction_id="p1"),
        ],
    )


@pytest.mark.parametrize(
    "accounts, event",
    [([], FOR_REVIEW), (["acme"], FOR_REVIEW), (["acme", "globex"], DEGRADED)],
)
def test_one_accounts_outcomes_alone_never_start_a_retraining(accounts, event):
    gated = gate_retraining(figures_with(accounts))
    assert [a.to_json()["event"] for a in gated] == [event, "retainwise.data.drifted"]
    if event == FOR_REVIEW:
        assert gated[0].accounts == accounts


def test_accounts_with_too_few_labels_do_not_count():
    gated = gate_retraining(figures_with(["acme", "globex"], rows=MIN_LABELLED_ROWS - 1))
    assert gated[0].event == FOR_REVIEW
