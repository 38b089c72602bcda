"""train-model: fit a churn model on a labeled CSV and register it as the new `challenger`.

With `outcomes_of=NAME` (what the `retainwise.model.degraded` automation passes) it learns from
the pooled labelled outcomes of NAME's uploads instead of a file. Either way the new version is
only the challenger: promotion still goes through the gate.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from prefect import flow, get_run_logger

from retainwise.adapters.resources import Resources
from retainwise.modelops.pooling import ID_COLUMN, TARGET
from retainwise.modelops.training import TrainingSummary, run_params, summarise
from tasks.monitoring import pool_labelled_outcomes
from tasks.training import fit_model, load_training_table, register_model

if TYPE_CHECKING:
    import pandas as pd


@flow(name="train-model", flow_run_name="train-{name}")
def train_model(
    data: str | None = None,
    target: str | None = None,
    id_column: str | None = None,
    name: str = "churn",
    positive: str | None = None,
    allow_columns: list[str] | None = None,
    outcomes_of: str | None = None,
) -> TrainingSummary:
    env = Resources.of_process()
    settings, logger = env.settings, get_run_logger()
    if outcomes_of:
        # a DataFrame (Prefect reads an untyped return as a coroutine's)
        frame: pd.DataFrame = pool_labelled_outcomes(env, outcomes_of)
        data, target, id_column = (
            f"outcomes of {outcomes_of} ({len(frame)} rows)",
            TARGET,
            ID_COLUMN,
        )
        logger.info("retraining %s on %s", name, data)
    elif data is None or target is None:
        raise ValueError("pass data and target, or outcomes_of")
    else:
        frame = load_training_table(data)
    trained = fit_model(frame, target, id_column, positive, allow_columns or [])
    params = run_params(data, target, id_column, positive, allow_columns)
    version = register_model(trained, name, settings, params, data)
    for note in trained.notes:
        logger.warning(note)
    summary = summarise(name, version, trained)
    logger.info(
        "registered %s v%s (%s), holdout ROC AUC %.4f, Brier %.4f",
        name,
        version,
        trained.kind,
        summary.roc_auc,
        summary.brier,
    )
    return summary
