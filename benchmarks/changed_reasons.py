"""What changed, named in the reasons (issue 19): the cost of reading the customers' earlier
explanations when every explained row rose.

`python benchmarks/changed_reasons.py [--rows 100000] [--repeat 3] [--store sqlite|postgresql]`

Upload 1: `--rows` jittered Telco rows through the chunked path (`streaming.score_stream`) with
the upload's ContactList, every row explained (as if each customer had been explained in some
earlier upload); its explanations are stored with `customers.record_explanations` in a real
store (a SQLite file, or a throwaway PostgreSQL database). Upload 2: the same rows with every
contract moved to month-to-month, and a previous upload at half of upload 1's probabilities, so
every row is `up` and every explained row reads its earlier explanation (the worst case).
Upload 2 runs `--repeat` times in pairs, without the lookup (the History gives no `earlier`:
today's reasons) and with it (one read per chunk and one for the pool through
`customers.earlier_explanations`); medians of wall and CPU (this process, all threads) and of the
list's own CPU by step (benchmarks/reasons.Counted). One JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.reasons import BLOCK, CHUNK_ROWS, Counted, champion, timed  # noqa: E402


class BenchHistory:
    """uploads.contacts.History for the benchmark: a fixed previous upload; explanations kept
    in memory (upload 1); `earlier` through the real adapter, counted, or absent (None)."""

    def __init__(self, previous, engine=None, lookup: bool = False):
        self.before, self.engine, self.kept = previous, engine, []
        self.reads, self.looked_up = 0, 0
        if not lookup:
            self.earlier = None  # ContactList then explains as before: no earlier read

    def previous(self):
        return self.before

    def earlier(self, ids):
        from retainwise.adapters import customers

        self.reads += 1
        self.looked_up += len(ids)
        return customers.earlier_explanations(self.engine, "acme", ids.astype(str), "upload-2")

    def scored(self, results) -> None:
        pass

    def explained(self, ids, explanation, X) -> None:
        self.kept.append((ids, explanation, X))


def upload_data(rows: int, month_to_month: bool) -> bytes:
    """`rows` jittered Telco rows (the same each time); every contract month-to-month if asked."""
    from benchmarks.data import jittered_block, load_telco

    source, rng = load_telco(), np.random.default_rng(2024)
    parts = []
    for start in range(0, rows, CHUNK_ROWS):
        block = jittered_block(source, start, min(CHUNK_ROWS, rows - start), rng)
        if month_to_month:
            block["Contract"] = "Month-to-month"
        parts.append(block.to_csv(index=False, header=start == 0))
    return "".join(parts).encode()


def run(trained, data: bytes, history, top_n: int | None = None):
    """The chunked path with the upload's ContactList as its tap, written at the end (`top_n`:
    the rows explained, default the setting's); wall, CPU, the list's counted CPU, its CSV."""
    from retainwise.uploads.contacts import ContactList
    from retainwise.uploads.policy import ScoringPolicy
    from retainwise.uploads.streaming import score_stream

    policy = ScoringPolicy(max_rejected_share=0.5)
    if top_n is not None:
        policy = replace(policy, explain_top_n=top_n)
    blocks = [data[i : i + BLOCK] for i in range(0, len(data), BLOCK)]
    written = io.BytesIO()
    with ContactList(trained, policy, history) as contacts:
        counted = Counted(contacts)

        def scored() -> int:
            score_stream(iter(blocks), trained, policy, io.BytesIO(), io.BytesIO(), counted)
            return counted.write_to(written)

        _, wall, cpu = timed(scored)
    return wall, cpu, counted, written.getvalue()


def store_first(engine, history: BenchHistory) -> tuple[int, float]:
    """Upload 1's explanations stored as after its COMPLETED; rows and seconds."""
    from retainwise.adapters import customers

    upload = customers.UploadScored(
        "acme", "upload-1", "churn", "1", datetime(2027, 1, 1, tzinfo=UTC)
    )
    started, stored = time.perf_counter(), 0
    for ids, explanation, X in history.kept:
        stored += customers.record_explanations(engine, upload, ids, explanation, X)
    return stored, time.perf_counter() - started


def counts(actions_csv: bytes) -> dict:
    import pyarrow.csv as pa_csv

    table = pa_csv.read_csv(io.BytesIO(actions_csv)).to_pandas()
    reasons = table[["reason_1", "reason_2", "reason_3"]].fillna("")
    return {
        "explained_rows": int((reasons["reason_1"] != "").sum()),
        "up_rows": int((table["risk_change"] == "up").sum()),
        "rows_naming_a_change": int(reasons["reason_1"].str.contains(", was ").sum()),
    }


def measure(trained, engine, rows: int, repeat: int) -> dict:
    import pyarrow as pa

    first = BenchHistory(None)
    _, _, _, listed = run(trained, upload_data(rows, False), first, top_n=rows)
    stored, store_seconds = store_first(engine, first)
    table = pa.csv.read_csv(io.BytesIO(listed))
    previous = pa.table(
        {
            "customer_id": table["customer_id"].cast(pa.string()),
            "probability": pa.compute.multiply(table["churn_probability"], 0.5),
        }
    )
    data = upload_data(rows, True)
    run(trained, data, BenchHistory(previous, engine, lookup=True))  # warm
    pairs, seen = [], {}
    for _ in range(repeat):
        plain = run(trained, data, BenchHistory(previous, engine, lookup=False))
        looking = BenchHistory(previous, engine, lookup=True)
        found = run(trained, data, looking)
        pairs.append((plain, found))
        seen = {
            **counts(found[3]),
            "reads": looking.reads,
            "rows_looked_up": looking.looked_up,
            "without_lookup_naming_a_change": counts(plain[3])["rows_naming_a_change"],
        }

    def median(side: int, pick) -> float:
        return round(float(np.median([pick(pair[side]) for pair in pairs])), 3)

    figure = {"figure": f"changed_reasons_{rows}", "rows": rows, "repeat": repeat}
    for side, name in ((0, "without_lookup"), (1, "with_lookup")):
        figure[f"{name}_wall"] = median(side, lambda r: r[0])
        figure[f"{name}_cpu"] = median(side, lambda r: r[1])
        figure[f"{name}_actions_cpu"] = median(side, lambda r: r[2].thread_cpu)
        figure[f"{name}_actions_cpu_prepare"] = median(side, lambda r: r[2].cpu["prepare"])
        figure[f"{name}_actions_cpu_write_to"] = median(side, lambda r: r[2].cpu["write_to"])
    figure["pairs_extra_cpu"] = [round(f[1] - p[1], 3) for p, f in pairs]
    figure["pairs_extra_actions_cpu"] = [
        round(f[2].thread_cpu - p[2].thread_cpu, 3) for p, f in pairs
    ]
    figure.update(seen, first_upload_explanations_stored=stored)
    figure["store_seconds"] = round(store_seconds, 2)
    return figure


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--store", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    import migrations
    from retainwise.adapters.db import make_engine

    load = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as directory:
        trained = champion(Path(directory))
        if args.store == "sqlite":
            url = f"sqlite:///{directory}/store.db"
            migrations.upgrade(url)
            figure = measure(trained, make_engine(url), args.rows, args.repeat)
        else:
            from tests.conftest import throwaway_postgres  # the tests' throwaway database

            with throwaway_postgres("retainwise_changed_bench") as url:
                migrations.upgrade(url)
                engine = make_engine(url)
                figure = measure(trained, engine, args.rows, args.repeat)
                engine.dispose()
    figure.update(store=args.store, load_average_at_start=load)
    figure["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print(json.dumps(figure), flush=True)


if __name__ == "__main__":
    main()
