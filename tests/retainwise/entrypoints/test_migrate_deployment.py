"""`retainwise migrate --deployment` against a real Prefect API and a real runner process.

The runner serves test-only flows standing in for the migrate deployment, so the follower is
exercised on real state changes: a slow migration that passes, one that fails, one that is stuck.
"""

import os
import re
import signal
import subprocess
import sys
import time

import pytest
from prefect.settings import PREFECT_API_URL

from retainwise.entrypoints import cli
from tests.conftest import REPO


@pytest.fixture(scope="module")
def served(prefect_api, tmp_path_factory):
    log = tmp_path_factory.mktemp("runner") / "runner.log"
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(),
           "PREFECT_RUNNER_POLL_FREQUENCY": "1"}
    with open(log, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "tests.retainwise.entrypoints.migrate_flows"],
                                   cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    _wait_for_deployments(["migrate-slow/test", "migrate-broken/test", "migrate-stuck/test"])
    yield process
    os.killpg(process.pid, signal.SIGKILL)
    process.wait(10)


def _wait_for_deployments(names, timeout=60):
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        for name in names:
            while True:
                try:
                    client.read_deployment_by_name(name)
                    break
                except ObjectNotFound:
                    assert time.monotonic() < deadline, f"{name} was never served"
                    time.sleep(0.5)


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
    started = time.monotonic()
    assert cli.main(["migrate", "--deployment", "migrate-stuck/test", "--timeout", "4"]) == 2
    assert time.monotonic() - started < 20
    out = capsys.readouterr().out
    assert "timed out after 4 s" in out and "it was not cancelled" in out


def test_a_missing_deployment_is_named_not_a_traceback(prefect_api, capsys):
    assert cli.main(["migrate", "--deployment", "migrate/nowhere", "--timeout", "5"]) == 1
    assert "no deployment named migrate/nowhere" in capsys.readouterr().err
