"""Label columns as real tables spell them."""

import pandas as pd
import pytest

from models.training import TrainingError, encode_target


@pytest.mark.parametrize("values", [["Yes", "No"], ["True", "False"], ["1", "0"], [" yes", "NO "]])
def test_common_spellings_map_to_one_for_churn(values):
    assert encode_target(pd.Series(values * 3, name="Churn")).tolist() == [1, 0] * 3


def test_text_labels_need_positive():
    labels = pd.Series(["Churned", "Stayed", "Stayed"], name="Status")
    assert encode_target(labels, positive="Churned").tolist() == [1, 0, 0]
    with pytest.raises(TrainingError, match="--positive"):
        encode_target(pd.Series(["Left", "Stayed"], name="Status"))


def test_a_positive_value_that_does_not_occur_is_an_error():
    with pytest.raises(TrainingError, match="does not occur"):
        encode_target(pd.Series(["Left", "Stayed"], name="Status"), positive="Gone")


def test_empty_and_three_valued_targets_are_errors():
    with pytest.raises(TrainingError, match="1 empty"):
        encode_target(pd.Series(["Yes", None, "No"], name="Churn"))
    with pytest.raises(TrainingError, match="two values"):
        encode_target(pd.Series(["Yes", "No", "Maybe"], name="Churn"))
