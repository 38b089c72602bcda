"""The local stack's own plumbing: its dotenv file, stopping a process group, waiting for health,
N runner services."""

import os
import subprocess
import sys
import time

import psutil
import pytest

from retainwise.config.settings import Settings
from retainwise.local import stack
from tests.conftest import free_port


def test_stack_env_round_trips_and_real_variables_win(tmp_path, monkeypatch):
    settings = Settings(home=tmp_path)
    env = {**stack.stack_environment(settings), "RETAINWISE_ODD": "a b=c'\"#d"}
    stack.write_stack_env(settings, env)
    for key in env:  # set, then removed: monkeypatch then removes what load_stack_env sets
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)
    monkeypatch.setenv("PREFECT_LOGGING_LEVEL", "DEBUG")  # set by the user: kept
    stack.load_stack_env(settings)
    assert os.environ["RETAINWISE_ODD"] == "a b=c'\"#d"
    assert os.environ["AWS_ENDPOINT_URL"] == env["AWS_ENDPOINT_URL"]
    assert os.environ["PREFECT_LOGGING_LEVEL"] == "DEBUG"


def test_settings_on_the_stack_are_what_settings_read_from_its_environment(tmp_path, monkeypatch):
    """stack.up derives its settings instead of reading them again: if the stack's variables
    come to set another setting, on_stack must follow."""
    monkeypatch.setenv("RETAINWISE_HOME", str(tmp_path))
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    settings = Settings()
    env = stack.stack_environment(settings)
    assert settings.aws_endpoint_url is None  # the test shows a change
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert stack.on_stack(settings, env).model_dump() == Settings().model_dump()


def test_prefect_reads_the_per_run_savings_under_the_names_the_stack_sets(monkeypatch):
    """A misspelt setting would be ignored silently; Prefect's own Settings must see each one."""
    from prefect.settings import Settings as PrefectSettings

    for key, value in stack.PER_RUN_SAVINGS.items():
        monkeypatch.setenv(key, value)
    prefect = PrefectSettings()
    assert prefect.server.api.csrf_protection_enabled is False
    assert prefect.client.csrf_support_enabled is False
    assert prefect.logging.to_api.batch_interval == 5
    assert prefect.server.services.pause_expirations.enabled is False
    assert prefect.server.services.cleanup_reconciler.enabled is False


def test_a_missing_stack_env_changes_nothing(tmp_path, monkeypatch):
    # a stray .env where the CLI runs must not stand in for the missing stack.env
    (tmp_path / ".env").write_text("RETAINWISE_STRAY=from-dot-env\n")
    monkeypatch.chdir(tmp_path)
    before = dict(os.environ)
    stack.load_stack_env(Settings(home=tmp_path / "home"))  # no file: no error
    assert dict(os.environ) == before


def exits_within(process: psutil.Process, timeout: float) -> bool:
    """True once `process` has exited: gone, or a zombie not reaped yet. An orphan's zombie is
    PID 1's to reap, which some inits do seconds late (psutil.wait_procs waited ~1.8 s here)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if process.status() == psutil.STATUS_ZOMBIE:
                return True
        except psutil.NoSuchProcess:
            return True
        time.sleep(0.01)  # polling the condition, up to `timeout`
    return False


@pytest.mark.parametrize("grace", [0, 5])
def test_stop_group_stops_the_leader_and_its_children(grace):
    leader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import subprocess, sys, time; "
            "subprocess.Popen([sys.executable, '-c', 'import time; "
            "time.sleep(60)']); print('up', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    assert leader.stdout.readline() == b"up\n"
    [child] = psutil.Process(leader.pid).children(recursive=True)
    stack.stop_group(leader.pid, grace=grace)
    assert leader.wait(10) is not None
    assert exits_within(child, timeout=10)  # none left alive


def test_wait_healthy_names_a_server_that_exited(tmp_path):
    log = tmp_path / "server.log"
    log.write_text("address already in use\n")
    process = subprocess.Popen([sys.executable, "-c", "raise SystemExit(1)"])
    process.wait()
    with pytest.raises(RuntimeError, match="exited early(.|\n)*address already in use"):
        stack.wait_healthy(f"http://127.0.0.1:{free_port()}/", 30, process, log)


def test_wait_healthy_gives_up_after_its_timeout(tmp_path):
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        with pytest.raises(TimeoutError, match="not healthy after 1 s"):
            stack.wait_healthy(f"http://127.0.0.1:{free_port()}/", 1, process, tmp_path / "log")
    finally:
        process.kill()
        process.wait()


def test_runners_setting_gives_that_many_runner_services_sharing_the_cores():
    assert [s.name for s in stack.runner_services(Settings(runners=1))] == ["runner"]
    two = stack.runner_services(Settings(runners=2))
    assert [s.name for s in two] == ["runner-1", "runner-2"]
    assert all(s.argv[-2:] == ["--processes", two[0].argv[-1]] for s in two)


def test_down_stops_runners_started_with_another_runner_count(tmp_path):
    settings = Settings(home=tmp_path, runners=1)
    (tmp_path / "pids").mkdir()
    leftover = subprocess.Popen(["sleep", "600"], start_new_session=True)
    (tmp_path / "pids" / "runner-2.pid").write_text(str(leftover.pid))
    assert stack.down(settings) == ["runner-2"]
    assert leftover.wait(10) is not None
    assert not (tmp_path / "pids" / "runner-2.pid").exists()
