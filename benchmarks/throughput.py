"""Throughput and peak memory: two hand-written scripts against the project's scoring path.

(a) naive:   pandas.read_csv -> predict_proba -> the four result columns with to_csv
(e) expert:  pyarrow.csv.read_csv -> predict_proba -> the four columns with pyarrow's CSV writer
(b) project: object in S3 (moto server) -> score-upload flow run (read, validate, score, results
             and report to S3, status) against a real Prefect server and SQLite

Each run is its own subprocess (peak RSS is per process); the three sides alternate within each
repeat, medians are reported. Imports and loading the model are outside the timed span for all.
CPU seconds are user+sys of the timed span, summed over threads; for (b) they include the moto
and Prefect server processes' CPU over the same span (the work they do for the run).

    python benchmarks/throughput.py --rows 1000000 [--repeats 3] [--sides project]

RETAINWISE_BENCH_PROFILE=/tmp/p.out profiles (cProfile) the project side's timed span, on the wall
clock, or on CPU seconds with RETAINWISE_BENCH_PROFILE_CLOCK=cpu.

A whole file of at least RETAINWISE_SPLIT_ABOVE_BYTES is scored in two halves (uploads/halves.py)
when the load allows (`--split-max-load`, default the setting's): the child first warms its helper
process as a worker's earlier large upload would, and the helper's CPU seconds count in (b)'s.
`--sides naive,expert,project,project_one_piece` adds (b) with the split turned off, same run;
`project_one_task` / `project_staged` (b) with every whole file on the small path (in the flow,
no task run) / a task run per stage; `project_baseline` (b) with the code of `--baseline DIR`
(an earlier checkout), same run.

The project side's child holds what a warm runner child holds before a run (the process's
Resources connected, the champion, the GX context, one Prefect client) and runs the flow as that
child does (no result-storage reads, no heartbeat thread); each run uses an account of its own.
It reports `completed_s` (to the COMPLETED write), its Prefect API calls by route, and the CPU of
moto and the Prefect server apart (`backend_idle_cpu_per_s`: theirs per second with no run).

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.data import ID, ensure  # noqa: E402

INPUT_KEY = "uploads/bench/{rows}/input"
STAGES = {
    "read-upload": "reading",
    "validate-upload": "validating",
    "score-customers": "scoring",
    "write-results": "writing",
}


# ---------------------------------------------------------------- (a) the naive script, a child
def naive_child(path: str, model_dir: str, out: str) -> dict:
    import mlflow.sklearn
    import numpy as np
    import pandas as pd

    pipeline = mlflow.sklearn.load_model(model_dir)
    profile = json.loads(Path(model_dir, "profile.json").read_text())
    numeric = [f["name"] for f in profile["features"] if f["kind"] == "numeric"]
    features = [f["name"] for f in profile["features"]]
    cutoffs = profile["cutoffs"]
    started, cpu = time.perf_counter(), common.cpu_seconds()
    frame = pd.read_csv(path)
    X = frame[features].copy()
    for name in numeric:  # TotalCharges has blank cells, so pandas reads it as text
        X[name] = pd.to_numeric(X[name], errors="coerce")
    categorical = [n for n in features if n not in numeric]
    X[categorical] = X[categorical].astype(object)
    probability = pipeline.predict_proba(X)[:, 1]
    pd.DataFrame(
        {
            "customer_id": frame[ID],
            "churn_probability": probability,
            "churn_risk": np.where(
                probability >= cutoffs["high"],
                "HIGH",
                np.where(probability >= cutoffs["medium"], "MEDIUM", "LOW"),
            ),
            "predicted_churn": probability >= profile["threshold"],
        }
    ).to_csv(out, index=False)
    return {
        "seconds": time.perf_counter() - started,
        "cpu_s": common.cpu_seconds() - cpu,
        "rows": len(frame),
    }


# ---------------------------------------------------------------- (e) the expert script, a child
def expert_child(path: str, model_dir: str, out: str) -> dict:
    """What an engineer who knows Arrow writes: Arrow parses and writes, sklearn predicts."""
    import mlflow.sklearn
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv

    pipeline = mlflow.sklearn.load_model(model_dir)
    profile = json.loads(Path(model_dir, "profile.json").read_text())
    features = [f["name"] for f in profile["features"]]
    cutoffs = profile["cutoffs"]
    started, cpu = time.perf_counter(), common.cpu_seconds()
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            include_columns=[ID, *features], null_values=["", " "], strings_can_be_null=True
        ),
    )
    probability = pipeline.predict_proba(table.select(features).to_pandas())[:, 1]
    pacsv.write_csv(
        pa.table(
            {
                "customer_id": table[ID],
                "churn_probability": probability,
                "churn_risk": np.where(
                    probability >= cutoffs["high"],
                    "HIGH",
                    np.where(probability >= cutoffs["medium"], "MEDIUM", "LOW"),
                ),
                "predicted_churn": probability >= profile["threshold"],
            }
        ),
        out,
    )
    return {
        "seconds": time.perf_counter() - started,
        "cpu_s": common.cpu_seconds() - cpu,
        "rows": table.num_rows,
    }


SCRIPTS = {"naive": naive_child, "expert": expert_child}


# ---------------------------------------------------------------- (b) the project's path, a child
def project_child(rows: int, path: Path) -> dict:
    from prefect.context import SyncClientContext

    from flows.score_upload import score_upload
    from retainwise.adapters import db
    from retainwise.adapters import mlflow_registry as registry
    from retainwise.adapters.resources import Resources
    from retainwise.runtime import worker
    from retainwise.uploads.validation import _batch_definition

    # what a warm runner child holds before its run (retainwise/runtime/worker.py): the process's
    # Resources with its engine and S3 client connected, the champion, the GX context, and one
    # Prefect API client (its version check done) that the flow engine takes
    env = Resources.of_process()
    model = registry.load_champion(common.MODEL, env.settings)  # a warm worker has it cached
    _batch_definition()
    helper = warm_helper(model, env.settings, path)
    prediction_id = db.create_prediction(
        env.engine,
        # an account of its own: every side and repeat meets the same state (no previous upload
        # of these customers, so the same actions-list work), whatever ran before it
        account=f"bench-{os.getpid()}",
        model_name=common.MODEL,
        input_key=INPUT_KEY.format(rows=rows),
    )
    env.s3.head_object(Bucket=env.settings.bucket, Key=INPUT_KEY.format(rows=rows))
    stage_log = StageLog.install()
    profile_to = os.environ.get("RETAINWISE_BENCH_PROFILE")  # a cProfile file of the timed span
    profiler = profiler_of(os.environ.get("RETAINWISE_BENCH_PROFILE_CLOCK")) if profile_to else None
    # and the flow as the warm child runs it: no result-storage reads, no heartbeat thread
    flow = worker.without_result_storage_reads(score_upload)
    with worker.without_flow_heartbeats(), SyncClientContext.get_or_create() as client_context:
        client_context.client.read_flows(limit=1)  # the connection open, as a polling child's
        calls_before = api_calls(os.environ)
        rss = RssTrace.start()  # RSS before the timed span (imports, model, GX) and its course
        helper_cpu = helper_cpu_seconds()
        started, cpu = time.perf_counter(), common.cpu_seconds()
        started_at = time.time()
        if profiler:
            profiler.enable()
        state = flow(prediction_id, return_state=True)
        seconds, cpu = time.perf_counter() - started, common.cpu_seconds() - cpu
        helper_cpu = helper_cpu_seconds() - helper_cpu
        rss.stop()
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile_to)
        calls = api_calls_since(os.environ, calls_before)
    row = db.get_prediction(env.engine, prediction_id)
    if row.status != "COMPLETED":
        raise SystemExit(f"the scoring path did not complete: {row.status} {row.error}")
    stages = stage_log.seconds or task_seconds(state.state_details.flow_run_id)
    return {
        "seconds": seconds,
        # to the COMPLETED write (what the customer waits for; the explanations and monitoring
        # figures are stored after it, in this span too)
        "completed_s": completed_after(row, started_at),
        "cpu_s": cpu + helper_cpu,
        "helper_cpu_s": round(helper_cpu, 3),
        "helper_rss_mb": helper_rss_mb() if helper else None,
        "rows": row.rows_total,
        "rows_scored": row.rows_scored,
        "stages": stages,
        "rss_before_mb": round(rss.before_mb),
        "rss_course_mb": rss.course(),
        "api_calls": calls,
    }


def profiler_of(clock: str | None):
    """cProfile on the wall clock, or with `cpu` on the process's CPU seconds (all threads: a
    function's time is then the CPU the process spent while it ran)."""
    import cProfile

    return cProfile.Profile(time.process_time) if clock == "cpu" else cProfile.Profile()


def completed_after(row, started_at: float) -> float | None:
    """Seconds from `started_at` (time.time()) to the row's completed_at."""
    from datetime import UTC

    moment = row.completed_at
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return round(moment.timestamp() - started_at, 3)


def warm_helper(model, settings, path: Path) -> bool:
    """Warm this process's scoring helper when the file is large enough to be split (a worker's
    earlier large upload did it); True if warmed."""
    from retainwise.uploads import halves
    from retainwise.uploads.policy import ScoringPolicy

    policy = ScoringPolicy.from_settings(settings)
    if path.stat().st_size < policy.split_above_bytes or policy.is_large(path.stat().st_size):
        return False
    helper = halves.helper_of_process()
    with path.open("rb") as handle:
        head = handle.read(halves.WARM_BYTES)
    if not helper.ready(model, head, policy):
        helper.loading[(model.name, model.version)].result()
    return True


def helper_cpu_seconds() -> float:
    """User + system CPU seconds so far of this process's child processes (the helper)."""
    import psutil

    return sum(sum(c.cpu_times()[:2]) for c in psutil.Process().children(recursive=True))


def helper_rss_mb() -> int:
    import psutil

    return round(
        sum(c.memory_info().rss for c in psutil.Process().children(recursive=True)) / 2**20
    )


class RssTrace:
    """RSS before the timed span, then sampled every 50 ms in a thread (psutil)."""

    def __init__(self) -> None:
        import threading

        import psutil

        self.process, self.samples = psutil.Process(), []
        self.before_mb = self.process.memory_info().rss / 2**20
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.sample, daemon=True)

    @classmethod
    def start(cls) -> RssTrace:
        trace = cls()
        trace.thread.start()
        return trace

    def sample(self) -> None:
        while not self.done.wait(0.05):
            self.samples.append(self.process.memory_info().rss / 2**20)

    def stop(self) -> None:
        self.done.set()
        self.thread.join()

    def course(self, points: int = 10) -> list[int]:
        """The highest RSS in each tenth of the span, MB."""
        step = max(1, -(-len(self.samples) // points))
        return [round(max(self.samples[i : i + step])) for i in range(0, len(self.samples), step)]


class StageLog:
    """Collects the per-stage seconds tasks.uploads logs on `retainwise.chunked` (either path)."""

    seconds: dict[str, float] = {}

    @classmethod
    def install(cls) -> type[StageLog]:
        import logging

        class Handler(logging.Handler):
            def emit(self, record):
                if getattr(record, "stage_seconds", None):
                    cls.seconds = dict(record.stage_seconds)

        logger = logging.getLogger("retainwise.chunked")
        logger.addHandler(Handler())
        logger.setLevel(logging.DEBUG)  # the whole-file task reports its seconds at DEBUG
        return cls


def task_seconds(flow_run_id) -> dict[str, float]:
    """Seconds per stage from the flow run's task runs in the Prefect API."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    seconds: dict[str, float] = {}
    for run in runs:
        stage = STAGES.get(
            run.task_key.rsplit("-", 1)[0] if run.task_key else "",
            STAGES.get(run.name.rsplit("-", 1)[0], "other"),
        )
        seconds[stage] = seconds.get(stage, 0.0) + run.total_run_time.total_seconds()
    return seconds


def child_main(args: argparse.Namespace) -> None:
    if os.environ.get("RETAINWISE_BENCH_RUN_TRACE") and args.child not in SCRIPTS:
        from benchmarks import run_trace  # RSS by kind and Arrow's bytes over the whole run

        run_trace.install(os.environ["RETAINWISE_BENCH_RUN_TRACE"])
    if args.child in SCRIPTS:
        result = SCRIPTS[args.child](args.file, args.model_dir, args.out)
    else:
        result = project_child(args.rows, Path(args.file))
    result["peak_rss_mb"] = common.peak_rss_mb()
    print(json.dumps(result))


# ---------------------------------------------------------------- the harness
def export_model(settings, target: Path) -> None:
    """The champion's artifacts and profile, for the naive script to load without a registry."""
    import mlflow

    from retainwise.adapters import mlflow_registry as registry

    model = registry.load_champion(common.MODEL, settings)
    source = registry.client(settings).get_model_version_download_uri(common.MODEL, model.version)
    # MLflow puts the version's directory inside dst_path: move it to `target` itself
    local = mlflow.artifacts.download_artifacts(source, dst_path=str(target.parent / "export"))
    Path(local).rename(target)
    (target / "profile.json").write_text(json.dumps(model.profile.to_dict()))


def start_backends(home: Path, pids: list[int]) -> dict[str, str]:
    """moto and a Prefect server on free loopback ports, as the local stack runs them.

    Each pid goes into `pids` as soon as its process exists, so the caller's `finally` stops it
    even when a later start or health wait fails."""
    from retainwise.config.settings import Settings
    from retainwise.local import stack

    settings = Settings(
        home=home, stack_aws_port=common.free_port(), stack_prefect_port=common.free_port()
    )
    env = {
        **stack.stack_environment(settings),
        "RETAINWISE_HOME": str(home),
        "RETAINWISE_MAX_UPLOAD_BYTES": str(16 * 2**30),
        "PREFECT_LOGGING_LEVEL": "ERROR",
    }
    started = []
    for service in stack.services(settings):
        if service.name in ("moto", "prefect"):
            if service.name == "prefect":  # the same server, every API call counted per route
                service = replace(service, argv=counted(service.argv))
            process = stack.start(service, home, env)
            pids.append(process.pid)
            BACKENDS[service.name] = process.pid
            started.append((service, process))
    for service, process in started:
        stack.wait_healthy(service.health_url, 180, process, home / "logs" / f"{service.name}.log")
    return env


BACKENDS: dict[str, int] = {}  # service name -> pid, as started


def counted(argv: list[str]) -> list[str]:
    """The Prefect server's argv started through benchmarks/prefect_calls.py."""
    if argv[1:3] == ["-m", "retainwise.runtime.prefect_server"]:
        return [argv[0], "-m", "benchmarks.prefect_calls", *argv[3:]]
    return argv


def backend_cpu() -> dict[str, float]:
    """CPU seconds so far of each backend process (and its children)."""
    return {name: common.tree_cpu_seconds([pid]) for name, pid in BACKENDS.items()}


IDLE_SECONDS = 10.0


def idle_backend_cpu(seconds: float) -> dict[str, float]:
    """Each backend's CPU seconds per second while nothing runs (the Prefect server's own loop
    services): what a run's backend CPU includes besides answering it."""
    before = backend_cpu()
    time.sleep(seconds)
    return {k: round((v - before[k]) / seconds, 3) for k, v in backend_cpu().items()}


def settled_backend_cpu(idle: dict[str, float], step: float = 0.5, limit: float = 30.0):
    """The backends' CPU seconds once they are quiet again: the Prefect server persists and
    evaluates a run's events after answering them, which would otherwise land in the next run's
    span. Quiet: each busy at most its idle rate + 0.05 CPU s per second over `step` seconds."""
    now, waited = backend_cpu(), 0.0
    while waited < limit:
        time.sleep(step)
        waited += step
        later = backend_cpu()
        if all((later[k] - now[k]) / step <= idle.get(k, 0.0) + 0.05 for k in later):
            return later
        now = later
    return now


def stop_backends(pids: list[int]) -> None:
    from retainwise.local import stack

    for pid in pids:
        stack.stop_group(pid)


def run_child(kind: str, args: argparse.Namespace, env: dict[str, str], extra: list[str]) -> dict:
    """One timed run in a fresh process, its address space capped so a 10M-row naive run fails
    with MemoryError instead of pushing a shared machine into the OOM killer."""
    import resource

    limit = int(args.memory_limit_gb * 2**30)
    script, env = __file__, {**os.environ, **env}
    if kind == "project_baseline":  # the baseline's code, through its own copy of this script
        script, kind = str(Path(args.baseline, "benchmarks", "throughput.py")), "project"
        env["PYTHONPATH"] = args.baseline
    argv = [sys.executable, script, "--child", kind, "--rows", str(args.rows), *extra]
    done = subprocess.run(
        argv,
        env=env,
        capture_output=True,
        text=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (limit, limit)),
    )
    if done.returncode != 0:
        tail = (done.stderr or done.stdout)[-1500:]
        if "MemoryError" in tail or "bad_alloc" in tail or "Cannot allocate" in tail:
            return {"error": f"could not run within {args.memory_limit_gb:g} GB of address space"}
        return {"error": tail}
    return json.loads(done.stdout.strip().splitlines()[-1])


def harness(args: argparse.Namespace) -> dict:
    import migrations
    from retainwise.adapters import aws
    from retainwise.config.settings import Settings

    path = ensure(args.rows)
    home = common.fresh_home(f"throughput-{args.rows}")
    pids: list[int] = []
    runs: dict[str, list[dict]] = {side: [] for side in args.sides.split(",")}
    try:
        env = start_backends(home, pids)
        os.environ.update(env)
        settings = Settings()
        migrations.upgrade(settings.db_url)
        common.train_champion(settings)
        export_model(settings, home / "model")
        s3 = aws.client("s3", settings)
        aws.ensure_resources(settings)
        s3.upload_file(str(path), settings.bucket, INPUT_KEY.format(rows=args.rows))
        script_args = [
            "--file",
            str(path),
            "--model-dir",
            str(home / "model"),
            "--out",
            str(home / "results.csv"),
        ]
        sides = [side for side in SIDES if side in args.sides.split(",")]
        idle = idle_backend_cpu(IDLE_SECONDS)
        common.log(f"backends' CPU s per second, idle: {idle}")
        for repeat in range(args.repeats):
            for side in sides[repeat % len(sides) :] + sides[: repeat % len(sides)]:  # rotate
                if side.startswith("project"):
                    cpu_before = settled_backend_cpu(idle)  # earlier runs' work done
                    result = run_child(side, args, side_env(side, args, env), script_args[:2])
                    if "cpu_s" in result:  # moto and Prefect worked for this run too
                        after = settled_backend_cpu(idle)  # with what the run left queued
                        spent = {k: v - cpu_before[k] for k, v in after.items()}
                        result["backend_cpu_s"] = sum(spent.values())
                        result["backend_cpu_by_process_s"] = {
                            k: round(v, 2) for k, v in spent.items()
                        }
                        result["cpu_s"] += result["backend_cpu_s"]
                else:
                    result = run_child(side, args, env, script_args)
                runs[side].append(result)
                common.log(f"{side:8} {result}")
    finally:
        stop_backends(pids)
    return {**summarise(args.rows, runs), "backend_idle_cpu_per_s": idle}


def api_calls(env: Mapping[str, str]) -> dict | None:
    """The counting Prefect server's calls so far (None if it does not count)."""
    from benchmarks import prefect_calls

    try:
        return prefect_calls.calls(env["PREFECT_API_URL"])
    except OSError:
        return None


def api_calls_since(env: Mapping[str, str], before: dict | None) -> dict | None:
    """The Prefect API calls of one run: total, and per route (most first)."""
    from benchmarks import prefect_calls

    after = api_calls(env)
    if before is None or after is None:
        return None
    spent = prefect_calls.per_run(prefect_calls.diff(after, before), 1)
    return {"total": spent["total"], "server_s": spent["server_s"], "by_route": spent["by_route"]}


SIDES = [
    "naive",
    "expert",
    "project",
    "project_baseline",
    "project_one_piece",
    "project_one_task",
    "project_staged",
]


def side_env(side: str, args: argparse.Namespace, env: dict[str, str]) -> dict[str, str]:
    """The project side's settings: the split's load gate, or no split at all."""
    if side == "project_one_piece":
        return {**env, "RETAINWISE_SPLIT_ABOVE_BYTES": str(2**62)}
    if side == "project_one_task":  # any whole file on the small path (in the flow, no task run)
        return {**env, "RETAINWISE_SMALL_UPLOAD_BYTES": str(2**40)}
    if side == "project_staged":  # every upload a task run per stage
        return {**env, "RETAINWISE_SMALL_UPLOAD_BYTES": "1"}
    if args.split_max_load is not None:
        return {**env, "RETAINWISE_SPLIT_MAX_LOAD": str(args.split_max_load)}
    return env


def summarise(rows: int, runs: dict[str, list[dict]]) -> dict:
    def side(results: list[dict]) -> dict:
        good = [r for r in results if "seconds" in r]
        if not good:
            return {
                "error": (results[-1].get("error", "no run completed") if results else "no run")[
                    -300:
                ]
            }
        seconds = common.median([r["seconds"] for r in good])
        return {
            "runs": len(good),
            "median_s": round(seconds, 2),
            "min_s": round(min(r["seconds"] for r in good), 2),
            "max_s": round(max(r["seconds"] for r in good), 2),
            "rows_per_s": round(rows / seconds),
            "cpu_s": round(common.median([r["cpu_s"] for r in good]), 2),
            "peak_rss_mb": round(max(r["peak_rss_mb"] for r in good)),
            **(
                {
                    "helper_cpu_s": round(common.median([r["helper_cpu_s"] for r in good]), 2),
                    "helper_rss_mb": max(r["helper_rss_mb"] or 0 for r in good),
                }
                if "helper_cpu_s" in good[0]
                else {}
            ),
            **project_figures(good),
        }

    def project_figures(good: list[dict]) -> dict:
        """A project side's time to COMPLETED, CPU per backend and Prefect API calls."""
        out: dict = {}
        completed = [r["completed_s"] for r in good if r.get("completed_s") is not None]
        if completed:
            out["completed_median_s"] = round(common.median(completed), 2)
        by_process = [
            r["backend_cpu_by_process_s"] for r in good if "backend_cpu_by_process_s" in r
        ]
        if by_process:
            out["backend_cpu_by_process_s"] = {
                k: round(common.median([b.get(k, 0.0) for b in by_process]), 2)
                for k in by_process[0]
            }
        calls = [r["api_calls"] for r in good if r.get("api_calls")]
        if calls:
            out["api_calls_per_run"] = common.median([c["total"] for c in calls])
            out["api_calls_by_route"] = calls[-1]["by_route"]
        return out

    result = {
        "benchmark": "throughput",
        "rows": rows,
        **{name: side(results) for name, results in runs.items()},
    }
    project = result.get("project", {})
    if "median_s" not in project:
        return result
    for anchor in ("naive", "expert"):
        if "median_s" in result.get(anchor, {}):
            result[f"ratio_vs_{anchor}"] = round(
                result[anchor]["median_s"] / project["median_s"], 3
            )
            result[f"cpu_ratio_vs_{anchor}"] = round(result[anchor]["cpu_s"] / project["cpu_s"], 3)
    if "completed_median_s" in project and "median_s" in result.get("naive", {}):
        # to COMPLETED: what the customer waits for (the stores after it excluded)
        result["completed_ratio_vs_naive"] = round(
            result["naive"]["median_s"] / project["completed_median_s"], 3
        )
    if "median_s" in result.get("project_baseline", {}):
        base = result["project_baseline"]
        result["speedup_vs_baseline"] = round(base["median_s"] / project["median_s"], 3)
        result["cpu_speedup_vs_baseline"] = round(base["cpu_s"] / project["cpu_s"], 3)
    for other in ("project_baseline", "project_one_task", "project_staged"):
        if "median_s" in result.get(other, {}) and "median_s" in result.get("naive", {}):
            result[f"{other}_ratio_vs_naive"] = round(
                result["naive"]["median_s"] / result[other]["median_s"], 3
            )
            result[f"{other}_cpu_ratio_vs_naive"] = round(
                result["naive"]["cpu_s"] / result[other]["cpu_s"], 3
            )
    if "median_s" in result.get("project_one_piece", {}):
        one = result["project_one_piece"]
        result["ratio_halves_vs_one_piece"] = round(one["median_s"] / project["median_s"], 3)
        result["cpu_ratio_halves_vs_one_piece"] = round(one["cpu_s"] / project["cpu_s"], 3)
    result["throughput_ratio_b_over_a"] = result.get("ratio_vs_naive")
    good = [r for r in runs["project"] if "seconds" in r]
    project["backend_cpu_s"] = round(common.median([r.get("backend_cpu_s", 0.0) for r in good]), 2)
    stages = [r["stages"] for r in good if r.get("stages")]
    if stages:
        busy = {k: common.median([s.get(k, 0.0) for s in stages]) for k in stages[0]}
        project["busy_s"] = {k: round(v, 2) for k, v in busy.items()}
        project["share_of_wall"] = {k: round(v / project["median_s"], 3) for k, v in busy.items()}
        total = sum(busy.values())
        project["validation_share_of_busy"] = (
            round(busy.get("validating", 0.0) / total, 3) if total else None
        )
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--memory-limit-gb",
        type=float,
        default=12,
        help="address-space cap per timed run (default 12)",
    )
    parser.add_argument(
        "--sides", default="naive,expert,project", help="comma-separated sides to run"
    )
    parser.add_argument(
        "--split-max-load",
        type=float,
        help="RETAINWISE_SPLIT_MAX_LOAD for the project side (e.g. 1000: split on a busy machine)",
    )
    parser.add_argument(
        "--baseline",
        help="a checkout of earlier code (e.g. `git worktree add DIR main`) for the side "
        "project_baseline, which runs the project's path with that code; DIR/benchmarks/"
        "throughput.py must take this script's child arguments (copy this one there)",
    )
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--model-dir", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args)
        return
    print(json.dumps(harness(args)))


if __name__ == "__main__":
    main()
