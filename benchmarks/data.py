"""Benchmark inputs: Telco-schema customer tables of 10k to 10M rows, streamed to disk in blocks.

Rows are resampled from ../shared/data/telco_churn.csv with small numeric jitter and fresh unique
ids (fixed seed), so every size has the real columns, category mix and blank TotalCharges cells.

    python benchmarks/data.py                 # 10k, 100k, 1M (CSV + gzip)
    python benchmarks/data.py --rows 10000000 # 10M rows, ~1.5 GB CSV, little memory
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
TELCO = next(
    (
        p / "shared" / "data" / "telco_churn.csv"
        for p in REPO.parents  # or a worktree's
        if (p / "shared" / "data" / "telco_churn.csv").exists()
    ),
    REPO.parent / "shared" / "data" / "telco_churn.csv",
)
DATA_DIR = HERE / "data"
SEED = 2024
BLOCK = 200_000
SIZES = {"10k": 10_000, "100k": 100_000, "1m": 1_000_000, "10m": 10_000_000}
ID, TARGET = "customerID", "Churn"


def label(rows: int) -> str:
    for name, size in SIZES.items():
        if size == rows:
            return name
    return str(rows)


def csv_path(rows: int, gz: bool = False) -> Path:
    return DATA_DIR / f"telco_{label(rows)}.csv{'.gz' if gz else ''}"


def load_telco() -> pd.DataFrame:
    if not TELCO.exists():
        sys.exit(f"the Telco data set is not at {TELCO}")
    return pd.read_csv(TELCO, dtype=str, keep_default_na=False)


def jittered_block(
    source: pd.DataFrame, start: int, rows: int, rng: np.random.Generator
) -> pd.DataFrame:
    """`rows` resampled rows with ids C{start..}; charges move by ~1%, tenure by at most a month."""
    block = source.iloc[rng.integers(0, len(source), rows)].reset_index(drop=True)
    block[ID] = [f"C{i:09d}" for i in range(start, start + rows)]
    tenure = block["tenure"].astype(int).to_numpy() + rng.integers(-1, 2, rows)
    block["tenure"] = np.clip(tenure, 0, 72).astype(str)
    monthly = block["MonthlyCharges"].astype(float).to_numpy()
    block["MonthlyCharges"] = np.round(monthly * rng.normal(1, 0.01, rows), 2).astype(str)
    blank = block["TotalCharges"].str.strip().eq("").to_numpy()
    total = pd.to_numeric(block["TotalCharges"], errors="coerce").to_numpy()
    total = np.round(total * rng.normal(1, 0.01, rows), 2).astype(str)
    block["TotalCharges"] = np.where(blank, " ", total)
    return block.drop(columns=[TARGET])


def generate(rows: int, gzip_too: bool = True) -> dict:
    """Write the CSV (and its gzip twin) block by block; memory stays at one block."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    source, rng = load_telco(), np.random.default_rng(SEED)
    target, started = csv_path(rows), time.monotonic()
    partial = target.with_suffix(".csv.partial")
    gz_partial = target.with_suffix(".csv.gz.partial")
    with (
        open(partial, "wb") as out,
        (
            gzip.open(gz_partial, "wb", compresslevel=4) if gzip_too else open("/dev/null", "wb")
        ) as gz_out,
    ):
        for start in range(0, rows, BLOCK):
            block = jittered_block(source, start, min(BLOCK, rows - start), rng)
            data = block.to_csv(index=False, header=start == 0).encode()
            out.write(data)
            gz_out.write(data)
    partial.rename(target)
    if gzip_too:
        gz_partial.rename(csv_path(rows, gz=True))
    return {
        "rows": rows,
        "path": str(target),
        "mb": round(target.stat().st_size / 1e6, 1),
        "seconds": round(time.monotonic() - started, 1),
    }


def ensure(rows: int, gzip_too: bool = False) -> Path:
    """The CSV for `rows`, generated if absent (benchmarks call this)."""
    path = csv_path(rows)
    if not path.exists() or (gzip_too and not csv_path(rows, gz=True).exists()):
        generate(rows, gzip_too)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, action="append", help="row count (repeatable); default 10k, 100k and 1M"
    )
    parser.add_argument("--no-gzip", action="store_true")
    args = parser.parse_args(argv)
    results = [
        generate(rows, not args.no_gzip) for rows in args.rows or [10_000, 100_000, 1_000_000]
    ]
    print(json.dumps({"generated": results}))


if __name__ == "__main__":
    main()
