"""Shadow scoring: the challenger scores each upload too, after the champion's results are written.

Its results go to S3 beside the customer's (results/<account>/<id>/shadow-v<N>.csv), named by no
upload row, so the customer never sees them; `retainwise model compare` joins them to outcomes.
A failure here logs a warning and never changes the upload's status.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from prefect import get_run_logger

from retainwise.adapters import aws
from retainwise.adapters import mlflow_registry as registry
from retainwise.adapters.db import Prediction
from retainwise.adapters.resources import Resources
from retainwise.config.settings import Settings
from retainwise.uploads.output import shadow_key
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.scoring import Output, Route, score_object
from tasks.retry import cpu_task, io_task
from tasks.uploads import S3Sinks


def shadow_score(
    env: Resources, prediction: Prediction, champion_version: str, route: Route
) -> str | None:
    """Score the upload with the challenger when RETAINWISE_SHADOW=challenger; its key, or None."""
    if env.settings.shadow != "challenger":
        return None
    loaded = load_challenger(
        prediction.model_name, str(champion_version), env.settings, return_state=True
    )
    model = _result(loaded, prediction)
    if model is None:
        return None
    return _result(
        score_with_challenger(env, prediction, model, route, return_state=True), prediction
    )


def _result(state: Any, prediction: Prediction) -> Any:
    """A shadow task's result, or None (with a warning) when it failed."""
    if state.is_failed():
        get_run_logger().warning(
            "shadow scoring of %s failed (the upload is unaffected): %s",
            prediction.id,
            state.message,
        )
        return None
    return state.result()


@io_task("load-challenger")
def load_challenger(
    name: str, champion_version: str, settings: Settings
) -> registry.LoadedModel | None:
    """The challenger from MLflow (retried: I/O only), or None when it is the champion."""
    version = registry.alias_version(name, registry.CHALLENGER, settings)
    if version is None or str(version) == champion_version:
        get_run_logger().info(
            "no challenger of %s apart from the champion: no shadow scoring", name
        )
        return None
    return registry.load_version(name, str(version), settings.tracking_uri)


@cpu_task("shadow-score")
def score_with_challenger(
    env: Resources, prediction: Prediction, model: registry.LoadedModel, route: Route
) -> str | None:
    """The challenger's results written to the shadow key; None when nothing was written."""
    settings, logger, name, version = env.settings, get_run_logger(), model.name, model.version
    key = shadow_key(prediction.account, prediction.id, str(version))
    scored = score_object(
        aws.S3Object(env.s3, settings.bucket, prediction.input_key),
        model,
        replace(ScoringPolicy.from_settings(settings), reasons=False),
        S3Sinks(env.s3, settings.bucket, {Output.RESULTS: key}),  # results only
        prediction.id,
        route,
    )
    if scored.report["error"]:
        logger.warning(
            "challenger %s v%s rejected upload %s: %s",
            name,
            version,
            prediction.id,
            scored.report["error"],
        )
        return None
    logger.info("shadow: %s v%s scored upload %s to %s", name, version, prediction.id, key)
    return key
