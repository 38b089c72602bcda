"""The MLflow adapter: register versions, read and move aliases, load models and their test rows.

A version's run carries its metrics, profile, model card, plots and its held-out test rows
(`evaluation/holdout.csv`), so a promotion can score champion and challenger on the same rows.

The store is reached one way: `client(settings)`, an MlflowClient for the settings' tracking URI
(one per URI per process), with downloads given the URI too. MLflow's process-wide tracking URI
(`mlflow.set_tracking_uri`, the fluent `mlflow.start_run`/`log_*` API) is never set or read, so
two stores in one process (tests, a runner child) cannot cross.
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
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
MODEL_DIR = "model"

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
    """The one way to the store: tracking and registry in the settings' tracking URI."""
    return _client(settings.tracking_uri)


@lru_cache(maxsize=8)
def _client(tracking_uri: str) -> MlflowClient:
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


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

    upgrade.callback(tracking_uri)  # type: ignore[misc]  # a click command's function
    return True


def _experiment_id(settings: Settings) -> str:
    mlflow_client = client(settings)
    experiment = mlflow_client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    return mlflow_client.create_experiment(EXPERIMENT, artifact_location=settings.artifact_root)


def _held_out(trained: TrainedModel) -> pd.DataFrame:
    """The test rows training keeps (models.training always sets them; registering needs them)."""
    if trained.evaluation is None:
        raise ValueError("a trained model without its held-out rows cannot be registered")
    return trained.evaluation


def _log_run_artifacts(
    store: MlflowClient, run_id: str, trained: TrainedModel, name: str, source: str | None
) -> None:
    from models.card import model_card
    from models.plots import calibration_figure, roc_figure

    store.log_dict(run_id, trained.profile.to_dict(), "profile.json")
    store.log_dict(
        run_id,
        {
            "candidates": trained.candidates,
            "chosen": trained.kind,
            "excluded_columns": trained.excluded,
        },
        "candidates.json",
    )
    store.log_dict(run_id, dict(trained.curves), "evaluation/curves.json")
    store.log_text(run_id, "\n".join(trained.notes) or "no columns dropped", "notes.txt")
    store.log_text(run_id, model_card(trained, name, source), "model_card.md")
    store.log_text(run_id, _held_out(trained).to_csv(index=False), EVALUATION_ARTIFACT)
    store.log_figure(
        run_id, roc_figure(trained.curves["roc"], trained.metrics["roc_auc"]), "plots/roc.png"
    )
    store.log_figure(
        run_id,
        calibration_figure(trained.curves["reliability"], trained.metrics["brier"]),
        "plots/calibration.png",
    )


def _log_figures(
    store: MlflowClient, run_id: str, params: dict[str, str], metrics: dict[str, float]
) -> None:
    from mlflow.entities import Metric, Param

    now = int(time.time() * 1000)
    store.log_batch(
        run_id,
        metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
        params=[Param(key, str(value)) for key, value in params.items()],
    )


def _log_model(store: MlflowClient, run_id: str, trained: TrainedModel) -> None:
    """The pipeline saved as an MLflow sklearn model under the run's `model/` artifacts.

    Serialised with cloudpickle: MLflow 3's default skops format refuses the boosted trees and our
    CalibratedModel unless each type is trusted by hand. Loading needs this code base installed.
    """
    from mlflow.models import infer_signature

    example = prepare_features(_held_out(trained).head(5), trained.profile.features)
    signature = infer_signature(example, trained.pipeline.predict_proba(example)[:, 1])
    with tempfile.TemporaryDirectory() as directory:
        local = Path(directory) / MODEL_DIR
        mlflow.sklearn.save_model(
            trained.pipeline,
            str(local),
            signature=signature,
            serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_CLOUDPICKLE,
            pip_requirements=pip_requirements(),
            metadata={"retainwise_profile": json.dumps(trained.profile.to_dict())},
        )
        store.log_artifacts(run_id, str(local), MODEL_DIR)


def _new_version(store: MlflowClient, name: str, run: Any) -> str:
    """A registered version of the run's model (the registered model created on first use)."""
    try:
        store.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    source = f"{run.info.artifact_uri}/{MODEL_DIR}"
    return str(store.create_model_version(name, source, run_id=run.info.run_id).version)


def register(
    trained: TrainedModel,
    name: str,
    settings: Settings,
    params: dict[str, str] | None = None,
    source: str | None = None,
) -> str:
    """Log the calibrated model with its profile, card, plots and test rows; alias `challenger`."""
    settings.home_dir.mkdir(parents=True, exist_ok=True)  # a local store's SQLite file is there
    store = client(settings)
    run = store.create_run(_experiment_id(settings))
    run_id = run.info.run_id
    try:
        _log_figures(store, run_id, {**trained.params, **(params or {})}, trained.metrics)
        _log_run_artifacts(store, run_id, trained, name, source)
        _log_model(store, run_id, trained)
        compiled = _log_compiled_trees(store, run_id, trained)
    except BaseException:
        store.set_terminated(run_id, "FAILED")
        raise
    store.set_terminated(run_id)
    version = _new_version(store, name, run)
    store.set_model_version_tag(name, version, "run_id", run_id)
    store.set_model_version_tag(name, version, "model_kind", trained.kind)
    if compiled:
        store.set_model_version_tag(name, version, COMPILED_TAG, compiled)
    store.set_registered_model_alias(name, CHALLENGER, version)
    return version


def _log_compiled_trees(store: MlflowClient, run_id: str, trained: TrainedModel) -> str | None:
    """Compile a boosted model's trees (checked against scikit-learn on the test rows) into the
    run; the artifact path, or None when the model has no trees or compiling failed."""
    from models.compiled import LIBRARY, compile_trees

    check_rows = prepare_features(_held_out(trained), trained.profile.features)
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
        store.log_artifact(run_id, str(library), COMPILED_DIR)
    return f"{COMPILED_DIR}/{LIBRARY}"


def _load_compiled_trees(name: str, version: str, pipeline: Any, tracking_uri: str) -> Any:
    """The version's compiled trees, or None (with a warning for a boosted model without them,
    e.g. one registered before compiling existed, or a library this machine cannot load)."""
    from models.compiled import CompiledModel, boosted_parts

    if boosted_parts(pipeline) is None:
        return None
    tags = _client(tracking_uri).get_model_version(name, version).tags or {}
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
        library = _client(tracking_uri).download_artifacts(run_id, artifact)
        return CompiledModel(pipeline, Path(library))
    except Exception as exc:
        log.warning(
            "%s version %s: compiled trees could not be loaded, scoring with scikit-learn: %s",
            name,
            version,
            exc,
        )
        return None


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
    # where the version's files are, asked of this store: MLflow resolves `models:/` URIs
    # against its process-wide registry URI, whatever registry_uri it is given
    source = _client(tracking_uri).get_model_version_download_uri(name, version)
    local = mlflow.artifacts.download_artifacts(
        source, tracking_uri=tracking_uri, registry_uri=tracking_uri
    )
    pipeline = mlflow.sklearn.load_model(local)
    metadata = mlflow.models.Model.load(local).metadata or {}
    profile = ModelProfile.from_dict(json.loads(metadata["retainwise_profile"]))
    return LoadedModel(
        name=name,
        version=str(version),
        pipeline=pipeline,
        profile=profile,
        compiled=_load_compiled_trees(name, str(version), pipeline, tracking_uri),
    )


def evaluation_set(name: str, version: str, settings: Settings) -> tuple[pd.DataFrame, np.ndarray]:
    """The held-out test rows (raw text, as read) and their 0/1 labels stored with a version."""
    store = client(settings)
    run_id = store.get_model_version(name, str(version)).run_id
    try:
        if run_id is None:  # a version registered from outside a run
            raise MlflowException(f"version {version} has no run")
        local = store.download_artifacts(run_id, EVALUATION_ARTIFACT)
    except (MlflowException, OSError) as exc:
        raise PromotionRefused(
            f"version {version} of {name!r} has no stored evaluation set "
            f"(trained before the promotion gate existed?): {exc}",
            {"version": str(version)},
        ) from None
    rows = pd.read_csv(local, dtype=str, keep_default_na=False, na_values=[""])
    labels = rows.pop(LABEL_COLUMN).astype(int).to_numpy()
    return rows, labels


@dataclass(frozen=True)
class VersionSummary:
    """A registered version as `retainwise model list` shows it: aliases, kind, holdout figures."""

    version: str
    aliases: list[str]
    kind: str | None
    figures: dict[str, float | None]  # each of KEY_METRICS, rounded; None if the run has none
    created: int  # milliseconds since the epoch, as MLflow gives it

    def to_json(self) -> dict[str, object]:
        return {
            "version": self.version,
            "aliases": self.aliases,
            "kind": self.kind,
            **self.figures,
            "created": self.created,
        }


def list_versions(name: str, settings: Settings) -> list[VersionSummary]:
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
            VersionSummary(
                version=str(mv.version),
                aliases=sorted(aliases.get(str(mv.version), [])),
                kind=(mv.tags or {}).get("model_kind"),
                figures={
                    key: (round(metrics[key], 4) if key in metrics else None) for key in KEY_METRICS
                },
                created=mv.creation_timestamp,
            )
        )
    return rows
