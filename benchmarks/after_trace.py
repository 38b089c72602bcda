"""Where the memory after COMPLETED goes: RSS every 10 ms around the work stored after it.

Installed in `throughput.py`'s project child when RETAINWISE_BENCH_AFTER_TRACE names a file:
wraps `flows.score_upload.store_after_completed` and the steps inside it, samples RSS every
10 ms while it runs (each sample labelled with the innermost step running), and with
RETAINWISE_BENCH_AFTER_TRACEMALLOC=1 also traces Python allocations from its start, with the
top sites snapshotted as each step ends. Writes one JSON object to the file:

    RETAINWISE_BENCH_AFTER_TRACE=/tmp/after.json python benchmarks/throughput.py \\
        --rows 1000000 --repeats 1 --sides project
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
import tracemalloc
from typing import Any


class Trace:
    def __init__(self) -> None:
        import psutil

        self.process = psutil.Process()
        self.phase: list[str] = []
        self.samples: list[tuple[float, float, str]] = []
        self.steps: list[dict[str, Any]] = []
        self.done = threading.Event()
        self.started = 0.0

    def rss(self) -> float:
        return float(self.process.memory_info().rss / 2**20)

    def sample(self) -> None:
        while not self.done.wait(0.01):
            label = self.phase[-1] if self.phase else "-"
            self.samples.append((time.perf_counter() - self.started, self.rss(), label))

    def wrap(self, owner: Any, name: str, label: str) -> None:
        inner = getattr(owner, name)

        @functools.wraps(inner)
        def traced(*args: Any, **kwargs: Any) -> Any:
            self.phase.append(label)
            before, started = self.rss(), time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                step = {
                    "step": label,
                    "rss_before_mb": round(before),
                    "rss_after_mb": round(self.rss()),
                    "s": round(time.perf_counter() - started, 3),
                }
                if tracemalloc.is_tracing():
                    current, peak = tracemalloc.get_traced_memory()
                    step["traced_mb"], step["traced_peak_mb"] = current >> 20, peak >> 20
                    top = tracemalloc.take_snapshot().statistics("lineno")[:6]
                    step["top"] = [f"{s.size >> 20} MB {s.traceback}" for s in top]
                self.steps.append(step)
                self.phase.pop()

        setattr(owner, name, traced)


def install(path: str) -> None:
    from flows import score_upload
    from retainwise.adapters import aws, customers
    from tasks import history

    trace = Trace()
    for owner, name in [
        (customers, "date_upload"),
        (customers, "record_explanations"),
        (customers, "contributions_json"),
        (customers, "_insert_many"),
        (customers, "_copy_upsert"),
        (history, "joined"),
        (aws, "csv_column"),
        (score_upload, "record_upload_figures"),
    ]:
        if hasattr(owner, name):
            trace.wrap(owner, name, name)
    outer = score_upload.store_after_completed

    def store_after_completed(*args: Any, **kwargs: Any) -> Any:
        if os.environ.get("RETAINWISE_BENCH_AFTER_TRACEMALLOC"):
            tracemalloc.start(8)
        trace.started, before = time.perf_counter(), trace.rss()
        sampler = threading.Thread(target=trace.sample, daemon=True)
        sampler.start()
        try:
            return outer(*args, **kwargs)
        finally:
            trace.done.set()
            sampler.join()
            tracemalloc.stop()
            peaks: dict[str, float] = {}
            for _, rss, label in trace.samples:
                peaks[label] = max(peaks.get(label, 0.0), rss)
            with open(path, "w") as out:
                json.dump(
                    {
                        "rss_before_mb": round(before),
                        "rss_peak_mb": round(max((s[1] for s in trace.samples), default=before)),
                        "peak_by_step_mb": {k: round(v) for k, v in peaks.items()},
                        "steps": trace.steps,
                        "course_mb": [
                            round(s[1]) for s in trace.samples[:: max(1, len(trace.samples) // 40)]
                        ],
                    },
                    out,
                    indent=1,
                )

    score_upload.store_after_completed = store_after_completed
