"""`RETAINWISE_ENV=production` processes stop at start, naming what is missing: real processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port

RETAINWISE = str(Path(sys.executable).with_name("retainwise"))
SAFE = {
    "RETAINWISE_ENV": "production",
    "RETAINWISE_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1:1/retainwise",
    "RETAINWISE_MLFLOW_TRACKING_URI": "postgresql+psycopg://u@127.0.0.1:1/mlflow",
    "RETAINWISE_SESSION_SECRET": "s" * 32,
    "RETAINWISE_SESSION_HTTPS_ONLY": "true",
}


def started(tmp_path: Path, without: str, *command: str) -> subprocess.CompletedProcess:
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RETAINWISE_")},
        **SAFE,
        "RETAINWISE_HOME": str(tmp_path),
    }
    environment.pop(without)
    return subprocess.run(
        [RETAINWISE, *command], env=environment, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize("without", sorted(set(SAFE) - {"RETAINWISE_ENV"}))
def test_the_api_refuses_to_start_without_each_setting(tmp_path, without):
    done = started(tmp_path, without, "api", "--port", str(free_port()))
    assert done.returncode == 2
    assert without in done.stderr and "refuses to start" in done.stderr


@pytest.mark.parametrize("command", [["trigger"], ["runner"], ["migrate"]])
def test_other_processes_need_the_database_but_not_the_session_secret(tmp_path, command):
    done = started(tmp_path, "RETAINWISE_DATABASE_URL", *command)
    assert done.returncode == 2
    assert "RETAINWISE_DATABASE_URL" in done.stderr and "SESSION" not in done.stderr
