"""Database connections a warm runner holds on PostgreSQL while it serves many score-upload runs.

The local stack (moto, Prefect server, one warm runner, the SQS trigger) on a throwaway
PostgreSQL database (127.0.0.1:5432, as the tests use): one upload to warm up, then `--uploads`
(200) uploads of 200 synthetic rows, `--at-once` (8) in flight. `pg_stat_activity` is counted for
that database after the warm-up, every second during the runs (the peak) and after them: all
sessions, and the runner's (the sessions whose client port belongs to a runner process, psutil).
A runner that built a connection pool per run and never disposed it would grow with the runs.

    python benchmarks/connections.py [--uploads 200] [--at-once 8]

Uses its own RETAINWISE_HOME, database and free ports, and stops every process it started. The
last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

ROWS = 200


def runner_processes(home: Path) -> list:
    """The runner's processes (psutil): each service's parent and its warm children."""
    import psutil

    found = []
    for pid_file in (home / "pids").glob("runner*.pid"):
        with contextlib.suppress(psutil.NoSuchProcess, ValueError):
            parent = psutil.Process(int(pid_file.read_text()))
            found += [parent, *parent.children(recursive=True)]
    return found


def runner_ports(home: Path) -> set[int]:
    """Local TCP ports of the runner's processes."""
    import psutil

    ports = set()
    for process in runner_processes(home):
        with contextlib.suppress(psutil.NoSuchProcess):
            ports |= {c.laddr.port for c in process.net_connections("tcp")}
    return ports


def sessions(database_url: str, home: Path) -> dict[str, int]:
    """pg_stat_activity for the database: every client session, and the runner's."""
    import sqlalchemy as sa

    name = sa.make_url(database_url).database
    admin = sa.create_engine(database_url, poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            ports = conn.execute(
                sa.text(
                    "SELECT client_port FROM pg_stat_activity WHERE datname = :name "
                    "AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
                ),
                {"name": name},
            ).scalars()
            ports = list(ports)
    finally:
        admin.dispose()
    mine = runner_ports(home)
    return {"all": len(ports), "runner": sum(port in mine for port in ports)}


class Peak:
    """Samples `sessions` every second in a thread; the largest counts seen."""

    def __init__(self, sample) -> None:
        self.sample, self.seen, self.stop = sample, {"all": 0, "runner": 0}, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(1):
            now = self.sample()
            self.seen = {key: max(self.seen[key], now[key]) for key in self.seen}

    def __enter__(self) -> Peak:
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()


def submit_and_wait(env, data: bytes, timeout: float) -> str:
    from retainwise.entrypoints import service

    prediction_id = service.submit_upload(
        env, data, filename="bench.csv", account="bench", model_name=common.MODEL
    )
    row = service.wait_for_final(env, prediction_id, timeout=timeout, poll=0.1)
    return str(row["status"] if isinstance(row, dict) else row.status)  # dicts before issue 18


def train_small_champion(settings) -> None:
    from models.training import train
    from retainwise.adapters import mlflow_registry as registry
    from retainwise.local.sample import synthetic_customers

    trained = train(synthetic_customers(2000, seed=3).astype(str), "Churn", "customer_id")
    registry.promote(common.MODEL, registry.register(trained, common.MODEL, settings), settings)


def serve_runs(database_url: str, uploads: int, at_once: int, timeout: float) -> dict:
    """Stack up on `database_url`, warm up, run `uploads` uploads; connection counts throughout."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    import migrations
    from retainwise.adapters.resources import Resources
    from retainwise.config.settings import Settings
    from retainwise.local import stack
    from retainwise.local.sample import synthetic_customers

    home = common.fresh_home("connections")
    os.environ.update(
        {
            "RETAINWISE_HOME": str(home),
            "RETAINWISE_DATABASE_URL": database_url,
            "RETAINWISE_STACK_AWS_PORT": str(common.free_port()),
            "RETAINWISE_STACK_PREFECT_PORT": str(common.free_port()),
            "RETAINWISE_STACK_API_PORT": str(common.free_port()),
            "RETAINWISE_RUNNERS": "1",
        }
    )
    settings = Settings()
    data = synthetic_customers(ROWS, seed=7).drop(columns=["Churn"]).to_csv(index=False).encode()
    migrations.upgrade(settings.db_url)
    train_small_champion(settings)
    env = Resources(settings)  # not `with`: the same script measures commits before close()
    try:
        stack_env = stack.up(settings, timeout=600)
        with temporary_settings(updates={PREFECT_API_URL: stack_env["PREFECT_API_URL"]}):
            assert submit_and_wait(env, data, timeout) == "COMPLETED"
            before = sessions(database_url, home)
            common.log(f"warm: {before}; {uploads} uploads, {at_once} at once")
            started = time.monotonic()
            with Peak(lambda: sessions(database_url, home)) as peak:
                with ThreadPoolExecutor(max_workers=at_once) as pool:
                    statuses = list(
                        pool.map(lambda _: submit_and_wait(env, data, timeout), range(uploads))
                    )
            after = sessions(database_url, home)
            processes = len(runner_processes(home))
    finally:
        env.engine.dispose()
        stack.down(settings)
    return {
        "benchmark": "connections",
        "uploads": uploads,
        "completed": statuses.count("COMPLETED"),
        "wall_s": round(time.monotonic() - started, 1),
        "runner_processes": processes,
        "sessions_after_warm_up": before,
        "sessions_peak": peak.seen,
        "sessions_after": after,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=200)
    parser.add_argument("--at-once", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))  # still stop the stack
    from tests.conftest import throwaway_postgres  # the tests' throwaway database

    with throwaway_postgres("retainwise_bench") as url:
        print(json.dumps(serve_runs(url, args.uploads, args.at_once, args.timeout)))


if __name__ == "__main__":
    main()
