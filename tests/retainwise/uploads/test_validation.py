"""Validation against a model profile: file-level refusals, row rejects with reasons, accounting."""

import numpy as np
import pandas as pd
import pytest

from models.profile import FeatureProfile, ModelProfile
from retainwise.config.errors import UploadRejected
from retainwise.uploads import validation
from retainwise.uploads.reading import read_upload
from retainwise.uploads.validation import (
    build_expectations,
    failing_rows,
    id_hashes,
    kept_configuration,
    numeric_bounds,
    unknown_categories,
    validate_upload,
)

PROFILE = ModelProfile(
    id_column="customer_id",
    target="Churn",
    features=[
        FeatureProfile("Tenure Months", "numeric", 0.0, 72.0),
        FeatureProfile("MonthlyCharges", "numeric", 18.0, 120.0),
        FeatureProfile("SeniorCitizen", "numeric", 0.0, 1.0),
        FeatureProfile(
            "Contract", "categorical", categories=["Month-to-month", "One year", "Two year"]
        ),
        FeatureProfile("Partner", "categorical", categories=["No", "Yes"]),
    ],
)
HEADER = "customer_id,Tenure Months,MonthlyCharges,SeniorCitizen,Contract,Partner"


def validate(body: str, header: str = HEADER, share: float = 1.0, profile=PROFILE):
    return validate_upload(read_upload(f"{header}\n{body}".encode()), profile, share)


def accounted(upload) -> bool:
    return upload.rows_total == len(upload.accepted) + upload.rows_rejected


def test_a_clean_file_is_cast_to_the_models_types():
    upload = validate("C1,5,29.85,0,Month-to-month,Yes\nC2,60,99.5,1,Two year,No\n")
    assert upload.rows_rejected == 0 and upload.failure is None and accounted(upload)
    assert upload.accepted["Tenure Months"].dtype == "float64"
    assert upload.accepted["MonthlyCharges"].tolist() == [29.85, 99.5]
    assert upload.customer_ids.tolist() == ["C1", "C2"]


@pytest.mark.parametrize(
    "delimiter, cell, value",
    [
        (",", '"1,889.50"', 1889.5),
        (",", "1889.5", 1889.5),
        (",", '"1 889.5"', 1889.5),
        (";", "29,85", 29.85),
        (";", "1.889,50", 1889.5),
        (";", "1 889,5", 1889.5),
        ("\t", "1'889.5", 1889.5),
        (",", " 42 ", 42.0),
    ],
)
def test_numbers_in_local_notations_parse(delimiter, cell, value):
    profile = ModelProfile(
        "customer_id",
        "Churn",
        [
            FeatureProfile("charges", "numeric", 0.0, 5000.0),
            FeatureProfile("plan", "categorical", categories=["a"]),
        ],
    )
    text = f"customer_id{delimiter}charges{delimiter}plan\nC1{delimiter}{cell}{delimiter}a\n"
    upload = validate_upload(read_upload(text.encode()), profile)
    assert upload.rows_rejected == 0, upload.rejects["reason"].tolist()
    assert upload.accepted["charges"].tolist() == [value]


@pytest.mark.parametrize(
    "cell, value",
    [
        ("Yes", 1.0),
        ("no", 0.0),
        ("TRUE", 1.0),
        ("f", 0.0),
        ("Y", 1.0),
        ("N", 0.0),
        ("1", 1.0),
        ("0", 0.0),
    ],
)
def test_booleans_in_any_spelling_feed_a_0_1_feature(cell, value):
    upload = validate(f"C1,5,29.85,{cell},One year,Yes\n")
    assert upload.accepted["SeniorCitizen"].tolist() == [value]


@pytest.mark.parametrize(
    "cell, category", [("yes", "Yes"), ("Y", "Yes"), ("TRUE", "Yes"), ("0", "No"), (" no ", "No")]
)
def test_booleans_and_case_map_to_the_training_spelling(cell, category):
    upload = validate(f"C1,5,29.85,0,one  YEAR,{cell}\n")
    assert upload.accepted["Partner"].tolist() == [category]
    assert upload.accepted["Contract"].tolist() == ["One year"]
    assert unknown_categories(upload.quality.columns) == {}


def test_blank_whitespace_and_na_markers_are_missing_not_errors():
    upload = validate("C1,  ,N/A,,Month-to-month, \nC2,null,-,0,,Yes\n")
    assert upload.rows_rejected == 0
    assert upload.accepted[["Tenure Months", "MonthlyCharges"]].isna().all().all()
    assert upload.quality.columns["Partner"]["missing"] == 1


def test_unknown_categories_are_scored_but_counted():
    upload = validate(
        "C1,5,29.85,0,Three year,Yes\nC2,5,29.85,0,Three year,Yes\nC3,5,29.85,0,Monthly,Yes\n"
    )
    assert upload.rows_rejected == 0 and len(upload.accepted) == 3
    assert unknown_categories(upload.quality.columns) == {"Contract": 3}
    assert upload.quality.columns["Contract"]["unknown_values"] == {
        "Three year": 2,
        "Monthly": 1,
    }


def test_bad_rows_are_rejected_with_row_number_reason_and_original_cells():
    upload = validate(
        "C1,5,29.85,0,One year,Yes\n"
        ",5,29.85,0,One year,Yes\n"  # 2: no id
        "C3,five,29.85,0,One year,Yes\n"  # 3: not a number
        "C4,5,1e6,0,One year,Yes\n"  # 4: out of range
        "C5,5,29.85,maybe,One year,Yes\n"  # 5: not a 0/1 flag
        "C1,6,30,0,One year,Yes\n"
    )  # 6: duplicate of row 1
    rejects = upload.rejects.set_index("row_number")
    assert rejects["reason"].to_dict() == {
        2: "customer id is missing",
        3: "Tenure Months: 'five' is not a number",
        4: "MonthlyCharges: 1e+06 is outside the plausible range -33 to 171",
        5: "SeniorCitizen: 'maybe' is not a number",
        6: "duplicate customer id; already scored from row 1",
    }
    assert rejects.loc[3, "Tenure Months"] == "five"  # the cell as uploaded
    assert list(upload.rejects.columns[:3]) == ["row_number", "reason", "customer_id"]
    assert upload.customer_ids.tolist() == ["C1"] and accounted(upload)
    assert upload.quality.reject_kinds == {
        "missing id": 1,
        "not a number: Tenure Months": 1,
        "out of range: MonthlyCharges": 1,
        "not a number: SeniorCitizen": 1,
        "duplicate id": 1,
    }


def test_range_has_a_margin_around_what_training_saw():
    low, high = numeric_bounds(PROFILE)["Tenure Months"]
    assert (low, high) == (-36.0, 108.0)
    upload = validate("C1,100,29.85,0,One year,Yes\nC2,109,29.85,0,One year,Yes\n")
    assert upload.rejects["row_number"].tolist() == [2]
    assert upload.quality.columns["Tenure Months"]["out_of_range"] == 1


def test_duplicate_of_a_rejected_row_is_scored_once():
    upload = validate(
        "C1,oops,29.85,0,One year,Yes\nC1,5,29.85,0,One year,Yes\nC1,6,29.85,0,One year,Yes\n"
    )
    assert upload.customer_ids.tolist() == ["C1"]
    assert upload.accepted.index.tolist() == [1]
    assert upload.rejects["reason"].tolist() == [
        "Tenure Months: 'oops' is not a number",
        "duplicate customer id; already scored from row 2",
    ]


def test_over_wide_lines_are_rejected_rows_and_counted():
    upload = validate(
        "C1,5,29.85,0,One year,Yes\nC2,5,29.85,0,One year,Yes,extra\n"
        "C3,x,29.85,0,One year,Yes\nC1,5,29.85,0,One year,Yes\n"
    )
    assert upload.rows_total == 4 and upload.rows_rejected == 3 and accounted(upload)
    assert upload.rejects[["row_number", "reason"]].values.tolist() == [
        [2, "7 fields where the header has 6"],
        [3, "Tenure Months: 'x' is not a number"],
        [4, "duplicate customer id; already scored from row 1"],
    ]
    assert upload.quality.reject_kinds["wrong number of fields"] == 1


def test_more_than_the_allowed_share_rejected_sets_a_failure_with_examples():
    body = "C1,5,29.85,0,One year,Yes\nC2,x,29.85,0,One year,Yes\nC3,y,29.85,0,One year,Yes\n"
    upload = validate(body, share=0.5)
    assert upload.failure == (
        "2 of 3 rows are invalid (more than 50%); for example "
        "row 2: Tenure Months: 'x' is not a number; "
        "row 3: Tenure Months: 'y' is not a number"
    )
    assert validate(body, share=0.7).failure is None


@pytest.mark.parametrize(
    "header, message",
    [
        (
            "customer_id,Tenure,MonthlyCharges,SeniorCitizen,Contract,Partner",
            "missing required columns: Tenure Months (did you mean 'Tenure'?)",
        ),
        (
            "customer_id,Tenure Months,MonthlyCharges,SeniorCitizen,Partner,x",
            "missing required columns: Contract",
        ),
        (
            "id,Tenure Months,MonthlyCharges,SeniorCitizen,Contract,Partner",
            "no customer id column: expected a column named 'customer_id'",
        ),
        (
            "Customer Number,Tenure Months,MonthlyCharges,SeniorCitizen,Contract,Partner",
            "no customer id column: expected a column named 'customer_id' (did you mean "
            "'Customer Number'?)",
        ),
        (
            "customer_id,Customer ID,Tenure Months,MonthlyCharges,SeniorCitizen,Contract",
            "columns 'customer_id' and 'Customer ID' both match 'customer_id'; keep one of them",
        ),
    ],
)
def test_file_level_problems_raise_with_a_specific_message(header, message):
    with pytest.raises(UploadRejected) as error:
        validate("C1,5,29.85,0,One year,Yes\n", header=header)
    assert str(error.value) == message


def test_the_profile_alias_map_is_used_for_headers():
    profile = ModelProfile(
        PROFILE.id_column,
        PROFILE.target,
        PROFILE.features,
        aliases={"Client No": "customer_id", "Plan": "Contract"},
    )
    upload = validate(
        "C1,5,29.85,0,One year,Yes\n",
        header="Client No,Tenure Months,MonthlyCharges,SeniorCitizen,Plan,Partner",
        profile=profile,
    )
    assert upload.customer_ids.tolist() == ["C1"]


def gx_class(expectation: object) -> str:
    """The Great Expectations class an expectation is, or keeps the configuration of."""
    return next(
        c.__name__ for c in type(expectation).__mro__ if "great_expectations" in c.__module__
    )


def test_the_suite_comes_from_the_profile():
    names = [(gx_class(e), getattr(e, "column", None)) for e, _ in build_expectations(PROFILE)]
    assert names == [
        ("ExpectColumnValuesToNotBeNull", "customer id present"),
        ("ExpectColumnValuesToBeBetween", "Tenure Months"),
        ("ExpectColumnValuesToBeBetween", "MonthlyCharges"),
        ("ExpectColumnValuesToBeBetween", "SeniorCitizen"),
    ]


def test_a_frame_of_pandas_str_columns_validates_too():
    frame = pd.DataFrame(
        {
            "customer_id": ["C1", "C2"],
            "Tenure Months": ["5", "500"],
            "MonthlyCharges": ["20", "30"],
            "SeniorCitizen": ["0", "1"],
            "Contract": ["One year", "Two year"],
            "Partner": ["No", "Yes"],
        },
        dtype="str",
    )
    upload = validate_upload(frame, PROFILE)
    assert upload.customer_ids.tolist() == ["C1"] and upload.rejects["row_number"].tolist() == [2]


def test_a_model_without_id_column_numbers_the_rows():
    profile = ModelProfile(None, "Churn", PROFILE.features)
    upload = validate("C1,5,29.85,0,One year,Yes\nC1,6,29.85,0,One year,Yes\n", profile=profile)
    assert upload.customer_ids.tolist() == ["1", "2"] and upload.rows_rejected == 0


def test_thousands_of_rows_accounting_holds_with_random_faults():
    rng = np.random.default_rng(5)
    n = 5000
    tenure = rng.integers(0, 72, n).astype(object)
    tenure[rng.random(n) < 0.05] = "bad"
    ids = np.array([f"C{i}" for i in rng.integers(0, 4500, n)], dtype=object)
    frame = pd.DataFrame(
        {
            "customer_id": ids,
            "Tenure Months": tenure.astype(str),
            "MonthlyCharges": "50",
            "SeniorCitizen": "0",
            "Contract": "One year",
            "Partner": "Yes",
        }
    )
    upload = validate_upload(frame, PROFILE)
    assert accounted(upload) and upload.customer_ids.is_unique
    assert set(upload.customer_ids) == set(ids[tenure != "bad"])


def test_category_counts_are_those_of_the_accepted_rows_only():
    upload = validate(
        "C1,5,29.85,0,one year,Yes\nC2,x,29.85,0,One year,No\n"
        "C3,5,29.85,0,,No\nC3,5,29.85,0,Two year,No\nC4,5,29.85,0,Ten year,No\n"
    )
    assert upload.rejects["row_number"].tolist() == [2, 4]
    assert upload.category_counts["Contract"] == {
        None: 1,
        "One year": 1,
        "Two year": 0,
        "Ten year": 1,
    }
    assert upload.category_counts["Partner"] == {None: 0, "Yes": 1, "No": 2}
    assert upload.accepted["Contract"].cat.codes.tolist() == [0, -1, 2]
    assert upload.quality.columns["Contract"] == {
        "kind": "categorical",
        "missing": 1,
        "unknown": 1,
        "unknown_values": {"Ten year": 1},
    }


def test_later_copies_of_an_id_name_the_first_fit_row_among_many():
    ids = ["C1", "C2", "C1", "C3", "C2", "C1"]
    upload = validate("".join(f"{i},5,29.85,0,One year,Yes\n" for i in ids))
    assert upload.customer_ids.tolist() == ["C1", "C2", "C3"]
    assert upload.rejects[["row_number", "reason"]].values.tolist() == [
        [3, "duplicate customer id; already scored from row 1"],
        [5, "duplicate customer id; already scored from row 2"],
        [6, "duplicate customer id; already scored from row 1"],
    ]


def test_gx_reports_rows_only_for_the_checks_that_failed():
    checked = pd.DataFrame(
        {
            "customer id present": [1.0, np.nan, 1.0, 1.0],
            "Tenure Months": [5.0, 6.0, 200.0, np.nan],
            "MonthlyCharges": [30.0, 30.0, 30.0, 30.0],
            "SeniorCitizen": [0.0, 1.0, 0.0, 1.0],
        }
    )
    failing = failing_rows(checked, PROFILE)
    assert {k: v.tolist() for k, v in failing.items()} == {
        "missing id": [1],
        "out of range: Tenure Months": [2],
    }
    assert failing_rows(checked.fillna(1.0).clip(upper=50.0), PROFILE) == {}


def test_id_hashes_depend_on_the_text_alone():
    texts = [
        "C1",
        "C1 ",
        "",
        "é",
        "a" * 8,
        "a" * 9,
        "abcdefgh12345678",
        "abcdefgh1234567",
        "x" * 300,
        "C1",
    ]
    ids = pd.Series(texts, dtype="str")
    hashes = id_hashes(ids)
    assert hashes[0] == hashes[-1]
    assert len(set(hashes[:-1].tolist())) == len(texts) - 1
    assert id_hashes(ids.iloc[4:7]).tolist() == hashes[4:7].tolist()  # an offset Arrow slice
    assert id_hashes(pd.Series(texts, dtype=object)).tolist() == hashes.tolist()
    assert id_hashes(pd.Series([], dtype="str")).tolist() == []


def test_a_missing_id_hashes_as_blank_even_where_arrow_kept_bytes_under_the_null():
    import pyarrow as pa

    text = pa.array(["C1", "C2", "C3"])
    masked = pa.Array.from_buffers(pa.string(), 3, [pa.py_buffer(b"\x05")] + text.buffers()[1:])
    assert masked.to_pylist() == ["C1", None, "C3"]
    hashes = id_hashes(pd.Series(pd.arrays.ArrowStringArray(masked)))
    assert hashes.tolist() == id_hashes(pd.Series(["C1", "", "C3"], dtype="str")).tolist()


def test_a_kept_configuration_is_gx_own_and_follows_changes():
    import great_expectations as gx

    between = kept_configuration(gx.expectations.ExpectColumnValuesToBeBetween)
    kept = between(column="x", min_value=0.0, max_value=1.0)
    plain = gx.expectations.ExpectColumnValuesToBeBetween(column="x", min_value=0.0, max_value=1.0)
    assert kept.configuration is kept.configuration  # built once, not on every read
    assert kept.configuration.kwargs == plain.configuration.kwargs
    kept.max_value = 2.0
    assert kept.configuration.kwargs["max_value"] == 2.0


def test_kept_expectations_find_the_rows_gx_own_classes_find(monkeypatch):
    checked = pd.DataFrame(
        {
            "customer id present": [1.0, np.nan, 1.0, 1.0, 1.0],
            "Tenure Months": [5.0, 6.0, 200.0, np.nan, -40.0],
            "MonthlyCharges": [30.0, 1e9, 30.0, 30.0, 30.0],
            "SeniorCitizen": [0.0, 1.0, 0.0, 1.0, 2.0],
        }
    )
    kept = failing_rows(checked, PROFILE)
    validation.kept_expectations.cache_clear()
    validation.kept_suite.cache_clear()
    monkeypatch.setattr(validation, "kept_configuration", lambda base: base)  # GX's classes
    try:
        plain = failing_rows(checked, PROFILE)
    finally:
        validation.kept_expectations.cache_clear()
        validation.kept_suite.cache_clear()
    assert {k: v.tolist() for k, v in kept.items()} == {k: v.tolist() for k, v in plain.items()}
    assert set(kept) == {
        "missing id",
        "out of range: Tenure Months",
        "out of range: MonthlyCharges",
        "out of range: SeniorCitizen",
    }


def test_validation_leaves_no_thread_behind():
    """The worker forks its children: a thread left running could hold a lock across a fork."""
    import threading

    before = {t.ident for t in threading.enumerate()}
    upload = validate("C1,5,29.85,0,One year,Yes\nC2,7,30,1,Two year,No\n")
    assert upload.accepted["Contract"].tolist() == ["One year", "Two year"]
    assert {t.ident for t in threading.enumerate()} == before
