"""Parquet against CSV on the whole-file scoring path: the same Telco-schema rows as a CSV file
and as a Parquet file (typed as Arrow infers them from the CSV, zstd, row groups of 128k rows),
each read -> validated -> scored -> written by `score_file` in this process, alternating; and
the Parquet file as the CSV blocks the chunked path reads (`parquet.as_csv_source`), joined.

Prints one JSON line last: wall and CPU seconds, rows/s and speed against the CSV (median of
--repeats) per format, the file sizes, and whether the probabilities are identical.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `python benchmarks/x.py`

import pandas as pd  # noqa: E402
import pyarrow.csv as pa_csv  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from benchmarks.common import log, median  # noqa: E402
from benchmarks.data import ensure, load_telco  # noqa: E402
from models.training import train  # noqa: E402
from retainwise.uploads import parquet  # noqa: E402
from retainwise.uploads.files import LocalFile  # noqa: E402
from retainwise.uploads.pipeline import score_file  # noqa: E402
from retainwise.uploads.policy import ScoringPolicy  # noqa: E402
from retainwise.uploads.reading import Limits  # noqa: E402


def parquet_of(csv_path: Path) -> Path:
    path = csv_path.with_suffix(".parquet")
    pq.write_table(pa_csv.read_csv(csv_path), path, compression="zstd", row_group_size=131072)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args(argv)
    path = ensure(args.rows)
    csv, parquet_path = path.read_bytes(), parquet_of(path)
    data = parquet_path.read_bytes()
    policy = ScoringPolicy(Limits(max_bytes=2 * len(csv) + 2**20))
    log("training on Telco")
    model = train(load_telco(), "Churn", "customerID")
    inputs = {
        "csv": lambda: csv,
        "parquet": lambda: data,
        "parquet_as_csv_blocks": lambda: b"".join(
            parquet.as_csv_source(LocalFile(parquet_path), policy.limits).blocks()
        ),
    }
    score_file(b"".join(csv.splitlines(keepends=True)[:2001]), model, policy)  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in inputs}
    cpu: dict[str, list[float]] = {name: [] for name in inputs}
    results: dict[str, pd.DataFrame] = {}
    for _ in range(args.repeats):
        for name, body in inputs.items():
            started, cpu_started = time.perf_counter(), time.process_time()
            scored = score_file(body(), model, policy)
            seconds[name].append(time.perf_counter() - started)
            cpu[name].append(time.process_time() - cpu_started)
            results[name] = scored.results
            log(f"{name}: {seconds[name][-1]:.1f} s, {cpu[name][-1]:.1f} CPU s")
    csv_s = median(seconds["csv"])
    summary = {
        "rows": args.rows,
        "bytes": {"csv": len(csv), "parquet": len(data)},
        "seconds": {name: round(median(s), 2) for name, s in seconds.items()},
        "cpu_seconds": {name: round(median(s), 2) for name, s in cpu.items()},
        # the CSV of the same rows, measured in this run, is the baseline
        "speed_vs_csv": {name: round(csv_s / median(s), 2) for name, s in seconds.items()},
        "rows_per_second": {name: round(args.rows / median(s)) for name, s in seconds.items()},
        "identical_probabilities": all(
            results["csv"]["churn_probability"].equals(r["churn_probability"])
            for r in results.values()
        ),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
