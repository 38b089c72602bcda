"""Validation and scoring tasks around the pure functions in retainwise.uploads.validation and models/."""

from __future__ import annotations

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from models.profile import ModelProfile
from models.scoring import score_frame
from retainwise.adapters import mlflow_registry as registry
from retainwise.uploads.reading import TextTable
from retainwise.config.settings import Settings
from retainwise.uploads.validation import ValidatedUpload
from retainwise.uploads.validation import validate_upload as validate_table
from tasks.retry import IO_TASK, is_transient


@task(name="load-champion", cache_policy=NO_CACHE, retry_condition_fn=is_transient, **IO_TASK)
def load_champion(model_name: str, settings: Settings) -> registry.LoadedModel:
    return registry.load_champion(model_name, settings)


@task(name="validate-upload", cache_policy=NO_CACHE)
def validate_upload(table: TextTable | pd.DataFrame, profile: ModelProfile,
                    max_rejected_share: float) -> ValidatedUpload:
    """File-level faults raise UploadRejected; too many bad rows set `failure` (with a report)."""
    return validate_table(table, profile, max_rejected_share)


@task(name="score-customers", cache_policy=NO_CACHE)
def score_customers(model: registry.LoadedModel, upload: ValidatedUpload,
                    reasons: bool = False) -> pd.DataFrame:
    return score_frame(model.scorer, model.profile, upload.accepted, upload.customer_ids,
                       reasons=reasons)
