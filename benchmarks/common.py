"""What the benchmarks share: a private home, a champion trained on Telco, percentiles, RSS."""

from __future__ import annotations

import os
import resource
import socket
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
OUT = HERE / "out"
MODEL = "churn"

if str(REPO) not in sys.path:  # `python benchmarks/x.py` from a fresh clone, venv or not
    sys.path.insert(0, str(REPO))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fresh_home(name: str) -> Path:
    home = OUT / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    home.mkdir(parents=True)
    return home


def side_by_side(name: str) -> Path:
    """A fresh RETAINWISE_HOME and free stack ports in this process's environment, so the stack
    this benchmark starts runs beside any other; returns the home."""
    home = fresh_home(name)
    os.environ.update(
        {
            "RETAINWISE_HOME": str(home),
            "RETAINWISE_STACK_AWS_PORT": str(free_port()),
            "RETAINWISE_STACK_PREFECT_PORT": str(free_port()),
            "RETAINWISE_STACK_API_PORT": str(free_port()),
        }
    )
    return home


def train_champion(settings) -> str:
    """Fit on the real Telco table, register and promote it; returns the version."""
    import pandas as pd

    from benchmarks.data import ID, TARGET, load_telco
    from models.training import train
    from retainwise.adapters import mlflow_registry as registry

    frame: pd.DataFrame = load_telco()
    trained = train(frame, TARGET, ID)
    version = registry.register(trained, MODEL, settings)
    registry.promote(MODEL, version, settings)
    return version


def peak_rss_mb() -> float:
    """This process's peak resident set size (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far, all threads."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def tree_cpu_seconds(pids: list[int]) -> float:
    """User + system CPU seconds so far of these processes and their children (psutil)."""
    import psutil

    total = 0.0
    for pid in pids:
        try:
            parent = psutil.Process(pid)
            for process in [parent, *parent.children(recursive=True)]:
                times = process.cpu_times()
                total += times.user + times.system
        except psutil.NoSuchProcess:
            continue
    return total


def percentile(values: list[float], share: float) -> float:
    """Linear between the closest ranks (numpy's default), e.g. share 0.95 for p95."""
    if len(values) < 2 or share in (0, 1):
        return (min(values) if share < 1 else max(values)) if values else float("nan")
    return statistics.quantiles(values, n=100, method="inclusive")[round(share * 100) - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def log(text: str) -> None:
    """Progress goes to stderr so each script's last stdout line stays its JSON result."""
    print(text, file=sys.stderr, flush=True)
