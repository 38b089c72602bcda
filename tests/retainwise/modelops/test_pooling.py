"""The retraining table: an upload's accepted rows joined to its outcomes, pooled across uploads."""

import pandas as pd
import pytest

from models.profile import FeatureProfile, ModelProfile
from retainwise.modelops.pooling import labelled_upload_rows, pooled_table

PROFILE = ModelProfile(
    id_column="id",
    target="Churn",
    features=[
        FeatureProfile("plan", "categorical", categories=["a", "b"]),
        FeatureProfile("tenure", "numeric", minimum=0, maximum=100),
    ],
)


def test_rows_with_outcomes_are_kept_with_their_label_and_pooled_per_upload():
    data = b"id,plan,tenure\nc1,a,3\nc2,b,40\n=c3,a,7\nc4,b,1\n"
    labels = pd.DataFrame({"customer_id": ["c1", "'=c3", "c4"], "churned": [1, 0, 1]})
    rows = labelled_upload_rows(data, PROFILE, labels)
    assert rows["customer_id"].tolist() == ["c1", "'=c3", "c4"]
    assert rows["churned"].tolist() == [1, 0, 1] and rows["plan"].tolist() == ["a", "a", "b"]
    pooled = pooled_table({"aaaaaaaa-1": rows, "bbbbbbbb-2": rows})
    assert len(pooled) == 6 and pooled["customer_id"].iloc[3] == "bbbbbbbb:c1"


def test_nothing_to_pool_says_what_to_do():
    with pytest.raises(ValueError, match="outcomes upload"):
        pooled_table({})
