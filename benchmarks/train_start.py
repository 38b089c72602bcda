"""Seconds from `retainwise model train` starting to fitting starting, with no Prefect server.

Prints one JSON line: wall and CPU seconds of the command up to its "fitting on ..." note (the
moment training starts), and to its end. Issue 15's target: training starts within 5 s.
Usage: benchmarks/train_start.py [--data telco.csv] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TELCO = next(
    (
        root / "shared/data/telco_churn.csv"
        for root in (REPO.parent, REPO.parents[1])
        if (root / "shared/data/telco_churn.csv").exists()
    ),
    REPO.parent / "shared/data",
)


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a running process, from /proc (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one_run(data: Path) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
        env["RETAINWISE_HOME"] = home
        started = time.perf_counter()
        child = subprocess.Popen(
            [
                str(REPO / ".venv/bin/retainwise"),
                "model",
                "train",
                "--data",
                str(data),
                "--target",
                "Churn",
                "--id",
                "customerID",
                "--name",
                "bench",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
            cwd=home,
        )
        figures: dict[str, float] = {}
        lines = []
        for line in child.stderr:
            lines.append(line)
            if "fitting on" in line and "start_wall_s" not in figures:
                figures["start_wall_s"] = round(time.perf_counter() - started, 2)
                figures["start_cpu_s"] = round(cpu_seconds(child.pid), 2)
        child.wait()
        figures["total_wall_s"] = round(time.perf_counter() - started, 2)
        if child.returncode != 0:
            raise SystemExit("train failed:\n" + "".join(lines[-20:]))
        return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=TELCO)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    runs = [one_run(args.data) for _ in range(args.repeats)]
    print(json.dumps({"runs": runs, "load_average": os.getloadavg()[0]}), file=sys.stdout)


if __name__ == "__main__":
    main()
