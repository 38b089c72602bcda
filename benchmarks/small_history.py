"""One 1k-row upload in this process, without Prefect: the scoring job with its actions list and
the customer history (a SQLite file), then the history's work after COMPLETED; each timed on
this thread's CPU clock, medians over the runs, and digests of what must not change.

    python benchmarks/small_history.py --runs 40

Prints the scoring job's and the after-COMPLETED CPU ms a run, then SHA-256 prefixes of the
last run's results, rejects and actions CSV bytes, and of the stored explanations (without the
prediction id and time, which differ per run): compare them between two worktrees.
"""

from __future__ import annotations

import argparse
import hashlib
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

import migrations
from retainwise.adapters import db
from retainwise.adapters.mlflow_registry import LoadedModel
from retainwise.local.sample import synthetic_customers
from retainwise.uploads.files import LocalFile, LocalSinks
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.scoring import Output, score_object
from tasks.history import CustomerHistory
from tests.helpers import trained_on_synthetic

COMPARED = (Output.RESULTS, Output.REJECTS, Output.ACTIONS)  # the report holds ids and times


def one_upload(engine, model, source: LocalFile, work: Path, n: int) -> tuple[float, float]:
    """CPU seconds of the scoring job, and of the history's work after COMPLETED."""
    pid = db.create_prediction(engine, account="acme", model_name="churn", input_key=f"k{n}")
    assert db.claim_prediction(engine, pid, "run")
    sinks = LocalSinks({output: work / f"{n}.{output.value}" for output in Output})
    history = CustomerHistory.for_upload(engine, "acme", pid, model)
    history.start()
    began = time.thread_time()
    score_object(source, model, ScoringPolicy(), sinks, prediction_id=pid, history=history)
    scored = time.thread_time()
    assert db.finish_prediction(engine, pid, "run", db.Status.COMPLETED)
    finished = time.thread_time()
    history.completed()
    return scored - began, time.thread_time() - finished


def digests(engine, work: Path, n: int) -> dict[str, str]:
    found = {o.value: hashlib.sha256((work / f"{n}.{o.value}").read_bytes()) for o in COMPARED}
    with engine.connect() as conn:
        rows = conn.execute(
            sa.text(
                "SELECT account, customer_id, model_version, base_value, margin, contributions"
                " FROM customer_explanations ORDER BY account, customer_id"
            )
        ).fetchall()
    found["explanations"] = hashlib.sha256(repr(rows).encode())
    return {name: digest.hexdigest()[:16] for name, digest in found.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=40)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="small-history-"))
    trained = trained_on_synthetic(800, seed=5)
    model = LoadedModel("churn", "1", trained.pipeline, trained.profile)
    url = f"sqlite:///{work}/retainwise.db"
    migrations.upgrade(url)
    engine = db.make_engine(url)
    path = work / "customers.csv"
    path.write_bytes(synthetic_customers(1000, seed=9, labeled=False).to_csv(index=False).encode())
    for n in range(3):  # warm: imports, the model's caches
        one_upload(engine, model, LocalFile(path), work, -1 - n)
    spent = [one_upload(engine, model, LocalFile(path), work, n) for n in range(args.runs)]
    scoring, after = (np.median(column) * 1e3 for column in zip(*spent, strict=True))
    print(
        f"scoring job {scoring:.1f} CPU ms, after COMPLETED {after:.1f} CPU ms"
        f" (median of {args.runs})"
    )
    print(digests(engine, work, args.runs - 1))


if __name__ == "__main__":
    main()
