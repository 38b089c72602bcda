"""Model benchmarks: Telco training time and the cost of top_reasons relative to plain scoring.

Run: .venv/bin/python benchmarks/models_bench.py [--rows 20000]. Prints one JSON line per figure.
Targets: training under 60 s on 2 cores; top_reasons is on by default only if it adds <= 25%.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TELCO = REPO.parent / "shared" / "data" / "telco_churn.csv"


def best_of(runs: int, action) -> float:
    timings = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return min(timings)


def main() -> None:
    from models import training
    from models.scoring import score_frame
    from retainwise.uploads.reading import read_table

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=20000)
    args = parser.parse_args()
    frame = read_table(TELCO.read_bytes())
    started = time.perf_counter()
    default = training.train(frame, "Churn", "customerID")
    print(
        json.dumps(
            {
                "figure": "telco_train_seconds",
                "value": round(time.perf_counter() - started, 2),
                "target": "< 60",
                "kind": default.kind,
                "roc_auc": round(default.metrics["roc_auc"], 4),
            }
        )
    )
    batch = frame.sample(args.rows, replace=True, random_state=1).reset_index(drop=True)
    ids = batch["customerID"]
    for kind in training.CANDIDATES:
        chosen = training.pick_best
        training.pick_best = lambda candidates, kind=kind: kind  # force each kind in turn
        try:
            trained = training.train(frame, "Churn", "customerID")
        finally:
            training.pick_best = chosen
        plain = best_of(3, lambda t=trained: score_frame(t.pipeline, t.profile, batch, ids))
        with_reasons = best_of(
            3, lambda t=trained: score_frame(t.pipeline, t.profile, batch, ids, reasons=True)
        )
        print(
            json.dumps(
                {
                    "figure": f"top_reasons_cost_{kind}",
                    "rows": args.rows,
                    "scoring_seconds": round(plain, 3),
                    "with_reasons_seconds": round(with_reasons, 3),
                    "extra_share": round(with_reasons / plain - 1, 3),
                    "target": "<= 0.25",
                    "roc_auc": round(trained.metrics["roc_auc"], 4),
                }
            )
        )


if __name__ == "__main__":
    main()
