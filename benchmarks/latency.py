"""Upload -> COMPLETED latency on the local stack (moto, Prefect server, runner, SQS trigger).

50 uploads of 1k rows sent one by one (each waits for the previous to finish), then 50 at once.
For each upload: submit -> COMPLETED, and where the time went: SQS send -> flow run created
(trigger), created -> flow run started (runner pickup and process start), started -> claimed
(flow start-up, imports), claimed -> COMPLETED (reading, validating, scoring, writing).

    python benchmarks/latency.py [--uploads 50] [--skip-one-by-one]
    python benchmarks/latency.py --compare [--uploads 20]

Also measured in the same run, so a reader can scale absolute targets to this machine: the naive
script on 100k rows (`naive_100k_s`, median of `--naive-repeats`; the issue's targets assume
0.85 s), and the Prefect API calls per run, per route (`api_calls_per_run`; the server is started
through benchmarks/prefect_calls.py, which counts every call it answers), beside the calls an idle
stack makes per second (the warm workers' polls, over 20 s: the idle poll turn holder polls
every few seconds), and the polls alone (`polls_per_run`, `polls_idle_per_s`), with the CPU
seconds a second each stack process spends meanwhile (`cpu_idle_per_s`).

`--compare` runs only the burst, four times: 1 and 2 warm runner services (RETAINWISE_RUNNERS,
sharing the cores), each with the Prefect server on SQLite and on PostgreSQL (a throwaway
database on 127.0.0.1:5432, RETAINWISE_PREFECT_DATABASE_URL), and reports the CPU seconds the
stack's processes used beside the latencies.

Uses its own RETAINWISE_HOME and free ports, and stops every process it started. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import tenacity

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common, prefect_calls  # noqa: E402
from benchmarks.data import ensure  # noqa: E402

ROWS = 1000
PROFILE_DIR = "RETAINWISE_BENCH_PROFILE_DIR"


def upload_bytes() -> bytes:
    """The first 1k rows of the 10k-row Telco-schema table."""
    lines = ensure(10_000).read_bytes().splitlines(keepends=True)
    return b"".join(lines[: ROWS + 1])


MEASURING_MODULES = {
    "retainwise.runtime.prefect_server": "benchmarks.prefect_calls",
    "retainwise.runtime.serve": "benchmarks.profiled_runner",  # only with --profile
}


def counted_services(services):
    """stack.services with the Prefect server started through benchmarks/prefect_calls.py and,
    when RETAINWISE_BENCH_PROFILE_DIR is set, the runner through benchmarks/profiled_runner.py."""

    def measuring(argv: list[str]) -> list[str]:
        module = MEASURING_MODULES.get(argv[2], argv[2]) if argv[1:2] == ["-m"] else None
        if module is None or (module.endswith("runner") and not os.getenv(PROFILE_DIR)):
            return argv
        return [*argv[:2], module, *argv[3:]]

    def with_counting(settings):
        return [replace(s, argv=measuring(s.argv)) for s in services(settings)]

    with_counting.counted = True  # type: ignore[attr-defined]
    return with_counting


def naive_seconds(settings, home: Path, repeats: int, rows: int = 100_000) -> dict[str, float]:
    """Median wall and CPU seconds of the naive script (benchmarks/throughput.py) on `rows` rows.

    On a loaded machine the wall time also counts waiting for a core; the CPU seconds do not,
    so they are the fairer scale for CPU figures."""
    from benchmarks import throughput

    throughput.export_model(settings, home / "model")
    args = argparse.Namespace(memory_limit_gb=12, rows=rows)
    paths = ["--file", str(ensure(rows)), "--model-dir", str(home / "model")]
    runs = [
        throughput.run_child("naive", args, {}, [*paths, "--out", str(home / "naive.csv")])
        for _ in range(repeats)
    ]
    done = [r for r in runs if "seconds" in r]
    common.log(f"naive script, {rows:,} rows: {runs}")  # a failed run shows its error
    return {
        "naive_100k_s": round(common.median([r["seconds"] for r in done]), 3),
        "naive_100k_cpu_s": round(common.median([r["cpu_s"] for r in done]), 3),
    }


POLL_ROUTES = (  # the warm workers' polls: the plain read, and the heartbeat's runner endpoint
    "POST /api/flow_runs/filter",
    "POST /api/deployments/get_scheduled_flow_runs",
)


def polls(calls: dict) -> float:
    """The polls among calls counted by `prefect_calls.per_run` (per run, or per second)."""
    return round(sum(calls["by_route"].get(r, 0.0) for r in POLL_ROUTES), 2)


def idle_calls(api_url: str, seconds: float) -> dict:
    """Calls per second, per route, of the stack doing nothing (the workers' polls)."""
    before = prefect_calls.calls(api_url)
    time.sleep(seconds)
    spent = prefect_calls.diff(prefect_calls.calls(api_url), before)
    return prefect_calls.per_run(spent, seconds)


def wait_ended(env, outcomes: list[dict], timeout: float = 120) -> None:
    """Until these uploads' flow runs have ended: their work after COMPLETED (the monitoring
    figures, the final state) belongs to their phase, not the next one."""
    from retainwise.adapters import db

    run_ids = [db.get_prediction(env.engine, o["id"]).flow_run_id for o in outcomes]
    with prefect_calls.uncounted_client() as client:
        for run_id in filter(None, run_ids):
            tenacity.Retrying(
                retry=tenacity.retry_if_result(lambda state: not (state and state.is_final())),
                stop=tenacity.stop_after_delay(timeout),
                wait=tenacity.wait_fixed(0.1),
            )(lambda run_id=run_id: client.read_flow_run(run_id).state)


def submit_and_wait(env, data: bytes, timeout: float) -> dict:
    from retainwise.entrypoints import service

    started = time.time()
    prediction_id = service.submit_upload(
        env, data, filename="bench.csv", account="bench", model_name=common.MODEL
    )
    row = service.wait_for_final(env, prediction_id, timeout=timeout, poll=0.05)
    return {
        "id": prediction_id,
        "submitted": started,
        "finished": time.time(),
        "status": row.status.value,
        "error": row.error,
    }


def breakdown(env, outcome: dict) -> dict:
    """Seconds between the milestones the database and the Prefect API recorded."""
    from retainwise.adapters import db

    row = db.get_prediction(env.engine, outcome["id"])
    stamp = lambda value: value.timestamp() if isinstance(value, datetime) else None  # noqa: E731
    queued, claimed = stamp(_utc(row.sqs_queued_at)), stamp(_utc(row.started_at))
    created = started = None
    if row.flow_run_id:
        with prefect_calls.uncounted_client() as client:
            run = client.read_flow_run(row.flow_run_id)
        created, started = stamp(run.created), stamp(run.start_time)
    total = outcome["finished"] - outcome["submitted"]
    return {
        "total": total,
        "queue_to_created": _gap(queued, created),
        "created_to_started": _gap(created, started),
        "queue_to_flow_start": _gap(queued, started),
        "started_to_claimed": _gap(started, claimed),
        "claimed_to_completed": _gap(claimed, outcome["finished"]),
        "status": outcome["status"],
        "error": outcome["error"],
    }


def _utc(value):

    if isinstance(value, datetime) and value.tzinfo is None:  # SQLite drops the zone
        return value.replace(tzinfo=UTC)
    return value


def _gap(start, end):
    return None if start is None or end is None else end - start


def summarise(label: str, rows: list[dict]) -> dict:
    done = [r for r in rows if r["status"] == "COMPLETED"]
    out = {"uploads": len(rows), "completed": len(done)}
    for key in (
        "total",
        "queue_to_created",
        "created_to_started",
        "queue_to_flow_start",
        "started_to_claimed",
        "claimed_to_completed",
    ):
        values = [r[key] for r in done if r[key] is not None]
        if values:
            out[key] = {
                "p50": round(common.percentile(values, 0.5), 2),
                "p95": round(common.percentile(values, 0.95), 2),
                "max": round(max(values), 2),
            }
    failed = [r["error"] for r in rows if r["status"] != "COMPLETED"]
    if failed:
        out["first_failure"] = failed[0]
    common.log(f"{label}: {json.dumps(out)}")
    return out


def stack_cpu_seconds(settings) -> float:
    """User + system CPU of every stack process and its children so far (psutil)."""
    import psutil

    total = 0.0
    for pid_file in (settings.home_dir / "pids").glob("*.pid"):
        try:
            leader = psutil.Process(int(pid_file.read_text()))
            for process in [leader, *leader.children(recursive=True)]:
                times = process.cpu_times()
                total += times.user + times.system + times.children_user + times.children_system
        except psutil.Error:
            continue
    return total


def run(
    uploads: int,
    timeout: float,
    skip_one_by_one: bool = False,
    runners: int = 1,
    prefect_database_url: str | None = None,
    naive_repeats: int = 3,
    profile: bool = False,
) -> dict:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    import migrations
    from retainwise.adapters.resources import Resources
    from retainwise.config.settings import Settings
    from retainwise.local import stack

    home = common.side_by_side("latency")
    os.environ.update(
        {
            "RETAINWISE_RUNNERS": str(runners),
            # the counting server imports `benchmarks`, which is not an installed package
            "PYTHONPATH": os.pathsep.join(
                filter(None, [str(common.REPO), os.getenv("PYTHONPATH")])
            ),
        }
    )
    os.environ.pop("RETAINWISE_PREFECT_DATABASE_URL", None)
    os.environ.pop(PROFILE_DIR, None)
    if profile:
        os.environ[PROFILE_DIR] = str(home / "profile")
    if prefect_database_url:
        os.environ["RETAINWISE_PREFECT_DATABASE_URL"] = prefect_database_url
    if not getattr(stack.services, "counted", False):
        stack.services = counted_services(stack.services)
    settings = Settings()
    data = upload_bytes()
    scope = contextlib.ExitStack()
    try:
        migrations.upgrade(settings.db_url)
        common.train_champion(settings)
        naive_100k = naive_seconds(settings, home, naive_repeats) if naive_repeats else {}
        started = time.monotonic()
        stack_env = stack.up(settings, timeout=600)  # a loaded machine: minutes, not seconds
        stack_seconds = time.monotonic() - started
        api_url = stack_env["PREFECT_API_URL"]
        # Prefect read its settings once, at import: point this process at this stack's server
        scope.enter_context(temporary_settings(updates={PREFECT_API_URL: api_url}))
        env = Resources.from_env()
        common.log(f"stack up after {stack_seconds:.1f} s; warming up with one upload")
        warm_up = submit_and_wait(env, data, timeout)
        first = breakdown(env, warm_up)
        common.log(f"first upload after stack up: {json.dumps(first)}")
        wait_ended(env, [warm_up])
        idle_cpu, idle_started = StackCpu(home), time.monotonic()
        idle = idle_calls(api_url, 20.0)  # a few fallback polls and heartbeats, not one
        cpu_idle = idle_cpu.per_run(time.monotonic() - idle_started)  # CPU s a second
        cpu, calls, profiled = StackCpu(home), prefect_calls.calls(api_url), Profiled(home)
        one_by_one = (
            [] if skip_one_by_one else [submit_and_wait(env, data, timeout) for _ in range(uploads)]
        )
        wait_ended(env, one_by_one[-1:])
        cpu_one_by_one = cpu.per_run(uploads)
        calls, calls_one_by_one = calls_since(api_url, calls, uploads)
        profile_one_by_one = profiled.per_run(uploads)
        cpu_before, burst_started = stack_cpu_seconds(settings), time.monotonic()
        with ThreadPoolExecutor(max_workers=uploads) as pool:
            outcomes = list(pool.map(lambda _: submit_and_wait(env, data, timeout), range(uploads)))
        burst_wall = time.monotonic() - burst_started
        wait_ended(env, outcomes)
        burst_cpu = stack_cpu_seconds(settings) - cpu_before
        cpu_at_once = cpu.per_run(uploads)
        _, calls_at_once = calls_since(api_url, calls, uploads)
        profile_at_once = profiled.per_run(uploads)
        one_by_one = [breakdown(env, outcome) for outcome in one_by_one]
        at_once = [breakdown(env, outcome) for outcome in outcomes]
    finally:
        scope.close()
        stack.down(settings)
    return {
        "benchmark": "latency",
        "rows_per_upload": ROWS,
        "naive_100k_s": naive_100k.get("naive_100k_s"),
        "naive_100k_cpu_s": naive_100k.get("naive_100k_cpu_s"),
        "stack_up_s": round(stack_seconds, 1),
        "runners": runners,
        "prefect_db": "postgresql" if prefect_database_url else "sqlite",
        "burst_wall_s": round(burst_wall, 1),
        "burst_stack_cpu_s": round(burst_cpu, 1),
        "first_upload_s": round(first["total"], 2),
        "api_calls_per_run": calls_at_once["total"],
        "api_calls_idle_per_s": idle,
        "polls_idle_per_s": polls(idle),
        "cpu_idle_per_s": cpu_idle,
        "one_by_one": (
            {
                **summarise("one by one", one_by_one),
                "cpu_per_run_s": cpu_one_by_one,
                "api_calls_per_run": calls_one_by_one,
                "polls_per_run": polls(calls_one_by_one),
                **profile_one_by_one,
            }
            if one_by_one
            else None
        ),
        "at_once": {
            **summarise("at once", at_once),
            "cpu_per_run_s": cpu_at_once,
            "api_calls_per_run": calls_at_once,
            "polls_per_run": polls(calls_at_once),
            **profile_at_once,
        },
    }


def calls_since(api_url: str, before: dict, runs: int) -> tuple[dict, dict]:
    """(the server's counts now, the calls per run since `before`)."""
    now = prefect_calls.calls(api_url)
    spent = prefect_calls.per_run(prefect_calls.diff(now, before), runs)
    common.log(f"Prefect API calls per run: {json.dumps(spent)}")
    return now, spent


class Profiled:
    """With --profile: the runner's wall seconds per run by component since the last call."""

    def __init__(self, home: Path) -> None:
        from benchmarks import profiled_runner

        self.runner = profiled_runner
        self.directory = home / "profile"
        self.last = profiled_runner.totals(self.directory) if os.getenv(PROFILE_DIR) else None

    def per_run(self, runs: int) -> dict:
        if self.last is None:
            return {}
        now = self.runner.totals(self.directory)
        spent = self.runner.per_run(now, self.last, runs)
        self.last = now
        common.log(f"runner wall seconds per run by component: {json.dumps(spent)}")
        return {"runner_profile_per_run": spent}


class StackCpu:
    """CPU seconds (user+sys) the stack's processes spent since the last call, per run:
    worker (the runner and its warm children), Prefect server, trigger, and moto beside them."""

    SERVICES = ("runner", "prefect", "trigger", "moto")

    def __init__(self, home: Path) -> None:
        from retainwise.local import stack

        self.pids = {name: stack._pid(home, name) for name in self.SERVICES}
        self.last = self._now()

    def _now(self) -> dict[str, float]:
        return {name: common.tree_cpu_seconds([pid]) for name, pid in self.pids.items() if pid}

    def per_run(self, runs: float) -> dict[str, float]:
        now = self._now()
        spent = {name: (now[name] - self.last.get(name, 0.0)) / runs for name in now}
        self.last = now
        spent["worker+server+trigger"] = sum(
            spent.get(n, 0.0) for n in ("runner", "prefect", "trigger")
        )
        return {name: round(value, 3) for name, value in spent.items()}


def compare(
    uploads: int, timeout: float, runner_counts=(1, 2), prefect_dbs=("sqlite", "postgresql")
) -> dict:
    """The burst with 1 and 2 runner services, the Prefect server on SQLite and PostgreSQL."""
    results = []
    for prefect_db in prefect_dbs:
        for runners in runner_counts:
            common.log(f"burst of {uploads}: {runners} runner(s), Prefect on {prefect_db}")
            if prefect_db == "sqlite":
                outcome = run(uploads, timeout, True, runners, naive_repeats=0)
            else:
                from tests.conftest import throwaway_postgres  # the tests' throwaway database

                with throwaway_postgres("retainwise_bench") as url:
                    outcome = run(uploads, timeout, True, runners, url, naive_repeats=0)
            burst = outcome["at_once"]
            results.append(
                {
                    k: outcome[k]
                    for k in (
                        "runners",
                        "prefect_db",
                        "burst_wall_s",
                        "burst_stack_cpu_s",
                        "stack_up_s",
                    )
                }
                | {
                    "completed": burst["completed"],
                    "p50_s": burst.get("total", {}).get("p50"),
                    "p95_s": burst.get("total", {}).get("p95"),
                }
            )
            common.log(json.dumps(results[-1]))
    return {
        "benchmark": "latency-compare",
        "uploads": uploads,
        "rows_per_upload": ROWS,
        "results": results,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uploads", type=int, default=50)
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument(
        "--skip-one-by-one",
        action="store_true",
        help="only the burst (faster when iterating on it)",
    )
    parser.add_argument(
        "--compare",
        action="store_true",
        help="the burst with 1 vs 2 runners, Prefect on SQLite vs PostgreSQL",
    )
    parser.add_argument(
        "--naive-repeats",
        type=int,
        default=3,
        help="runs of the naive script on 100k rows for naive_100k_s (0: skip)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="profile the runner's flow runs: wall seconds per component per run (slower runs)",
    )
    parser.add_argument("--runner-counts", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--prefect-dbs",
        nargs="+",
        default=["sqlite", "postgresql"],
        choices=["sqlite", "postgresql"],
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("stopped"))  # still stop the stack
    if args.compare:
        print(json.dumps(compare(args.uploads, args.timeout, args.runner_counts, args.prefect_dbs)))
        return
    print(
        json.dumps(
            run(
                args.uploads,
                args.timeout,
                args.skip_one_by_one,
                naive_repeats=args.naive_repeats,
                profile=args.profile,
            )
        )
    )


if __name__ == "__main__":
    main()
