"""train-model: fit a churn model on a labeled CSV and register it as the new `challenger`."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from retainwise.config.settings import Settings
from retainwise.modelops.training import run_params, summarise
from tasks.training import fit_model, load_training_table, register_model


@flow(name="train-model", flow_run_name="train-{name}")
def train_model(data: str, target: str, id_column: str | None = None, name: str = "churn",
                positive: str | None = None,
                allow_columns: list[str] | None = None) -> dict[str, Any]:
    settings = Settings()
    frame = load_training_table(data)
    trained = fit_model(frame, target, id_column, positive, allow_columns or [])
    params = run_params(data, target, id_column, positive, allow_columns)
    version = register_model(trained, name, settings, params, data)
    logger = get_run_logger()
    for note in trained.notes:
        logger.warning(note)
    summary = summarise(name, version, trained)
    logger.info("registered %s v%s (%s), holdout ROC AUC %.4f, Brier %.4f", name, version,
                trained.kind, summary["roc_auc"], summary["brier"])
    return summary
