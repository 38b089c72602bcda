"""The champion model for scoring (reading, validating and scoring are tasks.uploads's)."""

from __future__ import annotations

from retainwise.adapters import mlflow_registry as registry
from retainwise.config.settings import Settings
from tasks.retry import io_task


@io_task("load-champion")
def load_champion(model_name: str, settings: Settings) -> registry.LoadedModel:
    return registry.load_champion(model_name, settings)
