"""Large uploads: decided and scored chunk by chunk (retainwise.streaming), in bounded memory."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from retainwise import streaming
from retainwise.registry import LoadedModel
from retainwise.settings import Settings
from tasks.retry import IO_TASK, is_transient
from tasks.uploads import ResultKeys, result_keys


@task(name="check-upload-size", cache_policy=NO_CACHE, retry_condition_fn=is_transient, **IO_TASK)
def is_large_upload(s3, settings: Settings, key: str) -> bool:
    """Over the size limit: UploadRejected. Large and plain or gzip text: stream it."""
    return streaming.should_stream(s3, settings.bucket, key, settings.max_upload_bytes)


@task(name="score-upload-in-chunks", cache_policy=NO_CACHE)
def score_in_chunks(s3, settings: Settings, prediction_id: str, key: str,
                    model: LoadedModel) -> tuple[dict, ResultKeys]:
    keys = result_keys(prediction_id)
    report = streaming.score_object(s3, settings.bucket, key, keys, model,
                                    settings.max_rejected_share, settings.top_reasons)
    return report, keys
