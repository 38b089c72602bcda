"""What changed, in words: a risen customer's reasons put first the features whose value changed
and whose contribution rose since its earlier explanation, saying what they were."""

import numpy as np
import pandas as pd
import pytest

from models.changes import Earlier, changed_cells, changed_picks, promoted_cells
from models.explain import Explanation
from models.reasons import changed_reason_arrays, compared_frame, reason_arrays, reason_frame

FEATURES = ["Contract", "tenure", "InternetService", "TotalCharges"]


def now_rows() -> tuple[Explanation, pd.DataFrame]:
    X = pd.DataFrame(
        {
            "Contract": ["Month-to-month", "Month-to-month", "Two year", "One year"],
            "tenure": [3.0, 5.0, 7.0, 12.0],
            "InternetService": ["Fiber optic", "DSL", "DSL", "No"],
            "TotalCharges": [np.nan, 100.0, 20.5, np.nan],
        },
        index=[10, 11, 12, 13],
    )
    contributions = np.array(
        [
            [0.42, 0.50, 0.30, 0.10],  # a: Contract changed and rose; tenure rose, value same
            [0.10, 0.50, 0.60, 0.20],  # b: tenure changed, its contribution fell
            [0.20, 0.10, 0.30, 0.40],  # c: Contract changed, its contribution fell
            [0.05, 0.30, 0.20, 0.25],  # d: tenure and TotalCharges changed, both rose
        ]
    )
    return Explanation(FEATURES, np.zeros(4), contributions), X


def earlier_rows() -> Earlier:
    values = {
        "Contract": ["One year", "Month-to-month", "One year", "One year"],
        "tenure": [3, 2.0, 7.0, 11.0],  # 3 and 3.0 are one value
        "InternetService": ["Fiber optic", "DSL", "DSL", "No"],
        "TotalCharges": [None, 100.0, 20.5, 80.0],  # missing both times: the same
    }
    contributions = np.array(
        [
            [0.10, 0.10, 0.10, 0.10],
            [0.00, 0.60, 0.10, 0.20],
            [0.30, 0.00, 0.30, 0.40],
            [0.05, 0.15, 0.20, 0.05],
        ]
    )
    return Earlier(
        ["a", "b", "c", "d"],
        FEATURES,
        {name: np.asarray(column, dtype=object) for name, column in values.items()},
        contributions,
    )


def test_only_changed_values_whose_contribution_rose_are_promoted():
    explanation, X = now_rows()
    earlier = earlier_rows()
    changed = changed_cells(X, earlier, FEATURES)
    assert changed.tolist() == [
        [True, False, False, False],
        [False, True, False, False],
        [True, False, False, False],
        [False, True, False, True],
    ]
    assert promoted_cells(explanation, X, earlier).tolist() == [
        [True, False, False, False],  # tenure rose 0.40 but its value did not change
        [False, False, False, False],  # tenure changed but fell
        [False, False, False, False],  # Contract changed but fell
        [False, True, False, True],
    ]


def test_promoted_features_come_first_largest_rise_first_then_the_largest_contributions():
    explanation, X = now_rows()
    texts = [t.to_pylist() for t in changed_reason_arrays(explanation, X, earlier_rows())]
    by_row = list(zip(*texts, strict=True))
    assert by_row[0] == (
        "Contract is Month-to-month (+0.42, was One year)",
        "tenure is 3 (+0.50)",  # rose more than Contract, but the same value: no "was"
        "InternetService is Fiber optic (+0.30)",
    )
    # d: TotalCharges rose 0.20, tenure 0.15: the larger rise first, though tenure adds more
    assert by_row[3] == (
        "TotalCharges is missing (+0.25, was 80)",
        "tenure is 12 (+0.30, was 11)",
        "InternetService is No (+0.20)",
    )
    plain = list(zip(*[t.to_pylist() for t in reason_arrays(explanation, X)], strict=True))
    assert by_row[1] == plain[1] and by_row[2] == plain[2]  # nothing promoted: today's words
    assert not any(", was" in text for text in by_row[1] + by_row[2])


def test_picks_without_a_promoted_feature_are_the_largest_contributions_as_before():
    now = np.random.default_rng(3).normal(size=(50, 7))
    nothing = np.zeros_like(now, dtype=bool)
    expected = np.argsort(-now, axis=1, kind="stable")[:, :3].T
    assert (changed_picks(now, now, nothing, 3) == expected).all()
    promoted = nothing.copy()
    promoted[:, 6] = True
    picks = changed_picks(now, now, promoted, 3)
    assert (picks[0] == 6).all()  # the promoted feature first, then no feature twice
    assert all(len(set(column)) == 3 for column in picks.T)


def test_a_customer_without_an_earlier_explanation_gets_todays_texts_bit_for_bit():
    explanation, X = now_rows()
    ids = pd.Series(["a", "zz", "c", "yy"], index=X.index)
    asked = []

    def lookup(wanted: pd.Series) -> Earlier:
        asked.append(wanted.tolist())
        return earlier_rows()

    rose = np.array([True, True, False, True])
    frame = compared_frame(explanation, X, ids, rose, lookup)
    today = reason_frame(explanation, X)
    assert asked == [["a", "zz", "yy"]]  # one read, only for the rows that rose
    assert frame.loc[10, "reason_1"] == "Contract is Month-to-month (+0.42, was One year)"
    for row in (11, 12, 13):  # no earlier explanation ("zz", "yy"), or did not rise ("c")
        assert frame.loc[row].tolist() == today.loc[row].tolist()
    assert list(frame.index) == list(X.index) and list(frame.columns) == list(today.columns)


def test_earlier_rows_align_to_ids_and_features_a_missing_one_is_not_explained():
    earlier = earlier_rows().aligned(["d", "nobody", "a"], ["tenure", "gender", "Contract"])
    assert earlier.found.tolist() == [True, False, True]
    assert earlier.values["tenure"].tolist() == [11.0, None, 3]
    assert np.isnan(earlier.contributions[:, 1]).all()  # gender was not in the explanation
    assert earlier.contributions[0].tolist()[::2] == pytest.approx([0.15, 0.05])
