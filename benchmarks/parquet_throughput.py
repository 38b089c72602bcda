"""Parquet against CSV on the whole-file scoring path: the same Telco-schema rows as a CSV file
and as a Parquet file (typed as Arrow infers them from the CSV, zstd, row groups of 128k rows),
each read -> validated -> scored -> written by `score_file` in this process, alternating; and
the Parquet file as the CSV blocks the chunked path reads (`parquet.as_csv_source`), joined.

Prints one JSON line last: seconds and rows/s per format (median of --repeats), the file sizes,
and whether the probabilities are identical.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from benchmarks.common import log, median
from benchmarks.data import ensure, load_telco
from models.training import train
from retainwise.uploads import parquet
from retainwise.uploads.files import LocalFile
from retainwise.uploads.pipeline import score_file
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.reading import Limits


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
    results: dict[str, pd.DataFrame] = {}
    for _ in range(args.repeats):
        for name, body in inputs.items():
            started = time.perf_counter()
            scored = score_file(body(), model, policy)
            seconds[name].append(time.perf_counter() - started)
            results[name] = scored.results
            log(f"{name}: {seconds[name][-1]:.1f} s")
    summary = {
        "rows": args.rows,
        "bytes": {"csv": len(csv), "parquet": len(data)},
        "seconds": {name: round(median(s), 2) for name, s in seconds.items()},
        "rows_per_second": {name: round(args.rows / median(s)) for name, s in seconds.items()},
        "identical_probabilities": all(
            results["csv"]["churn_probability"].equals(r["churn_probability"])
            for r in results.values()
        ),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
