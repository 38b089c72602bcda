"""The `retainwise` commands a data scientist runs without the queue: score, status, download."""

import json

import pandas as pd
import pytest

from retainwise.entrypoints import cli
from tests.helpers import customers_csv, submit


def last_json_line(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_score_writes_results_and_prints_a_json_summary(stack_env, tmp_path, capsys):
    source, out = tmp_path / "customers.csv", tmp_path / "scored.csv"
    source.write_bytes(customers_csv(120))
    assert cli.main(["score", str(source), "-o", str(out)]) == 0
    summary = last_json_line(capsys)
    assert summary["status"] == "COMPLETED" and summary["error"] is None
    assert (summary["rows_total"], summary["rows_scored"], summary["rows_rejected"]) == (
        120,
        120,
        0,
    )
    assert len(pd.read_csv(out)) == 120


def test_score_writes_what_the_flow_writes_neutralised(stack_env, tmp_path, capsys):
    """The same pipeline as the flow: ids that would run as formulas come back quoted."""
    source, out = tmp_path / "customers.csv", tmp_path / "scored.csv"
    lines = customers_csv(30).decode().splitlines()
    lines[1] = "=HYPERLINK(1)" + lines[1][lines[1].index(",") :]
    lines[2] = lines[2] + ",surplus"  # a row wider than the header goes to the rejects
    source.write_text("\n".join(lines) + "\n")
    assert cli.main(["score", str(source), "-o", str(out)]) == 0
    results = pd.read_csv(out, dtype=str)
    assert results["customer_id"].iloc[0] == "'=HYPERLINK(1)"
    assert set(results["predicted_churn"]) <= {"0", "1"}
    rejects = pd.read_csv(tmp_path / "scored.rejects.csv", dtype=str)
    assert (
        rejects["row_number"].tolist() == ["2"]
        and "fields where the header has" in rejects["reason"].iloc[0]
    )


def test_score_reports_a_bad_file_in_the_summary(stack_env, tmp_path, capsys):
    source = tmp_path / "empty.csv"
    source.write_bytes(b"")
    assert cli.main(["score", str(source), "-o", str(tmp_path / "out.csv")]) == 1
    summary = last_json_line(capsys)
    assert summary["status"] == "FAILED" and summary["error"] == "the file is empty"


@pytest.mark.usefixtures("prefect_api")
def test_status_and_download_of_a_scored_upload(resources, tmp_path, capsys):
    from flows.score_upload import score_upload

    prediction_id = submit(resources, customers_csv(15))
    score_upload(prediction_id)
    capsys.readouterr()
    assert cli.main(["status", prediction_id]) == 0
    assert last_json_line(capsys)["status"] == "COMPLETED"
    out = tmp_path / "results.csv"
    assert cli.main(["download", prediction_id, "-o", str(out)]) == 0
    assert len(pd.read_csv(out)) == 15


def test_download_of_an_unknown_upload_says_so(stack_env, capsys):
    assert cli.main(["download", "nope"]) == 1
    assert "no upload with id nope" in capsys.readouterr().err


def test_score_carries_the_named_columns_or_names_the_missing_ones(stack_env, tmp_path, capsys):
    source, out = tmp_path / "customers.csv", tmp_path / "scored.csv"
    source.write_bytes(customers_csv(40))
    assert cli.main(["score", str(source), "-o", str(out), "--carry", "Contract,gender"]) == 0
    results = pd.read_csv(out, dtype=str)
    assert list(results.columns)[4:] == ["gender", "Contract"]  # after ours, in the file's order
    assert results["Contract"].iloc[0] == pd.read_csv(source, dtype=str)["Contract"].iloc[0]
    assert cli.main(["score", str(source), "-o", str(out), "--carry", "phone"]) == 1
    assert "not in the file: 'phone'" in last_json_line(capsys)["error"]
    many = ",".join(f"c{i}" for i in range(21))
    assert cli.main(["score", str(source), "-o", str(out), "--carry", many]) == 1
    assert "the limit is 20 columns" in last_json_line(capsys)["error"]


def test_upload_records_the_uploads_own_carried_columns(resources, tmp_path, capsys):
    from retainwise.adapters import db

    source = tmp_path / "customers.csv"
    source.write_bytes(customers_csv(10))
    assert cli.main(["upload", str(source), "--carry", "gender, Contract"]) == 0
    prediction_id = capsys.readouterr().out.strip()
    assert db.get_prediction(resources.engine, prediction_id).carry_columns == (
        "gender",
        "Contract",
    )
    assert cli.main(["upload", str(source), "--carry", "x" * 101]) == 2
    assert "more than 100 characters" in capsys.readouterr().err
