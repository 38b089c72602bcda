"""Shadow scoring: the challenger scores each upload too, after the champion's results are written.

Its results go to S3 beside the customer's (results/<account>/<id>/shadow-v<N>.csv), named by no
upload row, so the customer never sees them; `retainwise model compare` joins them to outcomes.
A failure here logs a warning and never changes the upload's status.
"""

from __future__ import annotations

import tempfile

from prefect import get_run_logger

from retainwise.adapters import aws
from retainwise.adapters import mlflow_registry as registry
from retainwise.adapters.db import Prediction
from retainwise.uploads import pipeline, streaming
from retainwise.uploads.output import shadow_key
from retainwise.uploads.reading import Limits
from tasks.retry import io_task


def shadow_score(env, prediction: Prediction, champion_version: str, chunked: bool) -> str | None:
    """Score the upload with the challenger when RETAINWISE_SHADOW=challenger; its key, or None."""
    if env.settings.shadow != "challenger":
        return None
    state = score_with_challenger(
        env, prediction, str(champion_version), chunked, return_state=True
    )
    if state.is_failed():
        get_run_logger().warning(
            "shadow scoring of %s failed (the upload is unaffected): %s",
            prediction.id,
            state.message,
        )
        return None
    return state.result()


@io_task("shadow-score")
def score_with_challenger(
    env, prediction: Prediction, champion_version: str, chunked: bool
) -> str | None:
    """The challenger's results written to the shadow key; None when nothing was written."""
    settings, logger, name = env.settings, get_run_logger(), prediction.model_name
    version = registry.alias_version(name, registry.CHALLENGER, settings)
    if version is None or str(version) == champion_version:
        logger.info("no challenger of %s apart from the champion: no shadow scoring", name)
        return None
    model = registry.load_version(name, str(version), settings.tracking_uri)
    key = shadow_key(prediction.account, prediction.id, str(version))
    limits = Limits.from_settings(settings)
    if chunked:
        with tempfile.TemporaryFile() as results, tempfile.TemporaryFile() as rejects:
            counts, _ = streaming.score_stream(
                aws.iter_blocks(env.s3, settings.bucket, prediction.input_key),
                model,
                settings.max_rejected_share,
                results,
                rejects,
                settings.chunk_bytes,
                False,
                limits,
            )
            if counts["failure"] is None:
                aws.upload_file(env.s3, settings.bucket, key, results)
            failure = counts["failure"]
    else:
        data = aws.get_bytes(env.s3, settings.bucket, prediction.input_key)
        scored = pipeline.score_file(data, model, limits, settings.max_rejected_share)
        if scored.results_csv is not None:
            aws.put_bytes(env.s3, settings.bucket, key, scored.results_csv)
        failure = scored.upload.failure
    if failure:
        logger.warning(
            "challenger %s v%s rejected upload %s: %s", name, version, prediction.id, failure
        )
        return None
    logger.info("shadow: %s v%s scored upload %s to %s", name, version, prediction.id, key)
    return key
