"""Start-up of the commands: `retainwise --help`, `retainwise score` on a 10-row file, and the
imports of a cold worker (a fresh interpreter running a score-upload flow run imports its flow).

Trains a champion on Telco in a private home first (not timed), then alternates the commands
with the bare imports that set their floor (`python -c pass`, `import pandas`, `import mlflow`,
`import sklearn.ensemble`, the GX validator). Prints one JSON line: median wall and CPU
(user+sys) seconds per command, with the floors measured in the same run.
With `--baseline DIR` (a checkout of an earlier commit) each command also runs from DIR's code
(PYTHONPATH=DIR, same venv) in the same repeats, for before/after figures on the same load.
Usage: benchmarks/startup.py [--repeats 5] [--baseline /tmp/checkout-of-main]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, fresh_home, log, median, train_champion  # noqa: E402

PYTHON = str(REPO / ".venv/bin/python")
RETAINWISE = str(REPO / ".venv/bin/retainwise")
FLOORS = {
    "python -c pass": "pass",
    "import pandas": "import pandas",
    "import sklearn.ensemble": "import sklearn.ensemble",
    "import mlflow": "import mlflow",
    "import great_expectations": "import great_expectations",
}


COMMANDS_WITH_BASELINE = (
    "retainwise --help",
    "retainwise score (10 rows)",
    "cold worker: import flows.score_upload",
)


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user+sys) seconds of one child, from this process's children's rusage."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, cwd=env["RETAINWISE_HOME"], capture_output=True, text=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{done.stderr[-2000:]}{done.stdout[-500:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--baseline", help="a checkout whose code to time beside this one's")
    args = parser.parse_args()
    from benchmarks.data import load_telco
    from retainwise.config.settings import Settings

    home = fresh_home("startup")
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(
        RETAINWISE_HOME=str(home), RETAINWISE_MLFLOW_TRACKING_URI=f"sqlite:///{home}/mlflow.db"
    )
    log("training a champion on Telco (not timed)")
    train_champion(Settings(home=home, mlflow_tracking_uri=env["RETAINWISE_MLFLOW_TRACKING_URI"]))
    small = home / "ten_rows.csv"
    load_telco().head(10).drop(columns=["Churn"]).to_csv(small, index=False)
    commands = {
        "retainwise --help": [RETAINWISE, "--help"],
        "retainwise score (10 rows)": [
            RETAINWISE,
            "score",
            str(small),
            "-o",
            str(home / "scored.csv"),
        ],
        "cold worker: import flows.score_upload": [PYTHON, "-c", "import flows.score_upload"],
        **{name: [PYTHON, "-c", code] for name, code in FLOORS.items()},
    }
    envs = {name: env for name in commands}
    if args.baseline:
        for name in COMMANDS_WITH_BASELINE:
            commands[f"baseline: {name}"] = commands[name]
            envs[f"baseline: {name}"] = {**env, "PYTHONPATH": args.baseline}
    timed(commands["retainwise score (10 rows)"], env)  # a first run warms the page cache
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for repeat in range(args.repeats):
        for name, argv in commands.items():
            runs[name].append(timed(argv, envs[name]))
        log(f"repeat {repeat + 1}/{args.repeats} done")
    result = {
        name: {
            "wall_s": round(median([w for w, _ in r]), 2),
            "cpu_s": round(median([c for _, c in r]), 2),
        }
        for name, r in runs.items()
    }
    print(
        json.dumps(
            {
                "median_of": args.repeats,
                "baseline": args.baseline,
                "commands": result,
                "load_average": round(os.getloadavg()[0], 2),
            }
        ),
        file=sys.stdout,
    )


if __name__ == "__main__":
    main()
