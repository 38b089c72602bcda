"""`retainwise model ...` end to end: train (in-process or as a flow run), promote, refuse, roll
back, list."""

import json

import pytest

import migrations
from retainwise.entrypoints import cli
from retainwise.local.sample import synthetic_customers


@pytest.fixture
def model_env(monkeypatch, tmp_path, prefect_api):
    home = tmp_path / "home"
    monkeypatch.setenv("RETAINWISE_HOME", str(home))
    monkeypatch.setenv("RETAINWISE_MLFLOW_TRACKING_URI", f"sqlite:///{home / 'mlflow.db'}")
    monkeypatch.delenv("RETAINWISE_DATABASE_URL", raising=False)
    monkeypatch.setenv("USER", "dana")
    home.mkdir()
    migrations.upgrade(f"sqlite:///{home / 'retainwise.db'}")
    data = tmp_path / "customers.csv"
    table = synthetic_customers(800, seed=9).drop(columns=["customer_id"])
    table.rename(columns={"Churn": "Churn Flag"}).to_csv(data, index=False)
    return data


def last_json(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_train_promote_rollback_list(model_env, capsys):
    from tests.retainwise.adapters.test_registry import EVALUATED

    train = ["model", "train", "--data", str(model_env), "--target", "Churn Flag", "--name", "cli"]
    assert cli.main(train) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert list(summary) == [  # the printed line's keys, in order (the notes go to stderr)
        "model",
        "version",
        "kind",
        "roc_auc",
        "pr_auc",
        "brier",
        "threshold",
        "excluded_columns",
    ]
    assert summary["version"] == "1" and 0.6 < summary["roc_auc"] < 1
    assert "row number" in captured.err

    assert cli.main(["model", "promote", "cli"]) == 0
    promoted = last_json(capsys)
    assert promoted["champion"] == "1" and promoted["gate"] == "first champion"
    assert list(promoted) == [*EVALUATED, "gate", "status", "champion", "forced"]
    assert cli.main(["model", "rollback", "cli"]) == 1
    assert "no earlier champion" in last_json(capsys)["message"]
    assert cli.main(["model", "promote", "cli", "--force"]) == 2
    assert "--reason" in capsys.readouterr().err

    assert cli.main(["model", "list", "cli"]) == 0
    listed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert listed["aliases"] == ["challenger", "champion"] and listed["roc_auc"] is not None
    assert list(listed) == [
        "version",
        "aliases",
        "kind",
        "roc_auc",
        "pr_auc",
        "brier",
        "lift_top_decile",
        "threshold",
        "created",
    ]


def test_an_unusable_table_fails_with_a_sentence(model_env, capsys):
    args = ["model", "train", "--data", str(model_env), "--target", "Churned?", "--name", "cli"]
    assert cli.main(args) == 2
    assert "'Churned?' is not in the table" in capsys.readouterr().err


def flow_run_names() -> list[str]:
    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        return [run.name for run in client.read_flow_runs()]


def test_without_a_server_training_runs_in_process(model_env, monkeypatch, capsys):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    before = flow_run_names()
    args = ["model", "train", "--data", str(model_env), "--target", "Churn Flag", "--name", "quick"]
    assert cli.main(args) == 0
    captured = capsys.readouterr()
    assert "in-process (no Prefect server" in captured.err
    assert json.loads(captured.out.strip().splitlines()[-1])["version"] == "1"
    assert flow_run_names() == before  # logged to MLflow only


def test_with_a_server_training_is_a_flow_run(model_env, monkeypatch, capsys):
    from prefect.settings import PREFECT_API_URL

    monkeypatch.setenv("PREFECT_API_URL", PREFECT_API_URL.value())
    args = ["model", "train", "--data", str(model_env), "--target", "Churn Flag", "--name", "run"]
    assert cli.main(args) == 0
    assert "in-process" not in capsys.readouterr().err
    assert "train-run" in flow_run_names()
