"""`retainwise outcomes upload`: joined to a scored upload in S3; unmatched counted; replaced;
scoped."""

import json

import pytest

from retainwise.adapters.outcomes import labelled_rows
from retainwise.entrypoints import cli
from tests.helpers import customers_csv, results_of, submit


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.usefixtures("prefect_api")
def test_outcomes_upload_joins_counts_and_replaces(resources, tmp_path, capsys):
    from flows.score_upload import score_upload

    prediction_id = submit(resources, customers_csv(30), account="acme")
    score_upload(prediction_id)
    ids = results_of(resources, prediction_id)["customer_id"].tolist()
    first = tmp_path / "outcomes.csv"
    first.write_text(
        "customer_id,churned,observed_at\n"
        + "".join(
            f"{i},{'yes' if n % 3 == 0 else 'no'},2026-11-0{1 + n % 9}\n"
            for n, i in enumerate(ids[:20])
        )
        + "ghost-1,1,\nghost-2,0,\n"
    )
    args = ["outcomes", "upload", str(first), "--prediction", prediction_id, "--account", "acme"]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert (summary["matched"], summary["unmatched"], summary["stored"]) == (20, 2, 20)
    assert summary["examples"]["unmatched"] == ["ghost-1", "ghost-2"]
    assert "2 id(s) match no scored customer" in captured.err

    second = tmp_path / "again.csv"
    second.write_text("customer_id,churned\n" + "".join(f"{i},1\n" for i in ids[:5]))
    assert (
        cli.main(
            ["outcomes", "upload", str(second), "--prediction", prediction_id, "--account", "acme"]
        )
        == 0
    )
    assert last_json(capsys)["stored"] == 5
    stored = labelled_rows(resources.engine, prediction_id=prediction_id)
    assert sorted(stored["customer_id"]) == sorted(ids[:5]) and stored["churned"].sum() == 5

    assert (
        cli.main(
            [
                "outcomes",
                "upload",
                str(second),
                "--prediction",
                prediction_id,
                "--account",
                "globex",
            ]
        )
        == 2
    )
    assert f"no upload with id {prediction_id}" in capsys.readouterr().err
