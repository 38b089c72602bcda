"""How far the label-free estimate (models.monitoring) is from the realised figures on Telco.

Trains on Telco as `retainwise model train` does, scores the untouched 20% holdout, and compares
estimated with realised ROC AUC, precision/recall at the threshold and churn count: on the whole
holdout (in distribution) and on shifted slices of it (month-to-month contracts only; two-year
contracts only). One JSON line. Usage: benchmarks/estimate_error.py [--data telco.csv]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pandas as pd

from models.features import prepare_features
from models.monitoring import estimated_performance, realised_performance
from models.training import LABEL_COLUMN, train

REPO = Path(__file__).resolve().parents[1]
TELCO = next(
    (
        root / "shared/data/telco_churn.csv"
        for root in (REPO.parent, REPO.parents[1])
        if (root / "shared/data/telco_churn.csv").exists()
    ),
    REPO.parent / "shared/data",
)
FIGURES = ("roc_auc", "precision_at_threshold", "recall_at_threshold")


def compare(trained, rows: pd.DataFrame) -> dict:
    profile = trained.profile
    p = trained.pipeline.predict_proba(prepare_features(rows, profile.features))[:, 1]
    y = rows[LABEL_COLUMN].to_numpy()
    realised = realised_performance(y, p, profile.threshold, profile.cutoffs)
    estimated = estimated_performance(p, profile.threshold)
    out = {"rows": len(y), "churn_rate": round(float(y.mean()), 4)}
    for name in FIGURES:
        e, actual = getattr(estimated, name), getattr(realised, name)
        out[name] = {
            "realised": round(actual, 4),
            "estimated": round(e.value, 4),
            "error": round(e.value - actual, 4),
            "band": [round(e.low, 4), round(e.high, 4)],
            "inside_band": bool(e.low <= actual <= e.high),
        }
    e = estimated.churn_count
    out["churn_count"] = {
        "realised": int(y.sum()),
        "estimated": round(e.value, 1),
        "band": [round(e.low, 1), round(e.high, 1)],
    }
    out["calibration_error"] = round(realised.expected_calibration_error, 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=TELCO)
    args = parser.parse_args()
    started, cpu = time.perf_counter(), time.process_time()
    trained = train(_read(args.data), "Churn", "customerID")
    holdout = trained.evaluation
    result = {"holdout": compare(trained, holdout)}
    for contract in ("Month-to-month", "Two year"):
        result[f"contract={contract}"] = compare(trained, holdout[holdout["Contract"] == contract])
    result["wall_s"] = round(time.perf_counter() - started, 1)
    result["cpu_s"] = round(time.process_time() - cpu, 1)
    print(json.dumps(result))


def _read(path: Path) -> pd.DataFrame:
    from retainwise.uploads.reading import read_table

    return read_table(path.read_bytes())


if __name__ == "__main__":
    main()
