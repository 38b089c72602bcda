"""Where the chunked path's memory goes: `streaming.score_stream` on a local file, RSS sampled.

No S3, no Prefect server: the file is read in the same 4 MiB blocks `aws.iter_blocks` gives, the
results and rejects go to temporary files. The process imports what the flow's process imports
(the flow module, the registry, GX's context) and loads a champion trained on Telco with its
compiled trees, so the baseline matches a worker's. A thread samples RSS every 10 ms and Arrow's
allocated bytes with it; prints baseline, peak, what the peak is above the baseline, wall and
CPU seconds, as one JSON line last. For a quick look at one change at a time:

    python benchmarks/stream_memory.py --rows 1000000 [--chunk-mib 8] [--trace]

`--trace` adds the top Python allocation sites at the peak (tracemalloc; slows the run).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace

from common import cpu_seconds, fresh_home, log, peak_rss_mb  # noqa: E402  (repo on sys.path)


def sampler(stop: threading.Event, samples: list[tuple[float, float, float]]) -> None:
    import psutil
    import pyarrow as pa

    process, started = psutil.Process(), time.perf_counter()
    while not stop.is_set():
        samples.append(
            (
                time.perf_counter() - started,
                process.memory_info().rss / 2**20,
                pa.total_allocated_bytes() / 2**20,
            )
        )
        time.sleep(0.01)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument(
        "--chunk-mib", type=float, default=None, help="chunk size (default: Settings.chunk_bytes)"
    )
    parser.add_argument("--trace", action="store_true")
    parser.add_argument(
        "--home",
        help="a home whose MLflow store has the champion (else one is "
        "trained in a child process, so training stays out of this one's RSS)",
    )
    parser.add_argument("--train-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import flows.score_upload  # noqa: F401  (what the worker's process holds)
    from benchmarks import common
    from benchmarks.data import ensure
    from retainwise.adapters import mlflow_registry as registry
    from retainwise.config.settings import Settings
    from retainwise.uploads import streaming
    from retainwise.uploads.policy import ScoringPolicy
    from retainwise.uploads.reading import Limits
    from retainwise.uploads.validation import _batch_definition

    path = ensure(args.rows)
    if args.train_only:
        common.train_champion(Settings(home=args.home))
        return
    if not args.home:
        args.home = str(fresh_home(f"stream-memory-{args.rows}"))
        subprocess.run(
            [
                sys.executable,
                __file__,
                "--train-only",
                "--home",
                args.home,
                "--rows",
                str(args.rows),
            ],
            check=True,
            capture_output=True,
        )
    settings = Settings(home=args.home)
    model = registry.load_champion(common.MODEL, settings)
    _batch_definition()
    chunk = int(args.chunk_mib * 2**20) if args.chunk_mib else settings.chunk_bytes
    if args.trace:
        import tracemalloc

        tracemalloc.start(12)

    def blocks():
        with open(path, "rb") as handle:
            while block := handle.read(4 * 2**20):
                yield block

    samples: list[tuple[float, float, float]] = []
    stop = threading.Event()
    baseline = peak_rss_mb()
    thread = threading.Thread(target=sampler, args=(stop, samples), daemon=True)
    thread.start()
    started, cpu = time.perf_counter(), cpu_seconds()
    with tempfile.TemporaryFile() as results, tempfile.TemporaryFile() as rejects:
        policy = ScoringPolicy.from_settings(settings)
        policy = replace(policy, limits=Limits(max_bytes=16 * 2**30), chunk_bytes=chunk)
        counts, totals = streaming.score_stream(blocks(), model, policy, results, rejects)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        results_mb = results.tell() / 2**20
    stop.set()
    thread.join()
    trace = None
    if args.trace:
        import tracemalloc

        current, peak = tracemalloc.get_traced_memory()
        trace = {"python_peak_mb": round(peak / 2**20, 1)}
        tracemalloc.stop()
    peak_at = max(samples, key=lambda s: s[1]) if samples else (0, 0, 0)
    result = {
        "benchmark": "stream_memory",
        "rows": args.rows,
        "chunk_mib": chunk / 2**20,
        "rows_total": counts.rows_total,
        "rows_scored": counts.rows_scored,
        "rows_rejected": counts.rows_rejected,
        "results_mb": round(results_mb, 1),
        "baseline_rss_mb": round(baseline),
        "peak_rss_mb": round(peak_rss_mb()),
        "peak_above_baseline_mb": round(peak_rss_mb() - baseline),
        "arrow_peak_mb": round(max((s[2] for s in samples), default=0)),
        "arrow_at_rss_peak_mb": round(peak_at[2]),
        "rss_peak_at_s": round(peak_at[0], 1),
        "seconds": round(seconds, 2),
        "cpu_s": round(cpu, 2),
        "busy_s": {k: round(v, 2) for k, v in totals.seconds.items()},
        "trace": trace,
        "pid": os.getpid(),
    }
    log(" ".join(f"{t:.0f}s:{r:.0f}" for t, r, _ in samples[:: max(1, len(samples) // 40)]))
    print(json.dumps(result))


if __name__ == "__main__":
    sys.exit(main())
