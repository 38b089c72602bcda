"""Where a whole run's memory goes: RSS (anonymous and file-backed apart) and Arrow's allocated
bytes every 50 ms over the project child's flow, each sample labelled with the step running.

Installed in `throughput.py`'s project child when RETAINWISE_BENCH_RUN_TRACE names a file. The
steps are the chunks (`score_stream`), the actions list's end (`finish_actions`: the pool's
reasons, the runs' merge and CSV written straight to S3), COMPLETED and the work after it. With
RETAINWISE_BENCH_RUN_TRACEMALLOC=1, Python allocations are traced from the flow's start and the
top sites snapshotted as each step ends (slow). One JSON object in the file, rewritten as each
step ends:

    RETAINWISE_BENCH_RUN_TRACE=/tmp/run.json python benchmarks/throughput.py \\
        --rows 4000000 --repeats 1 --sides project
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
import tracemalloc
from typing import Any

FIELDS = ("RssAnon", "RssFile", "RssShmem")


def status_mb() -> dict[str, float]:
    """This process's RSS split by kind (/proc/self/status), MB."""
    found: dict[str, float] = {}
    with open("/proc/self/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            if name in FIELDS:
                found[name] = int(value.split()[0]) / 1024
    return found


class RunTrace:
    def __init__(self, path: str) -> None:
        import pyarrow as pa

        self.path, self.pa = path, pa
        self.phase: list[str] = []
        self.samples: list[dict[str, Any]] = []
        self.steps: list[dict[str, Any]] = []
        self.done = threading.Event()
        self.started = time.perf_counter()
        self.thread = threading.Thread(target=self.sample_every, daemon=True)

    def now(self) -> dict[str, Any]:
        kinds = status_mb()
        return {
            "t": round(time.perf_counter() - self.started, 2),
            "rss": round(sum(kinds.values())),
            "anon": round(kinds.get("RssAnon", 0)),
            "file": round(kinds.get("RssFile", 0)),
            "arrow": round(self.pa.total_allocated_bytes() / 2**20),
            "step": self.phase[-1] if self.phase else "-",
        }

    def sample_every(self) -> None:
        while not self.done.wait(0.05):
            self.samples.append(self.now())

    def wrap(self, owner: Any, name: str, label: str) -> None:
        inner = getattr(owner, name)

        @functools.wraps(inner)
        def traced(*args: Any, **kwargs: Any) -> Any:
            self.phase.append(label)
            before, started, first = self.now(), time.perf_counter(), len(self.samples)
            try:
                return inner(*args, **kwargs)
            finally:
                during = self.samples[first:] or [before]
                step: dict[str, Any] = {
                    "step": label,
                    "before": before,
                    "after": self.now(),
                    "peak_rss": max(s["rss"] for s in during),
                    "peak_anon": max(s["anon"] for s in during),
                    "peak_file": max(s["file"] for s in during),
                    "peak_arrow": max(s["arrow"] for s in during),
                    "s": round(time.perf_counter() - started, 2),
                }
                if tracemalloc.is_tracing():
                    current, peak = tracemalloc.get_traced_memory()
                    step["traced_mb"], step["traced_peak_mb"] = current >> 20, peak >> 20
                    top = tracemalloc.take_snapshot().statistics("lineno")[:8]
                    step["top"] = [f"{s.size >> 20} MB {s.traceback}" for s in top]
                self.steps.append(step)
                self.phase.pop()
                self.write()

        setattr(owner, name, traced)

    def write(self) -> None:
        every = max(1, len(self.samples) // 60)
        with open(self.path, "w") as out:
            json.dump(
                {
                    "peak": max(self.samples, key=lambda s: s["rss"], default=None),
                    "steps": self.steps,
                    "course": self.samples[::every],
                },
                out,
                indent=1,
            )


def install(path: str) -> RunTrace:
    from flows import score_upload
    from retainwise.adapters import customers
    from retainwise.uploads import actions, scoring, streaming
    from tasks import history, monitoring

    trace = RunTrace(path)
    for owner, name in [
        (streaming, "score_stream"),
        (scoring, "finish_actions"),
        (actions.ActionsBuilder, "_explain_pool"),
        (actions.ActionsBuilder, "write_csv"),
        (scoring, "complete"),
        (score_upload, "complete"),
        (score_upload, "store_after_completed"),
        (history.CustomerHistory, "completed"),
        (customers, "record_explanations"),
        (customers, "contributions_json"),
        (customers, "_insert_many"),
        (customers, "_copy_upsert"),
        (history, "joined"),
        (customers, "date_upload"),
        (score_upload, "record_upload_figures"),
        (monitoring.aws, "csv_column"),
    ]:
        if hasattr(owner, name):
            trace.wrap(owner, name, f"{getattr(owner, '__name__', owner)}.{name}")
    if os.environ.get("RETAINWISE_BENCH_RUN_TRACEMALLOC"):
        tracemalloc.start(8)
    trace.thread.start()
    return trace
