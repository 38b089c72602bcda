"""`retainwise migrate --deployment` against a real Prefect API and a real runner process.

The runner serves test-only flows standing in for the migrate deployment, so the follower is
exercised on real state changes: a slow migration that passes, one that fails, one that is stuck.
"""

import os
import re
import subprocess
import sys

import pytest
from prefect.settings import PREFECT_API_URL

from retainwise.entrypoints import cli
from retainwise.local.stack import stop_group, wait_for_deployment
from tests.conftest import REPO


@pytest.fixture(scope="module")
def served(prefect_api, tmp_path_factory):
    log = tmp_path_factory.mktemp("runner") / "runner.log"
    env = {
        **os.environ,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
    }
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.retainwise.entrypoints.migrate_flows"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    for name in ["migrate-slow/test", "migrate-broken/test", "migrate-stuck/test"]:
        wait_for_deployment(name, timeout=60)
    yield process
    stop_group(process.pid, grace=0)
    process.wait(10)


def test_a_slow_migration_is_followed_through_every_state_to_completed(served, capsys):
    assert cli.main(["migrate", "--deployment", "migrate-slow/test", "--timeout", "90"]) == 0
    out = capsys.readouterr().out
    states = re.findall(r"^\[\s*([\d.]+)s\] (\w+)", out, flags=re.MULTILINE)
    assert [s for _, s in states][-2:] == ["RUNNING", "COMPLETED"]
    assert states[0][1] in {"SCHEDULED", "PENDING"}  # a normal state, not an error
    elapsed = [float(e) for e, _ in states]
    assert elapsed == sorted(elapsed) and elapsed[-1] >= 2
    assert "migration completed" in out


def test_a_failed_migration_exits_non_zero_with_its_last_log_lines(served, capsys):
    assert cli.main(["migrate", "--deployment", "migrate-broken/test", "--timeout", "90"]) == 1
    captured = capsys.readouterr()
    assert "FAILED" in captured.out
    assert "migration FAILED" in captured.err
    assert 'relation "predictions" already exists' in captured.err
    assert "alembic upgrade head failed" in captured.err


def test_a_migration_that_outlives_the_timeout_exits_non_zero_saying_so(served, capsys):
    from prefect.client.orchestration import get_client

    assert cli.main(["migrate", "--deployment", "migrate-stuck/test", "--timeout", "4"]) == 2
    out = capsys.readouterr().out
    assert "timed out after 4 s" in out and "it was not cancelled" in out
    # it gave up on the run (which sleeps 60 s) rather than waiting for it, and left it alone
    flow_run_id = re.search(r"with flow run ([0-9a-f-]{36}) still", out).group(1)
    with get_client(sync_client=True) as client:
        assert not client.read_flow_run(flow_run_id).state.is_final()


def test_a_missing_deployment_is_named_not_a_traceback(prefect_api, capsys):
    assert cli.main(["migrate", "--deployment", "migrate/nowhere", "--timeout", "5"]) == 1
    assert "no deployment named migrate/nowhere" in capsys.readouterr().err
