"""The one settings object. Everything configurable is read from the environment here."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Read from `RETAINWISE_*` variables (plus the standard AWS ones); no I/O on creation."""

    model_config = SettingsConfigDict(env_prefix="RETAINWISE_", extra="ignore")

    home: Path = Field(default=Path(".retainwise"), description="all local state lives here")
    database_url: str | None = None
    mlflow_tracking_uri: str | None = None
    mlflow_artifact_root: str | None = None

    bucket: str = "retainwise-uploads"
    queue_name: str = "retainwise-uploads"
    dead_letter_queue_name: str = "retainwise-uploads-dlq"
    max_receive_count: int = 3
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_DEFAULT_REGION")
    aws_endpoint_url: str | None = Field(default=None, validation_alias="AWS_ENDPOINT_URL")

    default_model: str = "churn"
    default_account: str = "default"
    deployment_name: str = "score-upload/score-upload"  # the warm runners
    large_deployment_name: str = "score-upload/score-upload-large"  # above chunked_above_bytes
    max_upload_bytes: int = 200_000_000  # 200 MB, as messages to customers say it
    max_rejected_share: float = 0.5
    chunked_above_bytes: int = 64 * 2**20  # larger files are scored chunk by chunk
    chunk_bytes: int = 8 * 2**20           # ~60k Telco rows per chunk
    # a running upload refreshes its claim every claim_refresh_seconds; the reaper hands back one
    # silent for stale_after_seconds, or whose run outlived its time limit (base + size / rate)
    stale_after_seconds: int = 300
    claim_refresh_seconds: float = 30.0
    run_timeout_base_seconds: float = 120.0
    run_timeout_bytes_per_second: float = 1_000_000.0
    # the SQS trigger: flow runs created at once, and how long it keeps retrying a busy Prefect
    # API (503) for one message; below the queue's visibility timeout
    # (adapters.aws.VISIBILITY_TIMEOUT_SECONDS), so a message it gives
    # up on is redelivered rather than handled twice at the same time
    trigger_concurrency: int = 4
    trigger_create_timeout: float = 20.0
    top_reasons: bool = False  # add a top_reasons column to results (costs 1x-17x scoring time)

    @cached_property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def db_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home_dir / 'retainwise.db'}"

    @property
    def tracking_uri(self) -> str:
        return self.mlflow_tracking_uri or f"sqlite:///{self.home_dir / 'mlflow.db'}"

    @property
    def artifact_root(self) -> str:
        return self.mlflow_artifact_root or (self.home_dir / "mlartifacts").as_uri()

    # the local stack (`retainwise stack up`): moto and a Prefect server on loopback
    stack_aws_port: int = 4566
    stack_prefect_port: int = 4200
    # the Prefect server's own database (default: SQLite under PREFECT_HOME) and how many warm
    # runner services the stack starts, each with its share of the cores
    prefect_database_url: str | None = None
    runners: int = 1

    @property
    def stack_env_file(self) -> Path:
        return self.home_dir / "stack.env"
