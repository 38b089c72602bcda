"""The MLflow adapter: register versions, read and move aliases, load models and their test rows.

A version's run carries its metrics, profile, model card, plots and its held-out test rows
(`evaluation/holdout.csv`), so a promotion can score champion and challenger on the same rows.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from models.features import prepare_features
from models.profile import LABEL_COLUMN, ModelProfile
from retainwise.config.errors import NoChampion, PromotionRefused
from retainwise.config.settings import Settings

if TYPE_CHECKING:  # loading and scoring never import the training code (scikit-learn's CV, metrics)
    from models.training import TrainedModel

CHAMPION = "champion"
CHALLENGER = "challenger"
EXPERIMENT = "retainwise-churn"
EVALUATION_ARTIFACT = "evaluation/holdout.csv"
KEY_METRICS = ("roc_auc", "pr_auc", "brier", "lift_top_decile", "threshold")
COMPILED_TAG = "compiled_trees"  # version tag: run artifact path of the compiled trees library
COMPILED_DIR = "compiled"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    pipeline: Any
    profile: ModelProfile
    compiled: Any = None  # models.compiled.CompiledModel when the version has a compiled library

    @property
    def scorer(self) -> Any:
        """What scoring calls predict_proba on: the compiled trees if present, else scikit-learn."""
        return self.compiled if self.compiled is not None else self.pipeline


def pip_requirements() -> list[str]:
    """Pinned to what trained the model: a cloudpickled pipeline needs the same scikit-learn.

    Written explicitly because MLflow's automatic detection costs seconds per log_model.
    """
    return [
        f"{package}=={installed_version(package)}"
        for package in ("scikit-learn", "lightgbm", "pandas", "numpy", "scipy", "cloudpickle")
    ]


def client(settings: Settings) -> MlflowClient:
    return MlflowClient(tracking_uri=settings.tracking_uri, registry_uri=settings.tracking_uri)


def _use_store(settings: Settings) -> None:
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)


def ensure_store(settings: Settings) -> None:
    """Create the tracking store's tables once, before several processes first open it at once
    (MLflow's SQLite schema migration is not safe to run concurrently)."""
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    _experiment_id(settings)


def upgrade_store(tracking_uri: str) -> bool:
    """`mlflow db upgrade` on a PostgreSQL tracking store (creating its tables when empty), run by
    `migrate`: the other jobs' login may not create tables. False (nothing done) for SQLite."""
    if not tracking_uri.startswith("postgresql"):
        return False
    from mlflow.db import upgrade

    upgrade.callback(tracking_uri)
    return True


def _experiment_id(settings: Settings) -> str:
    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow_client.create_experiment(EXPERIMENT, artifact_location=settings.artifact_root)


def _log_run_artifacts(trained: TrainedModel, name: str, source: str | None) -> None:
    from models.card import model_card
    from models.plots import calibration_figure, roc_figure

    mlflow.log_dict(trained.profile.to_dict(), "profile.json")
    mlflow.log_dict(
        {
            "candidates": trained.candidates,
            "chosen": trained.kind,
            "excluded_columns": trained.excluded,
        },
        "candidates.json",
    )
    mlflow.log_dict(trained.curves, "evaluation/curves.json")
    mlflow.log_text("\n".join(trained.notes) or "no columns dropped", "notes.txt")
    mlflow.log_text(model_card(trained, name, source), "model_card.md")
    mlflow.log_text(trained.evaluation.to_csv(index=False), EVALUATION_ARTIFACT)
    mlflow.log_figure(
        roc_figure(trained.curves["roc"], trained.metrics["roc_auc"]), "plots/roc.png"
    )
    mlflow.log_figure(
        calibration_figure(trained.curves["reliability"], trained.metrics["brier"]),
        "plots/calibration.png",
    )


def register(
    trained: TrainedModel,
    name: str,
    settings: Settings,
    params: dict[str, Any] | None = None,
    source: str | None = None,
) -> str:
    """Log the calibrated model with its profile, card, plots and test rows; alias it `challenger`.

    Serialised with cloudpickle: MLflow 3's default skops format refuses the boosted trees and our
    CalibratedModel unless each type is trusted by hand. Loading needs this code base installed.
    """
    from mlflow.models import infer_signature

    _use_store(settings)
    example = prepare_features(trained.evaluation.head(5), trained.profile.features)
    signature = infer_signature(example, trained.pipeline.predict_proba(example)[:, 1])
    with mlflow.start_run(experiment_id=_experiment_id(settings)) as run:
        mlflow.log_params({**trained.params, **(params or {})})
        mlflow.log_metrics(trained.metrics)
        _log_run_artifacts(trained, name, source)
        info = mlflow.sklearn.log_model(
            trained.pipeline,
            name="model",
            signature=signature,
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            pip_requirements=pip_requirements(),
            metadata={"retainwise_profile": json.dumps(trained.profile.to_dict())},
        )
        compiled = _log_compiled_trees(trained)
    version = mlflow.register_model(info.model_uri, name).version
    mlflow_client = client(settings)
    mlflow_client.set_model_version_tag(name, version, "run_id", run.info.run_id)
    mlflow_client.set_model_version_tag(name, version, "model_kind", trained.kind)
    if compiled:
        mlflow_client.set_model_version_tag(name, version, COMPILED_TAG, compiled)
    mlflow_client.set_registered_model_alias(name, CHALLENGER, version)
    return str(version)


def _log_compiled_trees(trained: TrainedModel) -> str | None:
    """Compile a boosted model's trees (checked against scikit-learn on the test rows) into the
    active run; the artifact path, or None when the model has no trees or compiling failed."""
    from models.compiled import LIBRARY, compile_trees

    check_rows = prepare_features(trained.evaluation, trained.profile.features)
    with tempfile.TemporaryDirectory() as directory:
        try:
            library = compile_trees(trained.pipeline, Path(directory), check_rows)
        except Exception as exc:  # no compiler, treelite refusing a model: scoring falls back
            log.warning(
                "could not compile the model's trees, scoring will use scikit-learn: %s", exc
            )
            return None
        if library is None:
            return None
        mlflow.log_artifact(str(library), COMPILED_DIR)
    return f"{COMPILED_DIR}/{LIBRARY}"


def _load_compiled_trees(name: str, version: str, pipeline: Any) -> Any:
    """The version's compiled trees, or None (with a warning for a boosted model without them,
    e.g. one registered before compiling existed, or a library this machine cannot load)."""
    from models.compiled import CompiledModel, boosted_parts

    if boosted_parts(pipeline) is None:
        return None
    tags = client_for_current_store().get_model_version(name, version).tags or {}
    artifact, run_id = tags.get(COMPILED_TAG), tags.get("run_id")
    if not artifact or not run_id:
        log.warning(
            "%s version %s has no compiled trees; scoring with scikit-learn (slower). "
            "Registering the model again compiles them.",
            name,
            version,
        )
        return None
    try:
        library = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact)
        return CompiledModel(pipeline, Path(library))
    except Exception as exc:
        log.warning(
            "%s version %s: compiled trees could not be loaded, scoring with scikit-learn: %s",
            name,
            version,
            exc,
        )
        return None


def client_for_current_store() -> MlflowClient:
    return MlflowClient(
        tracking_uri=mlflow.get_tracking_uri(), registry_uri=mlflow.get_registry_uri()
    )


def promote(name: str, version: str, settings: Settings) -> None:
    """Move the champion alias with no gate and no record: for bootstrapping test stores only.

    People promote through `promote_version` (the CLI), which gates and records the change.
    """
    client(settings).set_registered_model_alias(name, CHAMPION, str(version))


def champion_version(name: str, settings: Settings) -> str:
    try:
        return str(client(settings).get_model_version_by_alias(name, CHAMPION).version)
    except MlflowException:
        raise NoChampion(
            f"no champion for {name!r}; promote one with `retainwise model promote {name}`"
        ) from None


def alias_version(name: str, alias: str, settings: Settings) -> str | None:
    try:
        return str(client(settings).get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


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
    return LoadedModel(
        name=name,
        version=str(version),
        pipeline=pipeline,
        profile=profile,
        compiled=_load_compiled_trees(name, str(version), pipeline),
    )


def evaluation_set(name: str, version: str, settings: Settings) -> tuple[pd.DataFrame, np.ndarray]:
    """The held-out test rows (raw text, as read) and their 0/1 labels stored with a version."""
    run_id = client(settings).get_model_version(name, str(version)).run_id
    try:
        local = mlflow.artifacts.download_artifacts(
            run_id=run_id, artifact_path=EVALUATION_ARTIFACT, tracking_uri=settings.tracking_uri
        )
    except (MlflowException, OSError) as exc:
        raise PromotionRefused(
            f"version {version} of {name!r} has no stored evaluation set "
            f"(trained before the promotion gate existed?): {exc}",
            {"version": str(version)},
        ) from None
    rows = pd.read_csv(local, dtype=str, keep_default_na=False, na_values=[""])
    labels = rows.pop(LABEL_COLUMN).astype(int).to_numpy()
    return rows, labels


def list_versions(name: str, settings: Settings) -> list[dict[str, Any]]:
    """Every version with its aliases, kind and key held-out figures, oldest first."""
    mlflow_client = client(settings)
    aliases: dict[str, list[str]] = {}
    for alias, version in mlflow_client.get_registered_model(name).aliases.items():
        aliases.setdefault(str(version), []).append(alias)
    rows = []
    for mv in sorted(
        mlflow_client.search_model_versions(f"name='{name}'"), key=lambda v: int(v.version)
    ):
        metrics = mlflow_client.get_run(mv.run_id).data.metrics if mv.run_id else {}
        rows.append(
            {
                "version": str(mv.version),
                "aliases": sorted(aliases.get(str(mv.version), [])),
                "kind": (mv.tags or {}).get("model_kind"),
                **{
                    key: (round(metrics[key], 4) if key in metrics else None) for key in KEY_METRICS
                },
                "created": mv.creation_timestamp,
            }
        )
    return rows
