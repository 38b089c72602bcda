"""Uploads as customers send them: generated variants of the Telco file, mutations, random bytes.

The variant table runs the pure path (read -> validate -> score) the flow's tasks wrap, so
probabilities can be compared to 1e-9; a handful of cases also run through the real flow on moto,
a real Prefect API and a Telco champion in a real MLflow store.
"""

from __future__ import annotations

import csv
import gzip
import io
import json

import numpy as np
import pandas as pd
import pytest
from botocore.exceptions import ClientError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from models.training import train
from retainwise.adapters import aws, db
from retainwise.adapters import mlflow_registry as registry
from retainwise.config.errors import UploadRejected
from retainwise.config.settings import Settings
from retainwise.local.sample import synthetic_customers
from retainwise.uploads.output import result_keys
from retainwise.uploads.pipeline import score_file
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.tables import Limits
from retainwise.uploads.validation import unknown_categories
from tests.conftest import telco_path

NUMERIC = ["SeniorCitizen", "tenure", "MonthlyCharges", "TotalCharges"]
NOTE = "Zoë Müller, café\nsecond line"  # an unused column: quoting, newlines, non-ASCII


@pytest.fixture(scope="module")
def telco():
    """The Telco table as text plus a model trained on it (pure scikit-learn, no MLflow)."""
    frame = pd.read_csv(telco_path(), dtype=str, keep_default_na=False)
    trained = train(frame, "Churn", "customerID")
    frame.insert(1, "Notes", [NOTE if i % 7 == 0 else "" for i in range(len(frame))])
    return frame, trained  # Notes is not a feature: uploads may carry columns the model ignores


@pytest.fixture(scope="module")
def clean(telco):
    frame, trained = telco
    status, upload, results = score_bytes(frame.to_csv(index=False).encode(), trained)
    assert status == "COMPLETED" and upload.rows_rejected == 0
    return results


def score_bytes(data: bytes, trained, share: float = 0.5):
    """The flow's path without S3 and Prefect: ('FAILED', message, None) or the scored upload."""
    try:
        scored = score_file(
            data, trained, ScoringPolicy(Limits(max_bytes=10_000_000), max_rejected_share=share)
        )
    except UploadRejected as exc:
        return "FAILED", str(exc), None
    if scored.upload.failure:
        return "FAILED", scored.upload, None
    return "COMPLETED", scored.upload, scored.results


def to_csv(frame: pd.DataFrame, sep: str = ",", encoding: str = "utf-8", **kwargs) -> bytes:
    return frame.to_csv(index=False, sep=sep, **kwargs).encode(encoding)


def decimal_comma(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(**{c: frame[c].str.replace(".", ",", regex=False) for c in NUMERIC})


def thousands(frame: pd.DataFrame) -> pd.DataFrame:
    total = pd.to_numeric(frame["TotalCharges"], errors="coerce")
    return frame.assign(TotalCharges=total.map(lambda v: "" if pd.isna(v) else f"{v:,.2f}"))


def euro_thousands(frame: pd.DataFrame) -> pd.DataFrame:
    total = pd.to_numeric(frame["TotalCharges"], errors="coerce")
    text = total.map(lambda v: "" if pd.isna(v) else f"{v:,.2f}")
    spaced = text.str.replace(",", " ").str.replace(".", ",")
    return decimal_comma(frame).assign(TotalCharges=spaced)


def booleans(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(
        SeniorCitizen=frame["SeniorCitizen"].map({"0": "No", "1": "Yes"}),
        Partner=frame["Partner"].map({"Yes": "Y", "No": "N"}),
        Dependents=frame["Dependents"].map({"Yes": "True", "No": "False"}),
        PhoneService=frame["PhoneService"].map({"Yes": "1", "No": "0"}),
        PaperlessBilling=" " + frame["PaperlessBilling"].str.lower() + " ",
    )


def header_style(style):
    def rename(frame: pd.DataFrame) -> pd.DataFrame:
        import re

        words = {c: re.sub(r"(?<=[a-z])(?=[A-Z])", " ", c).replace("ID", " ID") for c in frame}
        styles = {
            "spaced": lambda w: w.title(),
            "snake": lambda w: "_".join(w.lower().split()),
            "kebab": lambda w: "-".join(w.upper().split()),
        }
        return frame.rename(columns={c: styles[style](w) for c, w in words.items()})

    return rename


def xlsx(frame: pd.DataFrame) -> bytes:
    typed = frame.copy()
    for column in NUMERIC:
        typed[column] = pd.to_numeric(typed[column], errors="coerce")
    buffer = io.BytesIO()
    typed.to_excel(buffer, index=False)
    return buffer.getvalue()


VARIANTS = {
    "utf-8 BOM": lambda f: to_csv(f, encoding="utf-8-sig"),
    "utf-16": lambda f: to_csv(f, encoding="utf-16"),
    "utf-16-le without BOM": lambda f: to_csv(f, encoding="utf-16-le"),
    "cp1252 with euro sign": lambda f: to_csv(
        f.assign(Notes=f["Notes"] + " 5 €"), encoding="cp1252"
    ),
    "latin-1": lambda f: to_csv(f, encoding="latin-1"),
    "semicolon, decimal comma": lambda f: to_csv(decimal_comma(f), ";"),
    "semicolon, decimal point": lambda f: to_csv(f, ";"),
    "tab": lambda f: to_csv(f, "\t"),
    "pipe": lambda f: to_csv(f, "|"),
    "CRLF, everything quoted": lambda f: to_csv(f, lineterminator="\r\n", quoting=csv.QUOTE_ALL),
    "thousands separators": lambda f: to_csv(thousands(f)),
    "semicolon, 1 234,56": lambda f: to_csv(euro_thousands(f), ";"),
    "booleans in other spellings": lambda f: to_csv(booleans(f)),
    "Spaced Title Headers": lambda f: to_csv(header_style("spaced")(f)),
    "snake_case headers": lambda f: to_csv(header_style("snake")(f)),
    "KEBAB-CASE headers": lambda f: to_csv(header_style("kebab")(f)),
    "columns reordered": lambda f: to_csv(f[list(reversed(f.columns))]),
    "gzip": lambda f: gzip.compress(to_csv(f)),
    "gzip of utf-16 semicolon decimal comma": lambda f: gzip.compress(
        to_csv(decimal_comma(f), ";", "utf-16")
    ),
    "xlsx": xlsx,
}


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_variant_scores_exactly_like_the_clean_file(variant, telco, clean):
    frame, trained = telco
    status, upload, results = score_bytes(VARIANTS[variant](frame), trained)
    assert status == "COMPLETED", upload
    assert upload.rows_rejected == 0, upload.rejects["reason"].head().tolist()
    assert unknown_categories(upload.quality.columns) == {}
    assert results["customer_id"].tolist() == clean["customer_id"].tolist()
    np.testing.assert_allclose(
        results["churn_probability"], clean["churn_probability"], rtol=0, atol=1e-9
    )


def garbage(frame: pd.DataFrame, rows: list[int], column: str = "tenure") -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[rows, column] = "n/k yet"
    return frame


FAILING = {
    "dropped column": (
        lambda f: to_csv(f.drop(columns="Contract")),
        "missing required columns: Contract",
    ),
    "renamed column": (
        lambda f: to_csv(f.rename(columns={"tenure": "Tenure Months"})),
        "missing required columns: tenure (did you mean 'Tenure Months'?)",
    ),
    "no id column": (
        lambda f: to_csv(f.drop(columns="customerID")),
        "no customer id column: expected a column named 'customerID'",
    ),
    "binary file": (
        lambda f: b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 8,
        "the file is not a CSV text file (it contains binary data)",
    ),
    "truncated quote": (
        lambda f: to_csv(f.head(50))[:-40] + b'"unfinished, note\n',
        'a closing quote (") is missing',
    ),
    "most rows garbage": (
        lambda f: to_csv(garbage(f, list(range(0, len(f), 3)) + list(range(1, len(f), 3)))),
        "rows are invalid (more than 50%); for example row 1: tenure: 'n/k yet' is not a number",
    ),
    "header only": (lambda f: to_csv(f.head(0)), "the file has a header but no data rows"),
}


@pytest.mark.parametrize("mutation", list(FAILING))
def test_mutation_fails_with_its_documented_message(mutation, telco):
    frame, trained = telco
    build, message = FAILING[mutation]
    status, detail, _ = score_bytes(build(frame), trained)
    assert status == "FAILED"
    text = detail if isinstance(detail, str) else detail.failure
    assert message in text and "Traceback" not in text


def test_garbage_cells_reject_only_their_rows(telco, clean):
    frame, trained = telco
    bad = [3, 40, 41, 500, 7000]
    status, upload, results = score_bytes(to_csv(garbage(frame, bad, "MonthlyCharges")), trained)
    assert status == "COMPLETED"
    assert upload.rejects["row_number"].tolist() == [r + 1 for r in bad]
    assert set(upload.rejects["reason"]) == {"MonthlyCharges: 'n/k yet' is not a number"}
    kept = clean.drop(index=bad).reset_index(drop=True)
    np.testing.assert_allclose(results["churn_probability"], kept["churn_probability"], atol=1e-9)


def test_duplicate_ids_are_scored_once_and_later_copies_rejected(telco, clean):
    frame, trained = telco
    doubled = pd.concat([frame, frame.iloc[[0, 9, 9]]], ignore_index=True)
    status, upload, results = score_bytes(to_csv(doubled), trained)
    assert status == "COMPLETED" and upload.rows_total == len(frame) + 3
    assert upload.rejects["reason"].tolist() == [
        "duplicate customer id; already scored from row 1",
        "duplicate customer id; already scored from row 10",
        "duplicate customer id; already scored from row 10",
    ]
    np.testing.assert_allclose(results["churn_probability"], clean["churn_probability"], atol=1e-9)


def test_out_of_range_and_over_wide_rows_are_rejected_and_counted(telco):
    frame, trained = telco
    data = (
        to_csv(
            garbage(frame, [5], "tenure").assign(
                tenure=lambda f: f["tenure"].where(f.index != 5, "5000")
            )
        )
        .decode()
        .splitlines()
    )
    data[20] += ",surplus"  # physical line 21 is data row 17: rows 1, 8, 15 hold a newline
    status, upload, results = score_bytes("\n".join(data).encode(), trained)
    assert status == "COMPLETED"
    assert upload.rejects[["row_number", "reason"]].values.tolist() == [
        [6, "tenure: 5000 is outside the plausible range -36 to 108"],
        [17, "23 fields where the header has 22"],
    ]
    assert upload.rows_total == len(results) + upload.rows_rejected == len(frame)


# -- random bytes never crash: pure path (many examples) and the real flow (a handful) -----------


@pytest.fixture(scope="module")
def small_model():
    return train(synthetic_customers(600, seed=9).astype(str), "Churn", "customer_id")


HEADER = list(synthetic_customers(1, labeled=False).columns)
CELLS = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "Yes",
            "No",
            "0",
            "1",
            "29,85",
            '"1,889.50"',
            "abc",
            "=1+2",
            '"',
            '""',
            '"a\nb"',
            "Month-to-month",
            "nan",
            "-1e9",
            "Zoë",
            "C1",
            "\t",
        ]
    ),
    st.text(max_size=6),
)


@st.composite
def csvish_bytes(draw) -> bytes:
    """Mostly table-shaped text with the model's headers, broken in random ways; sometimes noise."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    header = draw(
        st.one_of(
            st.just(HEADER),
            st.permutations(HEADER),
            st.lists(st.sampled_from(HEADER + ["x", "Customer ID"]), max_size=14),
        )
    )
    delimiter = draw(st.sampled_from([",", ";", "\t", "|"]))
    width = len(header)
    rows = draw(
        st.lists(st.lists(CELLS, min_size=max(width - 1, 0), max_size=width + 1), max_size=25)
    )
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    text = newline.join(delimiter.join(row) for row in [header] + rows)
    data = text.encode(
        draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"])), errors="replace"
    )
    wrap = draw(st.sampled_from(["plain", "gzip", "cut"]))
    return (
        gzip.compress(data)
        if wrap == "gzip"
        else data[: len(data) * 2 // 3]
        if wrap == "cut"
        else data
    )


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=csvish_bytes())
def test_random_csvish_bytes_never_crash_the_pure_path(data, small_model):
    status, detail, results = score_bytes(data, small_model)
    if status == "FAILED":
        message = detail if isinstance(detail, str) else detail.failure
        assert message and "Traceback" not in message
        if not isinstance(detail, str):
            assert detail.rows_total == len(detail.accepted) + detail.rows_rejected
    else:
        assert detail.rows_total == len(results) + detail.rows_rejected
        assert results["customer_id"].is_unique
        assert results["churn_probability"].between(0, 1).all()


# -- through the real flow ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def telco_champion(telco, mlflow_store):
    """The Telco model as champion of its own name in the session's MLflow store."""
    settings = Settings(home=mlflow_store["home"], mlflow_tracking_uri=mlflow_store["uri"])
    version = registry.register(telco[1], "telco", settings)
    registry.promote("telco", version, settings)
    return "telco"


def run_flow(resources, data: bytes, model_name: str):
    from flows.score_upload import score_upload
    from retainwise.entrypoints import service

    prediction_id = service.submit_upload(
        resources, data, filename="upload", account="acme", model_name=model_name
    )
    score_upload(prediction_id)
    return prediction_id, db.get_prediction(resources.engine, prediction_id)


def s3_object(resources, key: str) -> bytes:
    return aws.get_bytes(resources.s3, resources.settings.bucket, key)


@pytest.mark.usefixtures("prefect_api")
def test_flow_scores_a_european_gzip_upload_and_writes_the_report(
    resources, telco, telco_champion, clean, tmp_path
):
    frame, _ = telco
    doubled = pd.concat([frame, frame.iloc[[4]]], ignore_index=True)
    doubled.loc[7, "customerID"] = '=HYPERLINK("http://evil")'
    doubled.loc[8, "tenure"] = "soon"
    data = gzip.compress(to_csv(decimal_comma(doubled), ";", "cp1252"))
    prediction_id, row = run_flow(resources, data, telco_champion)

    assert row.status == "COMPLETED", row.error
    assert (row.rows_total, row.rows_scored, row.rows_rejected) == (7044, 7042, 2)
    keys = result_keys(row.account, prediction_id)
    results = pd.read_csv(
        io.BytesIO(s3_object(resources, keys.results)), dtype={"customer_id": str}
    )
    expected = clean.drop(index=8).reset_index(drop=True)
    np.testing.assert_allclose(
        results["churn_probability"], expected["churn_probability"], atol=1e-6
    )  # results.csv holds 6 decimals
    assert results["customer_id"][7] == '\'=HYPERLINK("http://evil")'
    rejects = pd.read_csv(io.BytesIO(s3_object(resources, keys.rejects)), dtype=str)
    assert rejects[["row_number", "reason"]].values.tolist() == [
        ["9", "tenure: 'soon' is not a number"],
        ["7044", "duplicate customer id; already scored from row 5"],
    ]
    assert rejects["tenure"][0] == "soon"  # the cell as uploaded
    report = json.loads(s3_object(resources, keys.report))
    assert row.report_key == keys.report
    assert report["source"] == {
        "delimiter": "semicolon",
        "format": "csv+gzip",
        "encoding": "cp1252",
    }
    assert report["rows_total"] == report["rows_scored"] + report["rows_rejected"] == 7044
    assert report["reject_reasons"] == {"not a number: tenure": 1, "duplicate id": 1}

    from retainwise.entrypoints.cli import main

    out = tmp_path / "report.html"
    assert main(["report", prediction_id, "-o", str(out)]) == 0
    assert "Data-quality report" in out.read_text() and "COMPLETED" in out.read_text()


@pytest.mark.usefixtures("prefect_api")
def test_flow_fails_a_mostly_invalid_upload_but_leaves_report_and_rejects(
    resources, telco, telco_champion
):
    frame, _ = telco
    data = FAILING["most rows garbage"][0](frame.head(300))
    prediction_id, row = run_flow(resources, data, telco_champion)
    assert row.status == "FAILED"
    assert row.error.startswith("200 of 300 rows are invalid (more than 50%)")
    keys = result_keys(row.account, prediction_id)
    report = json.loads(s3_object(resources, keys.report))
    assert (report["status"], report["rows_rejected"], report["rows_scored"]) == ("FAILED", 200, 0)
    assert len(pd.read_csv(io.BytesIO(s3_object(resources, keys.rejects)))) == 200
    with pytest.raises(ClientError, match="NoSuchKey|Not Found|404"):
        s3_object(resources, keys.results)


@pytest.mark.usefixtures("prefect_api")
@pytest.mark.parametrize("variant", ["xlsx", "utf-16"])
def test_flow_completes_other_formats(resources, telco, telco_champion, variant):
    frame, _ = telco
    _, row = run_flow(resources, VARIANTS[variant](frame.head(400)), telco_champion)
    assert row.status == "COMPLETED", row.error
    assert (row.rows_total, row.rows_scored, row.rows_rejected) == (400, 400, 0)


@pytest.mark.usefixtures("prefect_api")
@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(data=csvish_bytes())
def test_random_csvish_bytes_end_completed_or_failed_through_the_flow(data, resources):
    _, row = run_flow(resources, data, "churn")
    assert row.status in {"COMPLETED", "FAILED"}
    if row.status == "FAILED":
        assert row.error and "Traceback" not in row.error
        assert not row.error.startswith("internal error"), row.error
    else:
        assert row.rows_total == row.rows_scored + row.rows_rejected


@pytest.mark.usefixtures("prefect_api")
def test_a_file_level_failure_has_no_report_and_the_cli_says_why(resources, capsys):
    from retainwise.entrypoints.cli import main

    prediction_id, row = run_flow(resources, b"%PDF-1.4 not a table", "churn")
    assert row.status == "FAILED"
    assert row.error == "the file is not a CSV text file (it looks like a PDF document)"
    capsys.readouterr()
    assert main(["report", prediction_id]) == 1
    assert "has no report (FAILED: the file is not a CSV text file" in capsys.readouterr().err
