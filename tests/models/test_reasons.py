"""Reasons in words, largest contribution first, with the customer's value and the sign."""

import numpy as np
import pandas as pd

from models.explain import Explanation
from models.reasons import REASON_COLUMNS, format_value, reason_columns, signed_shares


def explained(contributions) -> Explanation:
    matrix = np.asarray(contributions, dtype=float)
    return Explanation(
        ["tenure", "Contract", "TotalCharges", "gender"], np.zeros(len(matrix)), matrix
    )


def test_reasons_read_feature_value_and_signed_contribution_largest_first():
    X = pd.DataFrame(
        {
            "tenure": [1.0, 60.0],
            "Contract": ["Month-to-month", "Two year"],
            "TotalCharges": [np.nan, 4000.5],
            "gender": ["F", "M"],
        },
        index=[7, 8],
    )
    words = reason_columns(explained([[0.85, 0.42, 0.1, -0.01], [-0.9, -1.2, 0.05, -0.02]]), X)
    assert list(words.columns) == REASON_COLUMNS and list(words.index) == [7, 8]
    assert words.loc[7].tolist() == [
        "tenure is 1 (+0.85)",
        "Contract is Month-to-month (+0.42)",
        "TotalCharges is missing (+0.10)",
    ]
    # only one feature raises the risk: the next two say with their sign that they lower it
    assert words.loc[8].tolist() == [
        "TotalCharges is 4000.5 (+0.05)",
        "gender is M (-0.02)",
        "tenure is 60 (-0.90)",
    ]


def test_a_model_with_fewer_features_than_reasons_leaves_the_rest_empty():
    X = pd.DataFrame({"tenure": [3.0]})
    found = Explanation(["tenure"], np.zeros(1), np.array([[0.3]]))
    assert reason_columns(found, X).iloc[0].tolist() == ["tenure is 3 (+0.30)", "", ""]


def test_values_are_written_as_a_person_reads_them():
    assert [format_value(v) for v in (None, np.nan, 2.0, 0.125, "Yes")] == [
        "missing",
        "missing",
        "2",
        "0.125",
        "Yes",
    ]


def test_signed_shares_read_as_the_format_writes_each_one():
    """Formatted once per hundredth, they must still match `{:+.2f}` at ties, signed zeros, tiny,
    huge and non-finite shares."""
    rng = np.random.default_rng(19)
    edges = [0.125, 0.005, -0.005, 0.015, 2.675, -2.675, -0.001, -0.0, 0.0, 1e-20, -1e-20]
    shares = np.concatenate(
        [
            rng.normal(0, 1, 20_000),
            np.round(rng.normal(0, 1, 5_000), 3),  # many exact thousandths: ties
            rng.normal(0, 1e6, 100),
            np.array([*edges, np.nan, np.inf, -np.inf, 99.995, 1e6 + 0.005]),
        ]
    )
    expected = [f" ({share:+.2f})" for share in shares.tolist()]
    assert signed_shares(shares).tolist() == expected


def test_reasons_in_words_are_each_rows_own_formatting():
    """Worded once per distinct value and hundredth and joined in Arrow, every cell must read as
    the row's own `{feature} is {value} ({share:+.2f})`: categories (with missing and a
    Categorical), numbers with NaN, repeated values, tied and near-tie shares."""
    rng = np.random.default_rng(5)
    rows = 3_000
    X = pd.DataFrame(
        {
            "tenure": rng.integers(0, 5, rows).astype(float),
            "MonthlyCharges": np.where(rng.random(rows) < 0.1, np.nan, rng.normal(60, 20, rows)),
            "Contract": pd.Categorical(
                rng.choice(["Month-to-month", "One year", None], rows),
                categories=["Month-to-month", "One year"],
            ),
            "PaymentMethod": rng.choice(np.array(["Card", "Check", np.nan], dtype=object), rows),
        },
        index=np.arange(rows) * 3,
    )
    X.iloc[:5, 1] = [np.inf, -np.inf, 1e16, 1.5e-7, 0.0]  # numbers worded at once too
    matrix = np.round(rng.normal(0, 0.3, (rows, 4)), 3)  # exact thousandths: ties, near-ties
    matrix[::7, 1] = matrix[::7, 0]  # equal contributions: the earlier feature first
    matrix[::11] = 0.0
    found = Explanation(list(X.columns), np.zeros(rows), matrix)
    words = reason_columns(found, X)
    cells = X.astype(object).to_numpy()
    for row in range(rows):
        picks = np.argsort(-matrix[row], kind="stable")[:3]
        expected = [
            f"{X.columns[j]} is {format_value(cells[row, j])} ({matrix[row, j]:+.2f})"
            for j in picks
        ]
        assert words.iloc[row].tolist() == expected


def test_the_largest_contributions_are_picked_as_a_stable_argsort_picks_them():
    """By argmaxes when every cell is finite (ties, +0.0 beside -0.0), by the argsort otherwise
    (NaN, infinities)."""
    from models.reasons import _largest

    rng = np.random.default_rng(3)
    matrix = rng.choice(np.array([0.0, -0.0, 0.25, -0.25, 0.5, 1e-300]), size=(500, 6))
    for width in range(1, 7):
        expected = np.argsort(-matrix, axis=1, kind="stable")[:, :width].T
        assert _largest(matrix, width).tolist() == expected.tolist()
    unusual = matrix.copy()
    unusual[::3, 2] = np.nan
    unusual[1::5, 4] = np.inf
    unusual[2::7, 0] = -np.inf
    expected = np.argsort(-unusual, axis=1, kind="stable")[:, :3].T
    assert _largest(unusual, 3).tolist() == expected.tolist()
    assert _largest(np.asfortranarray(matrix), 3).tolist() == _largest(matrix, 3).tolist()
