"""score-upload on a moto server, a real Prefect API and SQLite: outcomes a customer sees."""

import csv
import io
import re

import pytest
from prefect import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.concurrency.sync import concurrency

from flows.score_upload import account_slot, score_upload
from retainwise.adapters import aws, db
from retainwise.adapters.mlflow_registry import load_champion
from retainwise.adapters.resources import forget_process_resources
from tests.helpers import customers_csv, results_of, submit, wait_for

pytestmark = pytest.mark.usefixtures("prefect_api")


def test_good_csv_completes_with_every_row_once(resources):
    prediction_id = submit(resources, customers_csv(300))
    score_upload(prediction_id)

    row = db.get_prediction(resources.engine, prediction_id)
    assert row.status == "COMPLETED", row.error
    assert (row.rows_total, row.rows_scored, row.rows_rejected) == (300, 300, 0)
    assert row.model_version and row.result_key.endswith(f"{prediction_id}/results.csv")
    results = results_of(resources, prediction_id)
    assert list(results.columns) == [
        "customer_id",
        "churn_probability",
        "churn_risk",
        "predicted_churn",
    ]
    assert results["customer_id"].is_unique and len(results) == 300
    assert results["churn_probability"].between(0, 1).all()
    cutoffs = load_champion("churn", resources.settings).profile.cutoffs
    expected = results["churn_probability"].map(
        lambda p: "HIGH" if p >= cutoffs.high else "MEDIUM" if p >= cutoffs.medium else "LOW"
    )
    assert (results["churn_risk"] == expected).all()


@pytest.fixture
def solo_account():
    """An account whose cap is one run at a time (its own name: the session's API outlives it)."""
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name="account:solo", limit=1)
        )
        yield "solo"
        client.delete_global_concurrency_limit_by_name("account:solo")


def test_a_run_holds_one_slot_of_its_accounts_cap_and_gives_it_back(resources, solo_account):
    with concurrency(f"account:{solo_account}"), pytest.raises(TimeoutError):
        with account_slot(solo_account, "", timeout_seconds=0.5):
            pass  # another run of the account holds the only slot
    prediction_id = submit(resources, customers_csv(30), account=solo_account)
    score_upload(prediction_id)

    assert db.get_prediction(resources.engine, prediction_id).status == "COMPLETED"
    with get_client(sync_client=True) as client:
        assert client.read_global_concurrency_limit_by_name("account:solo").active_slots == 0


def test_the_account_slot_costs_two_api_calls_and_renews_a_long_runs_lease(
    solo_account, monkeypatch
):
    """Taken and given back on the caller's client (no call on Prefect's loop thread, no renewal
    at once); a run that outlasts `renew_seconds` keeps its lease alive."""
    from prefect.client.orchestration import SyncPrefectClient

    calls, request = [], SyncPrefectClient.request
    monkeypatch.setattr(
        SyncPrefectClient,
        "request",
        lambda self, method, path, **kw: calls.append(path) or request(self, method, path, **kw),
    )
    with account_slot(solo_account, ""):
        with get_client(sync_client=True) as client:
            held = client.read_global_concurrency_limit_by_name("account:solo").active_slots
    short = [path for path in calls if path.endswith(("-with-lease", "/renew"))]
    calls.clear()
    with account_slot(solo_account, "", renew_seconds=0.05):
        wait_for(lambda: any(path.endswith("/renew") for path in calls), 10, "a renewal")
    with get_client(sync_client=True) as client:
        left = client.read_global_concurrency_limit_by_name("account:solo").active_slots
    assert held == 1 and left == 0
    assert short == [
        "/v2/concurrency_limits/increment-with-lease",
        "/v2/concurrency_limits/decrement-with-lease",
    ]


def test_results_file_keeps_the_contract_as_plain_csv(resources):
    """What an integration built on the old service reads: the seed's columns in order, 1/0."""
    prediction_id = submit(resources, customers_csv(120))
    score_upload(prediction_id)

    key = db.get_prediction(resources.engine, prediction_id).result_key
    text = aws.get_bytes(resources.s3, resources.settings.bucket, key).decode("utf-8")
    header, *rows = list(csv.reader(io.StringIO(text)))
    assert header == ["customer_id", "churn_probability", "churn_risk", "predicted_churn"]
    assert len(rows) == 120 and {len(row) for row in rows} == {4}
    assert {row[3] for row in rows} <= {"1", "0"} and {row[2] for row in rows} <= {
        "HIGH",
        "MEDIUM",
        "LOW",
    }
    assert all(re.fullmatch(r"0|1|0\.\d+|1\.0+", row[1]) for row in rows), rows[:3]


def test_missing_required_column_fails_naming_it(resources):
    data = customers_csv(50).decode().splitlines()
    header = data[0].split(",")
    drop = header.index("Contract")
    trimmed = [",".join(c for i, c in enumerate(line.split(",")) if i != drop) for line in data]
    prediction_id = submit(resources, "\n".join(trimmed).encode())
    score_upload(prediction_id)

    row = db.get_prediction(resources.engine, prediction_id)
    assert row.status == "FAILED"
    assert row.error.startswith("missing required columns: Contract")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "the file is empty"),
        (b"   \n\n", "the file is empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00", "not a CSV text file"),
        (b"customer_id,gender\n", "no data rows"),
    ],
)
def test_unusable_file_fails_with_a_clear_message(resources, data, message):
    prediction_id = submit(resources, data)
    score_upload(prediction_id)
    row = db.get_prediction(resources.engine, prediction_id)
    assert row.status == "FAILED"
    assert message in row.error
    assert "Traceback" not in row.error


def test_a_second_run_for_the_same_upload_is_a_no_op(resources):
    prediction_id = submit(resources, customers_csv(40))
    first = score_upload(prediction_id)
    second = score_upload(prediction_id)
    assert first["status"] == "COMPLETED" and second["status"] == "SKIPPED"
    assert len(results_of(resources, prediction_id)) == 40


def test_no_champion_fails_at_once_with_the_promote_hint(resources):
    from retainwise.entrypoints import service

    prediction_id = service.submit_upload(
        resources, customers_csv(10), filename="c.csv", account="acme", model_name="no-such-model"
    )
    score_upload(prediction_id)
    row = db.get_prediction(resources.engine, prediction_id)
    assert row.status == "FAILED"
    assert (
        "no champion for 'no-such-model'; promote one with `retainwise model promote" in row.error
    )


def test_large_file_is_scored_in_chunks_with_the_same_outcome(resources, monkeypatch):
    """Chunking is forced on a small file (thresholds lowered); the customer sees no difference."""
    import io

    import pandas as pd

    from retainwise.adapters import aws

    text = customers_csv(900, seed=33).decode().splitlines()
    text[450] = text[3]  # a duplicate id, far from its first copy
    text[600] = text[600] + ",one,too,many"  # a malformed line
    data = ("\n".join(text) + "\n").encode()
    outcomes = {}
    for chunked in (False, True):
        if chunked:
            monkeypatch.setenv("RETAINWISE_CHUNKED_ABOVE_BYTES", "1000")
            monkeypatch.setenv("RETAINWISE_CHUNK_BYTES", "20000")
            forget_process_resources()  # the next run's process reads the lowered thresholds
        prediction_id = submit(resources, data)
        outcome = score_upload(prediction_id)
        row = db.get_prediction(resources.engine, prediction_id)
        assert row.status == "COMPLETED", row.error
        rejects = pd.read_csv(
            io.BytesIO(
                aws.get_bytes(
                    resources.s3,
                    resources.settings.bucket,
                    row.result_key.replace("results.csv", "rejects.csv"),
                )
            )
        )
        outcomes[chunked] = (row, results_of(resources, prediction_id), rejects, outcome)

    (row, results, rejects, report), (c_row, c_results, c_rejects, c_report) = outcomes.values()
    assert (
        (c_row.rows_total, c_row.rows_scored, c_row.rows_rejected)
        == (row.rows_total, row.rows_scored, row.rows_rejected)
        == (900, 898, 2)
    )
    assert c_rejects["row_number"].tolist() == rejects["row_number"].tolist() == [450, 600]
    assert c_rejects["reason"].tolist() == rejects["reason"].tolist()
    assert c_results["customer_id"].tolist() == results["customer_id"].tolist()
    assert (c_results["churn_probability"] - results["churn_probability"]).abs().max() < 1e-6
    for key in ("risk_counts", "reject_reasons", "unknown_categories", "drifted_features"):
        assert c_report[key] == report[key], key
    assert "score-upload-in-chunks" in task_names(c_row.flow_run_id)
    assert "score-upload-in-chunks" not in task_names(row.flow_run_id)


def task_names(flow_run_id: str) -> set[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return {run.name.rsplit("-", 1)[0] for run in runs}


def test_a_small_upload_runs_in_the_flow_and_scores_as_the_staged_path(resources, monkeypatch):
    """Below small_upload_bytes: no task run, a log line per stage with its rows and seconds;
    above: a task run per stage. Both give the same rows, probabilities and report."""
    data = customers_csv(200)
    outcomes = {}
    for small_above in (len(data), len(data) - 1):
        monkeypatch.setenv("RETAINWISE_SMALL_UPLOAD_BYTES", str(small_above))
        forget_process_resources()  # the next run's process reads the new threshold
        prediction_id = submit(resources, data)
        outcomes[small_above] = score_upload(prediction_id)
        assert outcomes[small_above]["status"] == "COMPLETED"
        row = db.get_prediction(resources.engine, prediction_id)
        outcomes[small_above] = (outcomes[small_above], results_of(resources, prediction_id))
        names = task_names(row.flow_run_id)
        if small_above == len(data):
            assert names == set()
            assert stages_logged(row.flow_run_id) == STAGES
        else:
            assert {"claim-upload", "check-upload", "score-whole-file", "finish-upload"} <= names
    (small, small_results), (staged, staged_results) = outcomes.values()
    assert small_results["customer_id"].tolist() == staged_results["customer_id"].tolist()
    difference = small_results["churn_probability"] - staged_results["churn_probability"]
    assert difference.abs().max() < 1e-6
    for key in ("rows_total", "rows_scored", "risk_counts", "drifted_features"):
        assert small[key] == staged[key], key


STAGES = ["claimed", "checked", "model", "reading", "validating", "scoring", "writing", "COMPLETED"]


def stages_logged(flow_run_id: str) -> list[str]:
    """The stages the run's INFO lines name, in order, once they reach the Prefect API; each
    stage's line gives its seconds (and the reading one its rows)."""
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    def read() -> list[str] | None:
        with get_client(sync_client=True) as client:
            logs = client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])),
                sort=LogSort.TIMESTAMP_ASC,
            )
        lines = [log.message for log in logs if re.search(r"in \d+\.\d\d s$", log.message)]
        stages = [line.split(":")[0].split(" in ")[0] for line in lines]
        return stages[: stages.index("COMPLETED") + 1] if "COMPLETED" in stages else None

    return wait_for(read, 30, "the run's stage lines")


def test_the_size_the_trigger_passed_decides_small_without_asking_s3_or_the_database():
    """A run the trigger created knows its object's size (a flow parameter): no HEAD and no
    read of the row before the claim. Without it the run asks, as before."""
    from types import SimpleNamespace

    from flows.score_upload import is_small
    from retainwise.config.settings import Settings

    settings = Settings(small_upload_bytes=1000, chunked_above_bytes=2000)
    unreachable = SimpleNamespace(settings=settings, engine=None, s3=None)  # any use fails
    assert is_small(unreachable, "p", stored_bytes=1000)  # type: ignore[arg-type]
    assert not is_small(unreachable, "p", stored_bytes=1001)  # type: ignore[arg-type]
    assert not is_small(unreachable, "p", stored_bytes=0)  # type: ignore[arg-type]
    assert not is_small(unreachable, "p")  # type: ignore[arg-type]  # asked, failed: staged
