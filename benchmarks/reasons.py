"""Reasons (issue 19): their cost per explained row, the share they add to the scoring path, and
the `/customers` read latency on the storage adapter.

`python benchmarks/reasons.py [--rows 100000 1000000] [--uploads 20] [--customers 100000]
[--repeat N]`
prints one JSON line per figure, wall seconds beside CPU seconds (this process, all threads):
- `reasons_cost_per_row`: exact contributions + reasons in words for 20,000 Telco rows (after
  the per-tree tables are built, once per loaded model: `tables_build_cpu`);
- `reasons_share_<rows>`: the chunked scoring path (`streaming.score_stream`: read, validate,
  score, write CSV, default chunks and threads) with the compiled Telco champion, with and
  without the actions list at the defaults (every HIGH row and the first
  RETAINWISE_EXPLAIN_TOP_N explained; fed on the writer thread as in production, then merged and
  written), `--repeat` pairs in turn (medians). Target: <= 30% more wall time at 1M rows.
  `actions_cpu` is the list's own CPU, the steadier figure on a shared machine, and by step:
  ContactList.prepare on the scorer threads and add on the writer thread (each thread's clock:
  the process clock also counts the scorer threads' scoring, which slows down beside it),
  write_to (merge and CSV after the last chunk is scored; the process clock, its CSV
  formatting threads included) with its wall `write_to_wall`;
- `customer_scores_copy_100k` and `customers_read_p95`: on a throwaway PostgreSQL database,
  `--uploads` uploads of `--customers` customers stored with `record_scores`, then 300 reads of
  random customers with `customers.customer`. Target: p95 <= 200 ms.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import sys
import tempfile
import threading
import time
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CHUNK_ROWS = 60_000  # rows jittered at a time when the CSV is made
BLOCK = 8 * 2**20  # bytes per block handed to the chunked path (as S3 gives them)


def timed(action) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return result, time.perf_counter() - wall, time.process_time() - cpu


FIGURES: dict[str, dict] = {}


def emit(**figure) -> None:
    """One JSON line per figure; the last line (`summary`) has them all, for run_all.py."""
    FIGURES[figure["figure"]] = figure
    print(json.dumps(figure), flush=True)


def champion(directory: Path):
    """The Telco model as scoring loads it: the trained pipeline with its compiled trees."""
    from benchmarks.data import ID, TARGET, load_telco
    from models.compiled import CompiledModel, compile_trees
    from models.features import prepare_features
    from models.training import train

    trained = train(load_telco(), TARGET, ID)
    check = prepare_features(trained.evaluation.head(500), trained.profile.features)
    library = compile_trees(trained.pipeline, directory, check)
    scorer = CompiledModel(trained.pipeline, library) if library else trained.pipeline
    return types.SimpleNamespace(
        name="benchmark",
        version="1",
        kind=trained.kind,
        pipeline=trained.pipeline,
        profile=trained.profile,
        scorer=scorer,
    )


def cost_per_row(trained, rows: int = 20_000) -> None:
    from benchmarks.data import jittered_block, load_telco
    from models.features import prepare_features
    from models.reasons import reasons_for

    block = jittered_block(load_telco(), 0, rows, np.random.default_rng(19))
    X = prepare_features(block, trained.profile.features)
    explainer = reasons_for(trained.pipeline, trained.profile)
    _, build_wall, build_cpu = timed(lambda: explainer(X.head(1)))  # the tables, once per model
    _, wall, cpu = timed(lambda: explainer(X))
    emit(
        figure="reasons_cost_per_row",
        rows=rows,
        us_per_row_wall=round(wall / rows * 1e6, 1),
        us_per_row_cpu=round(cpu / rows * 1e6, 1),
        tables_build_cpu=round(build_cpu, 2),
        model=trained.kind,
    )


class Counted:
    """The upload's ContactList as the scoring path's tap, its own CPU counted per step: `prepare`
    on the scorer threads and `add` on the writer thread by each thread's clock (the process
    clock also counts the scorer threads' scoring, which slows down beside it), `write_to` by
    the process clock (it runs after the scoring, its CSV formatted on threads of its own)."""

    def __init__(self, contacts):
        self.contacts, self.lock = contacts, threading.Lock()
        self.cpu = dict.fromkeys(("prepare", "add", "write_to"), 0.0)
        self.write_wall = 0.0  # write_to alone: the merge and CSV after the last chunk

    @property
    def thread_cpu(self) -> float:
        return sum(self.cpu.values())

    def _counted(self, step, action, *args):
        started = time.thread_time()
        try:
            return action(*args)
        finally:
            with self.lock:
                self.cpu[step] += time.thread_time() - started

    def prepare(self, results, upload, scored=None):
        return self._counted("prepare", self.contacts.prepare, results, upload, scored)

    def add(self, results, upload, prepared=None) -> None:
        self._counted("add", self.contacts.add, results, upload, prepared)

    def write_to(self, stream) -> int:
        written, self.write_wall, self.cpu["write_to"] = timed(
            lambda: self.contacts.write_to(stream)
        )
        return written


def scoring_path(trained, data: bytes, actions: bool) -> tuple[float, float, Counted, int]:
    """Wall and CPU seconds of the chunked path (`streaming.score_stream`, the default chunk
    size and threads) over the CSV `data`; with `actions`, the upload's own ContactList is its
    tap (chunks prepared on the scorer threads and added on the writer thread, as in
    production) and written at the end. Also: the rows explained (with a reason_1)."""
    from retainwise.uploads.contacts import ContactList
    from retainwise.uploads.policy import ScoringPolicy
    from retainwise.uploads.streaming import score_stream

    policy = ScoringPolicy(max_rejected_share=0.5)
    blocks = [data[i : i + BLOCK] for i in range(0, len(data), BLOCK)]
    written = io.BytesIO()
    with ContactList(trained, policy, None) as contacts:
        counted = Counted(contacts)

        def run() -> int:
            tap = counted if actions else None
            score_stream(iter(blocks), trained, policy, io.BytesIO(), io.BytesIO(), tap)
            return counted.write_to(written) if actions else 0

        rows, wall, cpu = timed(run)
    assert rows == (data.count(b"\n") - 1 if actions else 0)
    return wall, cpu, counted, explained_rows(written.getvalue()) if actions else 0


def explained_rows(actions_csv: bytes) -> int:
    import pyarrow.csv as pa_csv

    reasons = pa_csv.read_csv(
        io.BytesIO(actions_csv),
        convert_options=pa_csv.ConvertOptions(
            include_columns=["reason_1"], strings_can_be_null=True
        ),
    )
    return reasons.num_rows - reasons["reason_1"].null_count


def csv_data(rows: int) -> bytes:
    """`rows` jittered Telco rows as one CSV (header once)."""
    from benchmarks.data import jittered_block, load_telco

    source, rng = load_telco(), np.random.default_rng(2024)
    parts = [
        jittered_block(source, start, min(CHUNK_ROWS, rows - start), rng).to_csv(
            index=False, header=start == 0
        )
        for start in range(0, rows, CHUNK_ROWS)
    ]
    return "".join(parts).encode()


def share(trained, rows: int, repeat: int = 1) -> None:
    """Without and with the actions list, `repeat` times in turn (each pair at the same load);
    the medians, and the list's own CPU (`actions_cpu`: its threads' CPU, not the process's)."""
    data = csv_data(rows)
    scoring_path(trained, csv_data(CHUNK_ROWS), actions=True)  # warm: compiled trees, imports
    pairs = []
    for _ in range(repeat):
        plain_wall, plain_cpu, _, _ = scoring_path(trained, data, actions=False)
        wall, cpu, counted, explained = scoring_path(trained, data, actions=True)
        steps = [counted.cpu[step] for step in ("prepare", "add", "write_to")]
        pairs.append((plain_wall, plain_cpu, wall, cpu, counted.thread_cpu, counted.write_wall))
        pairs[-1] += tuple(steps)
    plain_wall, plain_cpu, wall, cpu, own, write_wall, prepare, add, write = (
        float(np.median([pair[k] for pair in pairs])) for k in range(9)
    )
    emit(
        figure=f"reasons_share_{rows}",
        rows=rows,
        repeat=repeat,
        scoring_wall=round(plain_wall, 2),
        scoring_cpu=round(plain_cpu, 2),
        with_actions_wall=round(wall, 2),
        with_actions_cpu=round(cpu, 2),
        extra_share_wall=round(wall / plain_wall - 1, 3),
        extra_share_cpu=round(cpu / plain_cpu - 1, 3),
        actions_cpu=round(own, 2),
        actions_share_cpu=round(own / plain_cpu, 3),
        actions_cpu_prepare=round(prepare, 2),
        actions_cpu_add=round(add, 2),
        actions_cpu_write_to=round(write, 2),
        write_to_wall=round(write_wall, 2),
        pairs_extra_wall=[round(p[2] / p[0] - 1, 3) for p in pairs],
        pairs_extra_cpu=[round(p[3] / p[1] - 1, 3) for p in pairs],
        explained_rows=explained,
        load_average=[round(x, 2) for x in os.getloadavg()],
        target="<= 0.30 at 1M rows",
    )


EXPLAINED = 22_000  # what 100k Telco rows explain at the defaults (HIGH and the first 20,000)


def store_explanations(engine, ids: list[str]) -> None:
    """Store `ids`' explanations of 19 features, as the scoring path would after an upload."""
    import pandas as pd

    from models.explain import Explanation
    from retainwise.adapters import customers

    features = [f"feature_{j}" for j in range(19)]
    X = pd.DataFrame({name: ["Month-to-month"] * len(ids) for name in features})
    matrix = np.random.default_rng(3).normal(size=(len(ids), len(features)))
    explanation = Explanation(features, np.full(len(ids), -1.2), matrix)
    moment = datetime(2027, 1, 1, tzinfo=UTC)
    upload = customers.UploadScored("acme", "upload-latest", "churn", "1", moment)
    customers.record_explanations(engine, upload, pd.Series(ids), explanation, X)


def customers_latency(uploads: int, customers_per_upload: int, reads: int = 300) -> None:
    import pandas as pd

    import migrations
    from retainwise.adapters import customers
    from retainwise.adapters.db import make_engine
    from tests.conftest import throwaway_postgres  # the tests' throwaway database

    ids = [f"C{i:09d}" for i in range(customers_per_upload)]
    rng = np.random.default_rng(5)
    with throwaway_postgres("retainwise_reasons_bench") as url:
        migrations.upgrade(url)
        engine = make_engine(url)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        copies = []
        for n in range(uploads):
            upload = customers.UploadScored(
                "acme", f"upload-{n:04d}", "churn", "1", start + timedelta(days=n)
            )
            p = rng.random(len(ids))
            rows = pd.DataFrame({"customer_id": ids, "churn_probability": p, "churn_risk": "LOW"})
            copies.append(timed(lambda u=upload, r=rows: customers.record_scores(engine, u, r))[1])
        stored = timed(lambda: store_explanations(engine, ids[:EXPLAINED]))[1]
        picks = random.Random(7).choices(ids, k=reads)
        latencies = [timed(lambda i=i: customers.customer(engine, "acme", i))[1] for i in picks]
        engine.dispose()
    emit(
        figure="customer_scores_copy_100k",
        rows=customers_per_upload,
        seconds_median=round(float(np.median(copies)), 2),
        rows_per_second=round(customers_per_upload / float(np.median(copies))),
    )
    emit(figure="customer_explanations_upsert", rows=EXPLAINED, seconds=round(stored, 2))
    emit(
        figure="customers_read_p95",
        stored_rows=uploads * customers_per_upload,
        p50_ms=round(float(np.percentile(latencies, 50)) * 1000, 2),
        p95_ms=round(float(np.percentile(latencies, 95)) * 1000, 2),
        target="<= 200 ms",
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--uploads", type=int, default=20)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--skip-scoring", action="store_true")
    parser.add_argument("--repeat", type=int, default=1, help="scoring pairs per row count")
    args = parser.parse_args()
    if not args.skip_scoring:
        with tempfile.TemporaryDirectory() as directory:
            trained = champion(Path(directory))
            cost_per_row(trained)
            for rows in args.rows:
                share(trained, rows, args.repeat)
    customers_latency(args.uploads, args.customers)
    print(json.dumps({"figure": "summary", **FIGURES}), flush=True)


if __name__ == "__main__":
    main()
