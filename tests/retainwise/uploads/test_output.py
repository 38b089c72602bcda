"""Values echoed back to customers cannot run as spreadsheet formulas."""

import numpy as np
import pandas as pd
import pytest

from retainwise.uploads.output import neutralise_formulas, neutralise_text_columns, result_keys


@pytest.mark.parametrize(
    "value, safe",
    [
        ('=HYPERLINK("http://x")', '\'=HYPERLINK("http://x")'),
        ("+1+2", "'+1+2"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tcmd", "'\tcmd"),
        ("\r=1", "'\r=1"),
        ("C-100", "C-100"),
        ("7590-VHVEG", "7590-VHVEG"),
        (" =1", " =1"),
    ],
)
def test_formula_prefixes_get_a_quote(value, safe):
    assert neutralise_formulas(pd.Series([value])).tolist() == [safe]


def test_missing_and_non_text_values_are_left_alone():
    out = neutralise_formulas(pd.Series([np.nan, None, 5, "=1"], dtype=object))
    assert pd.isna(out[0]) and out[1] is None and out[2] == 5 and out[3] == "'=1"


def test_every_text_column_of_the_rejects_is_neutralised():
    rejects = pd.DataFrame(
        {
            "row_number": pd.array([1], dtype="Int64"),
            "reason": ["x"],
            "customer_id": ["=cmd|' /C calc'!A0"],
            "note": ["@evil"],
        }
    )
    safe = neutralise_text_columns(rejects)
    assert safe["customer_id"][0] == "'=cmd|' /C calc'!A0" and safe["note"][0] == "'@evil"
    assert safe["row_number"][0] == 1


def test_result_keys_live_under_the_account_and_derive_from_the_prediction_id():
    keys = result_keys("acme", "abc")
    assert (keys.results, keys.rejects, keys.report, keys.report_html) == (
        "results/acme/abc/results.csv",
        "results/acme/abc/rejects.csv",
        "results/acme/abc/report.json",
        "results/acme/abc/report.html",
    )


def test_reject_headers_are_neutralised_like_their_cells():
    from retainwise.uploads.output import neutralise_text_columns, to_csv_bytes

    rejects = pd.DataFrame({"row_number": [1], "reason": ["x"], '=HYPERLINK("a")': ["=1+1"]})
    text = to_csv_bytes(neutralise_text_columns(rejects)).decode()
    assert text.splitlines()[0].split(",")[2].startswith("\"'=HYPERLINK")
    assert "'=1+1" in text.splitlines()[1]
