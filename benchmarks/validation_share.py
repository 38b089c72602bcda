"""Validation share: reading + validation as a fraction of the scoring path's wall time at 1M rows.

The scoring path is what the score-upload flow does between downloading the file and uploading the
outputs: read -> validate -> score -> report -> serialise results, rejects and report. Target: read
+ validate <= 25% of it. The upload is the Telco file (../shared/data) repeated to --rows with
unique ids, as a plain CSV or (--style european) with `;` and decimal commas, and a few faults so
the reject paths run: 1% unparseable tenure, 0.1% duplicate ids. Prints figures, then one JSON
line last. Exit status 1 when the share is over the target.

    .venv/bin/python benchmarks/validation_share.py [--rows 1000000] [--repeats 3] [--style plain]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from models.scoring import score_frame
from models.training import train
from retainwise.local.sample import synthetic_customers
from retainwise.uploads import validation
from retainwise.uploads.output import neutralise_formulas, neutralise_text_columns, to_csv_bytes
from retainwise.uploads.reading import read_upload
from retainwise.uploads.report import build_report, render_html

TELCO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "telco_churn.csv"
TARGET_SHARE = 0.25


def training_table() -> tuple[pd.DataFrame, str, str]:
    if TELCO.exists():
        return pd.read_csv(TELCO, dtype=str, keep_default_na=False), "customerID", "telco"
    return synthetic_customers(7000, seed=1).astype(str), "customer_id", "synthetic"


def upload_bytes(table: pd.DataFrame, id_column: str, rows: int, style: str = "plain") -> bytes:
    """`rows` customers with a few faulty rows, as a plain CSV or a European one (`;`, 29,85)."""
    rng = np.random.default_rng(0)
    big = table.drop(columns="Churn").sample(rows, replace=True, random_state=0)
    big = big.reset_index(drop=True)
    big[id_column] = [f"C{i:08d}" for i in range(rows)]
    dupes = rng.choice(rows, rows // 1000, replace=False)
    big.loc[dupes, id_column] = big[id_column].iloc[(dupes + 1) % rows].to_numpy()
    tenure = "tenure" if "tenure" in big else "Tenure Months"
    big.loc[rng.random(rows) < 0.01, tenure] = "unknown"
    if style == "plain":
        return big.to_csv(index=False).encode()
    for column in big.columns:
        if big[column].str.fullmatch(r"[\d. ]*").all():
            big[column] = big[column].str.replace(".", ",", regex=False)
    return big.to_csv(index=False, sep=";").encode()


class Timer:
    def __init__(self):
        self.seconds: dict[str, float] = {}

    def __call__(self, name, fn, *args):
        start = time.perf_counter()
        out = fn(*args)
        self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start
        return out


class LoadedModel:
    def __init__(self, trained):
        self.name, self.version = "benchmark", "1"
        self.pipeline, self.profile = trained.pipeline, trained.profile


def write_outputs(results, upload, report) -> int:
    """Serialise what write_results puts in S3 (without the network)."""
    safe = results.assign(customer_id=neutralise_formulas(results["customer_id"]))
    blobs = [
        to_csv_bytes(safe),
        to_csv_bytes(neutralise_text_columns(upload.rejects)),
        json.dumps(report, default=str).encode(),
        render_html(report).encode(),
    ]
    return sum(len(b) for b in blobs)


def run(rows: int, repeats: int, style: str) -> dict:
    table, id_column, source = training_table()
    model = LoadedModel(train(table, "Churn", id_column))
    data = upload_bytes(table, id_column, rows, style)
    validation._batch_definition()  # GX's one-off context build is start-up, not per upload
    gx_seconds = []
    original = validation.failing_rows

    def timed_failing_rows(*args):
        start = time.perf_counter()
        try:
            return original(*args)
        finally:
            gx_seconds.append(time.perf_counter() - start)

    validation.failing_rows = timed_failing_rows
    shares, runs = [], []
    for _ in range(repeats):
        t = Timer()
        text_table = t("read", read_upload, data, 1 << 40)
        upload = t("validate", validation.validate_upload, text_table, model.profile, 0.5)
        results = t(
            "score",
            score_frame,
            model.pipeline,
            model.profile,
            upload.accepted,
            upload.customer_ids,
        )
        report = t("report", build_report, upload, results, model, "benchmark")
        t("write", write_outputs, results, upload, report)
        total = sum(t.seconds.values())
        share = (t.seconds["read"] + t.seconds["validate"]) / total
        shares.append(share)
        runs.append(
            {
                **{k: round(v, 3) for k, v in t.seconds.items()},
                "total": round(total, 3),
                "gx": round(gx_seconds[-1], 3),
                "rows_rejected": upload.rows_rejected,
            }
        )
        print(
            f"rows {rows:,} ({len(data) / 1e6:.0f} MB, {source}, {style}): "
            + ", ".join(f"{k} {v:.2f} s" for k, v in t.seconds.items())
            + f"; total {total:.2f} s; "
            f"of which GX {gx_seconds[-1]:.2f} s; rejected {upload.rows_rejected:,}"
        )
        print(
            f"  read + validate = {share:.1%} of the scoring path "
            f"(target <= {TARGET_SHARE:.0%}); read + validate + report = "
            f"{(t.seconds['read'] + t.seconds['validate'] + t.seconds['report']) / total:.1%}"
        )
    share = float(np.median(shares))
    return {
        "benchmark": "validation_share",
        "rows": rows,
        "style": style,
        "bytes": len(data),
        "source": source,
        "repeats": repeats,
        "share": round(share, 4),
        "target": TARGET_SHARE,
        "meets_target": share <= TARGET_SHARE,
        "runs": runs,
        "python": platform.python_version(),
        "pandas": pd.__version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument(
        "--style",
        choices=["plain", "european"],
        default="plain",
        help="plain: comma, decimal point; european: semicolon, decimal comma",
    )
    args = parser.parse_args(argv)
    summary = run(args.rows, args.repeats, args.style)
    print(json.dumps(summary))
    return 0 if summary["meets_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
