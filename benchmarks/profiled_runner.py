"""The warm runner with each flow run it executes profiled, for benchmarks/latency.py --profile.

    RETAINWISE_BENCH_PROFILE_DIR=D python -m benchmarks.profiled_runner [...]   (serve's arguments)

Runs `retainwise.runtime.serve` unchanged except that each worker child wraps `worker.execute`
in one cProfile.Profile kept across its runs, and writes it to D/runner-<pid>.prof after every
run (pstats format; `totals` reads them all). Wall-clock timer, so time spent waiting on the
Prefect API shows under the calls that waited.
"""

from __future__ import annotations

import cProfile
import os
import pstats
import sys
import time
from pathlib import Path

# what a score-upload run does, by the function whose cumulative time it is
COMPONENTS = {
    "flow run, whole (engine included)": ("flow_engine.py", "run_flow_sync"),
    "engine: begin run (Running state, name, context)": ("flow_engine.py", "begin_run"),
    "engine: set final state": ("flow_engine.py", "set_state"),
    "is_small (a read and a HEAD)": ("score_upload.py", "is_small"),
    "the small path (in the flow run)": ("score_upload.py", "score_small_upload"),
    "claim-upload": ("status.py", "claim_upload"),
    "check-upload (S3 HEAD)": ("uploads.py", "check_upload"),
    "load champion (cached)": ("scoring.py", "load_champion"),
    "tag-run": ("status.py", "tag_run"),
    "score-whole-file": ("uploads.py", "score_s3_object"),
    "  of which pipeline.score_file": ("pipeline.py", "score_file"),
    "markdown artifact": ("score_upload.py", "publish_summary"),
    "finish-upload": ("status.py", "finish_upload"),
    "record-upload-figures (monitoring; on the background thread, not profiled, from round 3)": (
        "monitoring.py",
        "record_upload_figures",
    ),
    "shadow score": ("shadow.py", "shadow_score"),
    "  of which validate (Great Expectations)": ("validation.py", "validate_upload"),
    "  of which the actions list": ("scoring.py", "actions_csv"),
    "S3 calls (botocore)": ("botocore/client.py", "_make_api_call"),
    "database statements (SQLAlchemy)": ("engine/base.py", "_execute_context"),
    "database commits": ("engine/base.py", "_commit_impl"),
    "logging: records through handlers": ("logging/__init__.py", "callHandlers"),
    "after COMPLETED, background thread (CPU clock only)": (
        "score_upload.py",
        "store_after_completed",
    ),
    "  of which explanations stored": ("adapters/customers.py", "record_explanations"),
    "  of which kept scores stored": ("adapters/customers.py", "store_kept_scores"),
    "  of which monitoring figures": ("tasks/monitoring.py", "record_upload_figures"),
    "keep_claim (refresher thread join)": ("status.py", "keep_claim"),
    "engine: suspension observer (events/out subscription)": (
        "_flow_run_suspension.py",
        "observe_flow_run_suspension",
    ),
    "engine: a new API client per run (its SSL context)": ("ssl.py", "create_default_context"),
    "task engine: run_task_sync (all task runs)": ("task_engine.py", "run_task_sync"),
    "task engine: account tag concurrency slot (all)": ("concurrency/_sync.py", "concurrency"),
    "  of which acquire": ("concurrency/_sync.py", "acquire_concurrency_slots_with_lease"),
    "  of which release": ("concurrency/_sync.py", "release_concurrency_slots_with_lease"),
    "task engine: set_state (all task runs)": ("task_engine.py", "set_state"),
    "HTTP to the Prefect API (httpx send)": ("_client.py", "send"),
    "logs flushed to the API": ("handlers.py", "flush"),
    "events emitted": ("utilities.py", "emit_event"),
}


def profiled(execute, directory: Path):
    # RETAINWISE_BENCH_PROFILE_CLOCK=cpu: the run's thread's CPU seconds instead of wall time
    # (waits on the API, S3 and the database then count for nothing)
    cpu = os.getenv("RETAINWISE_BENCH_PROFILE_CLOCK") == "cpu"
    profiler = cProfile.Profile(time.thread_time) if cpu else cProfile.Profile()

    def run(flow, flow_run) -> None:
        profiler.enable()
        try:
            execute(flow, flow_run)
        finally:
            profiler.disable()
            partial = directory / f"runner-{os.getpid()}.prof.part"
            profiler.dump_stats(partial)  # then renamed, so a reader never sees half a file
            partial.replace(directory / f"runner-{os.getpid()}.prof")

    return run


def profiled_background(logged, directory: Path):
    """With the CPU clock: the work after COMPLETED (tasks.background) profiled too, on its own
    thread's clock, into D/runner-<pid>-after.prof (the wall clock would count the run's thread
    running beside it)."""
    profiler = cProfile.Profile(time.thread_time)

    def run(work) -> None:
        profiler.enable()
        try:
            logged(work)
        finally:
            profiler.disable()
            partial = directory / f"runner-{os.getpid()}-after.prof.part"
            profiler.dump_stats(partial)
            partial.replace(directory / f"runner-{os.getpid()}-after.prof")

    return run


def totals(directory: Path) -> dict[str, tuple[float, int]]:
    """(cumulative wall seconds, calls) per component so far, over every child's profile."""
    files = [str(p) for p in directory.glob("runner-*.prof")]
    if not files:
        return {}
    stats = pstats.Stats(*files).stats  # (file, line, name) -> (cc, nc, tt, ct, callers)
    out = {}
    for label, (file_end, name) in COMPONENTS.items():
        found = [
            (entry[3], entry[1])
            for (file, _, function), entry in stats.items()
            if function == name and file.endswith(file_end)
        ]
        if found:  # e.g. a sync and an async method of one name: the one that ran longest
            out[label] = max(found)
    return out


WHOLE = "flow run, whole (engine included)"


def per_run(after: dict, before: dict, runs: int) -> dict[str, dict[str, float]]:
    """Wall seconds and calls per flow run of each component between two `totals`; divided by
    the runs the profiles hold (a run still in its tail is not in them yet), else by `runs`."""
    runs = (after.get(WHOLE, (0, 0))[1] - before.get(WHOLE, (0, 0))[1]) or runs
    out = {}
    for label, (seconds, calls) in after.items():
        was_s, was_n = before.get(label, (0.0, 0))
        out[label] = {
            "s_per_run": round((seconds - was_s) / runs, 4),
            "calls_per_run": round((calls - was_n) / runs, 2),
        }
    return out


def main() -> None:
    from retainwise.runtime import serve, worker

    directory = Path(os.environ["RETAINWISE_BENCH_PROFILE_DIR"])
    directory.mkdir(parents=True, exist_ok=True)
    worker.execute = profiled(worker.execute, directory)
    if os.getenv("RETAINWISE_BENCH_PROFILE_CLOCK") == "cpu":
        from tasks import background

        background._logged = profiled_background(background._logged, directory)
    serve.main(sys.argv[1:])


if __name__ == "__main__":
    main()
