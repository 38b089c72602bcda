"""Frames that exercise every branch of the monitoring and comparison figures, and the texts they
print, compared byte for byte with files in pins/ (written once from the code before typing)."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from models.profile import FeatureProfile, ModelProfile, RiskCutoffs

PINS = Path(__file__).parent / "pins"
WHEN = pd.Timestamp("2026-10-01 09:00", tz="UTC")
PROFILES = {
    "1": ModelProfile(
        id_column="id",
        target="Churn",
        features=[FeatureProfile("plan", "categorical", categories=["a", "b"])],
        threshold=0.4,
        score_shares=[0.1] * 10,
    ),
    "2": ModelProfile(
        id_column="id",
        target="Churn",
        features=[FeatureProfile("plan", "categorical", categories=["a", "b"])],
        threshold=0.55,
        cutoffs=RiskCutoffs(high=0.7, medium=0.35),
    ),
}


def matches_pin(name: str, text: str) -> bool:
    """True when `text` is the pinned text; RETAINWISE_WRITE_PINS=1 writes a missing pin."""
    path = PINS / name
    if not path.exists() and os.environ.get("RETAINWISE_WRITE_PINS") == "1":
        path.write_text(text)
    return path.read_text() == text


def as_json(value) -> str:
    """json.dumps (default=str) of a template's context: objects as their to_json() where they
    have one, other dataclasses (charts, table rows) as their fields."""
    return json.dumps(_shown(value), default=str, indent=1)


def _shown(value):
    if hasattr(value, "to_json"):
        return _shown(value.to_json())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _shown(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: _shown(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_shown(v) for v in value]
    return value


def labelled(prediction_id, account, version, y, p, customers=None) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "prediction_id": prediction_id,
            "account": account,
            "model_version": version,
            "customer_id": customers or [f"c{i}" for i in range(len(y))],
            "churned": np.asarray(y, dtype=int),
            "churn_probability": np.asarray(p, dtype=float),
        }
    )


def monitoring_frames() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Four uploads: acme v1 well calibrated, bravo v1 inverted (degraded), acme v2 with one
    class of labels, bravo v2 unlabelled and drifted with a missing estimate and score PSI."""
    rng = np.random.default_rng(11)
    p1, p2, p3 = rng.random(300), rng.random(250), rng.random(230)
    rows = []
    for i, (pid, account, version, psi, auc) in enumerate(
        [
            ("u1-aaaaaaaa", "acme", "1", 0.01, 0.81),
            ("u2-bbbbbbbb", "bravo", "1", 0.05, 0.66),
            ("u3-cccccccc", "acme", "2", 0.12, 0.79),
            ("u4-dddddddd", "bravo", "2", None, None),
        ]
    ):
        rows.append(
            {
                "prediction_id": pid,
                "account": account,
                "model_name": "churn",
                "model_version": version,
                "rows_scored": 300 - 10 * i,
                "score_psi": psi if psi is None else psi * 3,
                "est_roc_auc": auc,
                "est_roc_auc_low": None if auc is None else auc - 0.04,
                "est_roc_auc_high": None if auc is None else auc + 0.04,
                "est_churn_count": 90.5 + i,
                "completed_at": WHEN + pd.Timedelta(days=7 * i),
            }
        )
    drift = pd.DataFrame(
        {
            "prediction_id": ["u1-aaaaaaaa"] * 2 + ["u2-bbbbbbbb"] * 2 + ["u4-dddddddd"] * 2,
            "column_name": ["age", "plan"] * 3,
            "psi": [0.02, 0.1, 0.03, float("nan"), 0.31, 0.123456],
            "unseen_share": [0.0, 0.01, 0.0, 0.2, 0.0, 0.05],
        }
    )
    outcomes = pd.concat(
        [
            labelled("u1-aaaaaaaa", "acme", "1", rng.random(300) < p1, p1),
            labelled("u2-bbbbbbbb", "bravo", "1", p2 < 0.3, p2),
            labelled("u3-cccccccc", "acme", "2", np.zeros(230), p3),
        ]
    )
    return pd.DataFrame(rows), drift, outcomes
