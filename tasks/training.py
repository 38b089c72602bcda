"""Training tasks: load a labeled table, fit candidates, register the result in MLflow."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from models.training import TrainedModel, train
from retainwise.adapters import mlflow_registry as registry
from retainwise.config.settings import Settings
from retainwise.uploads.reading import read_table
from tasks.retry import io_task


@task(name="load-training-table", cache_policy=NO_CACHE)
def load_training_table(path: str) -> pd.DataFrame:
    return read_table(Path(path).read_bytes())


@task(name="fit-model", cache_policy=NO_CACHE)
def fit_model(
    frame: pd.DataFrame,
    target: str,
    id_column: str | None,
    positive: str | None,
    allow_columns: list[str] | None = None,
) -> TrainedModel:
    return train(frame, target, id_column, positive, allow_columns or [])


@io_task("register-model")
def register_model(
    trained: TrainedModel,
    name: str,
    settings: Settings,
    params: dict[str, str],
    source: str | None = None,
) -> str:
    return registry.register(trained, name, settings, params, source)
