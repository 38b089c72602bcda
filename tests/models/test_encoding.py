"""CategoryEncoder must encode exactly as the scikit-learn encoders it replaced, only faster."""

import numpy as np
import pandas as pd
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder

from models.encoding import MISSING, CategoryEncoder

TRAIN = pd.DataFrame(
    {
        "contract": ["Month-to-month", "Two year", "One year", np.nan, "Two year", "One year"],
        "internet": ["DSL", "Fiber optic", "No", "DSL", "DSL", "No"],
    },
    dtype=object,
)
NEW = pd.DataFrame(
    {
        "contract": ["One year", "Ten year", np.nan, "Month-to-month"],  # "Ten year" is unknown
        "internet": ["No", "Fiber optic", "Satellite", np.nan],  # NaN unseen in training
    },
    dtype=object,
)


def sklearn_ordinal():
    return make_pipeline(
        SimpleImputer(strategy="constant", fill_value=MISSING),
        OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=-1, encoded_missing_value=-1
        ),
    ).fit(TRAIN)


def test_ordinal_codes_match_sklearn_with_unknown_as_missing():
    ours = CategoryEncoder("ordinal").fit(TRAIN).transform(NEW)
    theirs = sklearn_ordinal().transform(NEW)
    expected = np.where(theirs >= 0, theirs, np.nan)
    np.testing.assert_array_equal(ours, expected)
    assert np.isnan(ours[1, 0]) and np.isnan(ours[2, 1]) and np.isnan(ours[3, 1])
    assert ours[2, 0] == list(CategoryEncoder().fit(TRAIN).categories_[0]).index(MISSING)


def test_one_hot_matches_sklearn_and_unknown_rows_are_all_zero():
    ours = CategoryEncoder("onehot").fit(TRAIN).transform(NEW).toarray()
    theirs = (
        make_pipeline(
            SimpleImputer(strategy="constant", fill_value=MISSING),
            OneHotEncoder(handle_unknown="ignore"),
        )
        .fit(TRAIN)
        .transform(NEW)
    )
    np.testing.assert_array_equal(ours, theirs.toarray())
    assert ours[1, :4].sum() == 0  # "Ten year": no contract column set


def test_rare_values_share_one_code_beyond_max_categories():
    column = pd.DataFrame({"plan": ["a"] * 5 + ["b"] * 4 + ["c"] * 2 + ["d"]}, dtype=object)
    encoder = CategoryEncoder("ordinal", max_categories=3).fit(column)
    assert list(encoder.categories_[0]) == ["a", "b"]
    codes = encoder.transform(pd.DataFrame({"plan": ["a", "c", "d", "zzz"]}, dtype=object))
    np.testing.assert_array_equal(codes[:, 0], [0, 2, 2, np.nan])


def test_feature_names_name_each_indicator():
    names = CategoryEncoder("onehot").fit(TRAIN).get_feature_names_out()
    assert "contract_(missing)" in names and "internet_Fiber optic" in names
