"""`make demo` from a fresh clone: a new venv, the local stack, train, promote, upload, results."""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO, free_port


@pytest.mark.timeout(1200)  # a venv built from scratch, then the demo (its make has 600 s)
@pytest.mark.skipif(
    shutil.which("git") is None or not (REPO / ".git").exists(),
    reason="needs git and a git checkout to clone from",
)
def test_make_demo_from_a_fresh_clone(tmp_path):
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(
            ("RETAINWISE_", "PREFECT_", "AWS_", "VIRTUAL_ENV", "PYTEST", "MAKE", "MFLAGS")
        )
    }  # as a user types it, not nested in make
    env["PATH"] = os.pathsep.join(
        p for p in env["PATH"].split(os.pathsep) if not p.startswith(str(REPO / ".venv"))
    )
    env.update(
        RETAINWISE_STACK_AWS_PORT=str(free_port()),
        RETAINWISE_STACK_PREFECT_PORT=str(free_port()),
        RETAINWISE_STACK_API_PORT=str(free_port()),
    )
    started = time.monotonic()
    demo = subprocess.run(
        ["make", "--no-print-directory", "demo"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    elapsed = time.monotonic() - started
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    results = Path(demo.stdout.strip().splitlines()[-1])
    assert re.search(r"web app: http://127\.0\.0\.1:\d+/app", demo.stdout)
    assert re.search(r"sign in as demo with the API key rw_[0-9a-f]{12}_\S{43}\n", demo.stdout)
    assert results.is_file() and results.is_relative_to(clone)
    frame = pd.read_csv(results)
    assert list(frame.columns) == [
        "customer_id",
        "churn_probability",
        "churn_risk",
        "predicted_churn",
    ]
    assert len(frame) == 1000 and frame["customer_id"].is_unique
    assert not list((clone / ".retainwise" / "pids").glob("*.pid")), "stack down left pids behind"
    print(f"make demo from a fresh clone: {elapsed:.1f} s")
