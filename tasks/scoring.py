"""The champion model for scoring (reading, validating and scoring are tasks.uploads's)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from retainwise.adapters import mlflow_registry as registry
from retainwise.config.settings import Settings
from tasks.retry import IO_TASK, is_transient


@task(name="load-champion", cache_policy=NO_CACHE, retry_condition_fn=is_transient, **IO_TASK)
def load_champion(model_name: str, settings: Settings) -> registry.LoadedModel:
    return registry.load_champion(model_name, settings)
