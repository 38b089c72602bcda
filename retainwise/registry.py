"""The MLflow model registry: register trained versions, move aliases, load the champion."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import mlflow
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from mlflow.models import infer_signature

from models.profile import ModelProfile
from models.training import TrainedModel
from retainwise.settings import Settings

CHAMPION = "champion"
CHALLENGER = "challenger"
EXPERIMENT = "retainwise-churn"
# Written explicitly: MLflow's automatic detection costs seconds per log_model.
PIP_REQUIREMENTS = ["scikit-learn", "pandas", "numpy"]


class NoChampion(LookupError):
    """Scoring was asked of a model that has no champion version; the message says what to do."""


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    pipeline: Any
    profile: ModelProfile


def client(settings: Settings) -> MlflowClient:
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def _experiment_id(settings: Settings) -> str:
    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow_client.create_experiment(EXPERIMENT, artifact_location=settings.artifact_root)


def register(trained: TrainedModel, name: str, settings: Settings,
             params: dict[str, Any] | None = None) -> str:
    """Log the fitted pipeline with its profile as metadata, register it, alias it `challenger`."""
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    example = trained.holdout.drop(columns=[trained.profile.target]).head(5)
    signature = infer_signature(example, trained.pipeline.predict_proba(example)[:, 1])
    with mlflow.start_run(experiment_id=_experiment_id(settings)) as run:
        mlflow.log_params(params or {})
        mlflow.log_metrics(trained.metrics)
        mlflow.log_text("\n".join(trained.notes) or "no columns dropped", "notes.txt")
        info = mlflow.sklearn.log_model(
            trained.pipeline, name="model", signature=signature,
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            pip_requirements=PIP_REQUIREMENTS,
            metadata={"retainwise_profile": json.dumps(trained.profile.to_dict())},
        )
    version = mlflow.register_model(info.model_uri, name).version
    mlflow_client = client(settings)
    mlflow_client.set_model_version_tag(name, version, "run_id", run.info.run_id)
    mlflow_client.set_registered_model_alias(name, CHALLENGER, version)
    return str(version)


def promote(name: str, version: str, settings: Settings) -> None:
    client(settings).set_registered_model_alias(name, CHAMPION, str(version))


def champion_version(name: str, settings: Settings) -> str:
    try:
        return str(client(settings).get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        raise NoChampion(
            f"no champion for {name!r}; promote one with `retainwise model promote {name}`"
        ) from None


def load_champion(name: str, settings: Settings) -> LoadedModel:
    version = champion_version(name, settings)
    return load_version(name, version, settings.tracking_uri)


@lru_cache(maxsize=8)
def load_version(name: str, version: str, tracking_uri: str) -> LoadedModel:
    """Versions are immutable, so a process loads each once (the cache key includes the store)."""
    mlflow.set_tracking_uri(tracking_uri)
    mlflow.set_registry_uri(tracking_uri)
    uri = f"models:/{name}/{version}"
    local = mlflow.artifacts.download_artifacts(uri)
    pipeline = mlflow.sklearn.load_model(local)
    metadata = mlflow.models.Model.load(local).metadata or {}
    profile = ModelProfile.from_dict(json.loads(metadata["retainwise_profile"]))
    return LoadedModel(name=name, version=str(version), pipeline=pipeline, profile=profile)


def list_versions(name: str, settings: Settings) -> list[dict[str, Any]]:
    mlflow_client = client(settings)
    aliases: dict[str, list[str]] = {}
    for alias, version in mlflow_client.get_registered_model(name).aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    rows = []
    for mv in sorted(mlflow_client.search_model_versions(f"name='{name}'"),
                     key=lambda v: int(v.version)):
        metrics = mlflow_client.get_run(mv.run_id).data.metrics if mv.run_id else {}
        rows.append({"version": mv.version, "aliases": aliases.get(str(mv.version), []),
                     "roc_auc": metrics.get("roc_auc"), "created": mv.creation_timestamp})
    return rows
