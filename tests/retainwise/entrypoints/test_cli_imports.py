"""Start-up: each command imports only what its path needs (figures in benchmarks/README.md).

Each check runs in a fresh interpreter, because this test process has imported everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from retainwise.local.sample import synthetic_customers
from tests.helpers import customers_csv

REPO = Path(__file__).resolve().parents[3]
# the script prints the top-level packages and `models.*` modules loaded when it ends
REPORT = (
    "import json, sys\n"
    "def report():\n"
    "    print(json.dumps(sorted(m for m in sys.modules if '.' not in m\n"
    "                            or m.startswith('models.'))))\n"
)


def loaded_after(script: str, home: Path, **env: str) -> set[str]:
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("RETAINWISE_", "PREFECT_API_URL"))
    }
    environment.update(RETAINWISE_HOME=str(home), **env)
    done = subprocess.run(
        [sys.executable, "-c", REPORT + script],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_help_loads_no_library_beyond_the_standard_one(tmp_path):
    loaded = loaded_after(
        "from retainwise.entrypoints import cli\n"
        "try:\n    cli.main(['--help'])\nexcept SystemExit:\n    report()\n",
        tmp_path,
    )
    heavy = {
        "pydantic",
        "pydantic_settings",
        "pandas",
        "numpy",
        "pyarrow",
        "sklearn",
        "mlflow",
        "prefect",
        "great_expectations",
        "sqlalchemy",
        "boto3",
    }
    assert loaded & heavy == set()


def test_model_train_without_a_server_starts_fitting_before_mlflow_or_prefect_load(tmp_path):
    """Issue 15: training starts within seconds; MLflow is needed only after fitting.

    The script prints only from inside the replaced `train`, so the check runs where fitting starts.
    """
    data = tmp_path / "labelled.csv"
    synthetic_customers(40, seed=3).to_csv(data, index=False)
    loaded = loaded_after(
        "import models.training\n"
        "def fit_stops_here(*args, **kwargs):\n    report()\n    raise SystemExit(0)\n"
        "models.training.train = fit_stops_here\n"
        "from retainwise.entrypoints import cli\n"
        f"cli.main(['model', 'train', '--data', {str(data)!r}, '--target', 'Churn'])\n",
        tmp_path,
    )
    assert loaded & {"mlflow", "prefect", "great_expectations", "sqlalchemy", "boto3"} == set()


def test_score_loads_neither_prefect_nor_the_training_code(mlflow_store, tmp_path):
    source = tmp_path / "customers.csv"
    source.write_bytes(customers_csv(20))
    loaded = loaded_after(
        "from retainwise.entrypoints import cli\n"
        f"code = cli.main(['score', {str(source)!r}, '-o', {str(tmp_path / 'out.csv')!r}])\n"
        "assert code == 0, code\nreport()\n",
        tmp_path / "home",
        RETAINWISE_MLFLOW_TRACKING_URI=mlflow_store["uri"],
    )
    assert {"mlflow", "models.scoring"} <= loaded  # the score really ran
    assert loaded & {"prefect", "models.training", "models.leakage", "models.thresholds"} == set()
