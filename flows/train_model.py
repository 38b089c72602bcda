"""train-model: fit a churn model on a labeled CSV and register it as the new `challenger`."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger

from retainwise.settings import Settings
from tasks.training import fit_model, load_training_table, register_model


@flow(name="train-model", flow_run_name="train-{name}")
def train_model(data: str, target: str, id_column: str | None = None, name: str = "churn",
                positive: str | None = None) -> dict[str, Any]:
    settings = Settings()
    frame = load_training_table(data)
    trained = fit_model(frame, target, id_column, positive)
    params = {"data": data, "target": target, "id_column": id_column or "(row number)"}
    version = register_model(trained, name, settings, params)
    logger = get_run_logger()
    for note in trained.notes:
        logger.info(note)
    summary = {"model": name, "version": version, "roc_auc": round(trained.metrics["roc_auc"], 4),
               "rows": len(frame), "dropped": trained.notes}
    logger.info("registered %s v%s, holdout ROC AUC %.4f", name, version, summary["roc_auc"])
    return summary
