"""The customer history's cost per upload (issues 19 and 22): what tasks/history.py stores for one
upload of `--rows` Telco rows, on SQLite and PostgreSQL, CPU seconds beside wall seconds.

    python benchmarks/history_cost.py [--rows 100000] [--explained 22000] [--databases sqlite]

Per database, on a freshly migrated database holding one earlier upload of the same customers:
- `scores`: CustomerHistory.scored for the rows in one chunk (as the whole-file path calls it);
- `completed`: CustomerHistory.completed after COMPLETED: the scores dated at completed_at
  (`dating`, customers.date_upload) and `--explained` explanations stored (`explanations`,
  customers.record_explanations; 100k Telco rows explain ~22k at the defaults);
- `floor`: the same rows as plain tuples through the driver alone (sqlite3 executemany /
  psycopg COPY of the CSV text) into an empty copy of customer_scores, the baseline;
  `ratio_scores_vs_floor` is scores' CPU over the floor's.
The Telco rows are jittered real rows (benchmarks/data.py), so the values stored with each
explanation have the real types; the contributions are random (their cost, not their values).
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NOW = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


class Model:
    name, version = "churn", "3"


def timed(action) -> tuple[object, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = action()
    return result, round(time.perf_counter() - wall, 3), round(time.process_time() - cpu, 3)


def inputs(rows: int, explained: int):
    """(scored rows, explained ids, Explanation, prepared rows) for `rows` jittered Telco rows."""
    import pandas as pd

    from benchmarks.data import ID, jittered_block, load_telco
    from models.explain import Explanation
    from models.features import infer_features, prepare_features

    block = jittered_block(load_telco(), 0, rows, np.random.default_rng(22))
    rng = np.random.default_rng(19)
    probability = rng.random(rows)
    scored = pd.DataFrame(
        {
            "customer_id": block[ID],
            "churn_probability": probability,
            "churn_risk": np.where(probability > 0.7, "HIGH", "LOW"),
        }
    )
    features, _ = infer_features(block, {ID})
    X = prepare_features(block.head(explained), features)
    for feature in features:  # validated uploads hand categories over as a Categorical
        if feature.kind == "categorical":
            X[feature.name] = X[feature.name].astype("category")
    names = [f.name for f in features]
    matrix = rng.normal(size=(len(X), len(names)))
    explanation = Explanation(names, np.full(len(X), -1.2), matrix)
    return scored, block[ID].head(explained), explanation, X


@contextlib.contextmanager
def database(kind: str):
    """A freshly migrated database URL of the kind (a temporary SQLite file or PostgreSQL)."""
    import migrations

    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            url = f"sqlite:///{directory}/history.db"
            migrations.upgrade(url)
            yield url
    else:
        from tests.conftest import throwaway_postgres  # the tests' throwaway database

        with throwaway_postgres("retainwise_history_bench") as url:
            migrations.upgrade(url)
            yield url


class Stage:
    """Wraps one adapter function as tasks.history calls it, adding up its seconds."""

    def __init__(self, module, name: str):
        self.module, self.name, self.wall, self.cpu = module, name, 0.0, 0.0
        self.function = getattr(module, name)

    def __enter__(self) -> Stage:
        setattr(self.module, self.name, self)
        return self

    def __exit__(self, *exc: object) -> None:
        setattr(self.module, self.name, self.function)

    def __call__(self, *args, **kwargs):
        result, wall, cpu = timed(lambda: self.function(*args, **kwargs))
        self.wall, self.cpu = self.wall + wall, self.cpu + cpu
        return result


def one_upload(engine, days: int, scored, ids, explanation, X) -> dict:
    """One upload's history as the flow keeps it; the seconds of each stage."""
    from retainwise.adapters import customers, db
    from tasks.history import CustomerHistory

    prediction_id = db.create_prediction(engine, account="bench", model_name="churn", input_key="k")
    assert db.claim_prediction(engine, prediction_id, "run")
    history = CustomerHistory.for_upload(
        engine, "bench", prediction_id, Model(), NOW + timedelta(days=days)
    )
    history.start()
    _, scores_wall, scores_cpu = timed(lambda: history.scored(scored))
    history.explained(ids, explanation, X)
    assert db.finish_prediction(engine, prediction_id, "run", db.Status.COMPLETED)
    with (
        Stage(customers, "date_upload") as dating,
        Stage(customers, "record_explanations") as explaining,
    ):
        stored, completed_wall, completed_cpu = timed(history.completed)
    assert stored == len(ids)
    return {
        "scores_wall": scores_wall,
        "scores_cpu": scores_cpu,
        "completed_wall": completed_wall,
        "completed_cpu": completed_cpu,
        "dating_wall": round(dating.wall, 3),
        "dating_cpu": round(dating.cpu, 3),
        "explanations_wall": round(explaining.wall, 3),
        "explanations_cpu": round(explaining.cpu, 3),
    }


def floor(engine, scored) -> tuple[float, float]:
    """The same rows as plain tuples through the driver alone, into an empty copy of the table."""
    ids = scored["customer_id"].astype(str).tolist()
    probabilities = scored["churn_probability"].astype("float64").tolist()
    risks = scored["churn_risk"].astype(str).tolist()
    moment = NOW.strftime("%Y-%m-%d %H:%M:%S.%f")
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE IF EXISTS floor_scores")
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql("CREATE TABLE floor_scores (LIKE customer_scores INCLUDING ALL)")
        else:
            conn.exec_driver_sql(
                "CREATE TABLE floor_scores AS SELECT * FROM customer_scores LIMIT 0"
            )
            conn.exec_driver_sql(
                "CREATE UNIQUE INDEX floor_pk ON floor_scores (prediction_id, customer_id)"
            )
            conn.exec_driver_sql(
                "CREATE INDEX floor_ix ON floor_scores (account, customer_id, completed_at)"
            )

    def run() -> None:
        with engine.begin() as conn:
            driver = conn.connection.driver_connection
            if conn.dialect.name == "postgresql":
                text = "".join(
                    f"floor,{i},bench,churn,3,{moment}+00:00,{p!r},{r}\n"
                    for i, p, r in zip(ids, probabilities, risks, strict=True)
                )
                with driver.cursor().copy("COPY floor_scores FROM STDIN WITH (FORMAT csv)") as copy:
                    copy.write(text)
            else:
                rows = [
                    ("floor", i, "bench", "churn", "3", moment, p, r)
                    for i, p, r in zip(ids, probabilities, risks, strict=True)
                ]
                driver.cursor().executemany(
                    "INSERT INTO floor_scores VALUES (?,?,?,?,?,?,?,?)", rows
                )

    _, wall, cpu = timed(run)
    return wall, cpu


def measure(kind: str, rows: int, explained: int) -> dict:
    from retainwise.adapters.db import make_engine

    scored, ids, explanation, X = inputs(rows, explained)
    with database(kind) as url:
        engine = make_engine(url)
        try:
            one_upload(engine, 0, scored, ids, explanation, X)  # the earlier upload, warm
            figures = one_upload(engine, 30, scored, ids, explanation, X)
            floor_wall, floor_cpu = floor(engine, scored)
        finally:
            engine.dispose()
    return {
        "figure": f"history_cost_{kind}",
        "rows": rows,
        "explained": explained,
        **figures,
        "floor_wall": floor_wall,
        "floor_cpu": floor_cpu,
        "ratio_scores_vs_floor": round(figures["scores_cpu"] / max(floor_cpu, 1e-3), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--explained", type=int, default=22_000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    out = {}
    for kind in args.databases.split(","):
        figure = measure(kind, args.rows, args.explained)
        print(json.dumps(figure), flush=True)
        out[figure["figure"]] = figure
    print(json.dumps({"benchmark": "history_cost", **out}))


if __name__ == "__main__":
    main()
