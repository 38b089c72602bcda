"""Training without a Prefect server: the train-model flow's steps in-process, logged to MLflow.

`retainwise model train` uses this when no Prefect API answers, so a data scientist's training
starts in seconds instead of waiting 30-40 s for Prefect's temporary server. The steps are the
ones the flow's tasks wrap (read_table, models.training.train, mlflow_registry.register); MLflow
is imported only after fitting, so fitting starts as soon as pandas and scikit-learn are loaded.
"""

from __future__ import annotations

import logging
import os
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from retainwise.config.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingSummary:
    """A registered training: what `retainwise model train` prints (notes to stderr, then the
    rest as its last JSON line) and the train-model flow returns."""

    model: str
    version: str
    kind: str
    roc_auc: float
    pr_auc: float
    brier: float
    threshold: float
    excluded_columns: dict[str, str]
    notes: list[str]

    def to_json(self) -> dict[str, object]:
        return dict(vars(self))


def summarise(name: str, version: str, trained) -> TrainingSummary:
    """The summary of a registered version, its holdout figures rounded."""
    m = trained.metrics
    return TrainingSummary(
        model=name,
        version=version,
        kind=trained.kind,
        roc_auc=round(m["roc_auc"], 4),
        pr_auc=round(m["pr_auc"], 4),
        brier=round(m["brier"], 4),
        threshold=round(trained.profile.threshold, 4),
        excluded_columns=trained.excluded,
        notes=trained.notes,
    )


def run_params(
    data: str,
    target: str,
    id_column: str | None,
    positive: str | None,
    allow_columns: list[str] | None,
) -> dict[str, str]:
    """What the MLflow run records about the command that trained it."""
    return {
        "data": data,
        "target": target,
        "id_column": id_column or "(row number)",
        "positive": positive or "(auto)",
        "allow_columns": ",".join(allow_columns or []),
    }


def prefect_server_answers(api_url: str | None = None, timeout: float = 1.0) -> bool:
    """True when PREFECT_API_URL is set and its /health answers; no Prefect import (costs 3 s)."""
    api_url = api_url if api_url is not None else os.environ.get("PREFECT_API_URL")
    if not api_url:
        return False
    try:
        with urllib.request.urlopen(api_url.rstrip("/") + "/health", timeout=timeout) as reply:
            return reply.status == 200
    except OSError:
        return False


def train_in_process(
    data: str,
    target: str,
    id_column: str | None = None,
    name: str = "churn",
    positive: str | None = None,
    allow_columns: list[str] | None = None,
    settings: Settings | None = None,
    say: Callable[[str], None] = log.info,
) -> TrainingSummary:
    """Read, fit, register as `challenger`: the train-model flow's steps with no Prefect run."""
    from models.training import train
    from retainwise.uploads.reading import read_table

    frame = read_table(Path(data).read_bytes())
    say(f"fitting on {len(frame)} rows of {data} in-process (no Prefect server; MLflow only)")
    trained = train(frame, target, id_column, positive, allow_columns or [])
    from retainwise.adapters import mlflow_registry as registry
    from retainwise.adapters.resources import Resources

    settings = settings or Resources.of_process().settings

    version = registry.register(
        trained, name, settings, run_params(data, target, id_column, positive, allow_columns), data
    )
    return summarise(name, version, trained)
