"""The one settings object. Everything configurable is read from the environment here."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from retainwise.config.errors import MissingSetting

MIN_SESSION_SECRET_CHARS = 32
LOCAL_SCHEMES = ("sqlite", "file")  # the local stack's stores: one machine's disk


class Settings(BaseSettings):
    """Read from `RETAINWISE_*` variables (plus the standard AWS ones); no I/O on creation."""

    model_config = SettingsConfigDict(env_prefix="RETAINWISE_", extra="ignore")

    # `production` has no local fallbacks: a missing URL stops the process, naming the variable
    env: Literal["local", "production"] = "local"
    home: Path = Field(default=Path(".retainwise"), description="all local state lives here")
    database_url: str | None = None
    # on ECS: the RDS secret's JSON (username, password, host, port, dbname), injected by the task
    # definition's `secrets`; the URLs of the app's and MLflow's databases are built from it
    database_secret: str | None = None
    # `migrate` only: the login every other job connects with (JSON with username and password;
    # on ECS the app user's RDS secret). migrate creates or updates that PostgreSQL role with row
    # access (DML) and no DDL; the other jobs get it as their RETAINWISE_DATABASE_SECRET
    database_app_secret: str | None = None
    # `migrate` only: the API's login (JSON with username and password), rows in every table; the
    # app login above may not write accounts or read api_keys. Unset: the API uses the app login
    database_api_secret: str | None = None
    mlflow_database: str = "mlflow"
    mlflow_tracking_uri: str | None = None
    mlflow_artifact_root: str | None = None

    bucket: str = "retainwise-uploads"
    queue_name: str = "retainwise-uploads"
    dead_letter_queue_name: str = "retainwise-uploads-dlq"
    max_receive_count: int = 3
    aws_region: str = Field(default="us-east-1", validation_alias="AWS_DEFAULT_REGION")
    aws_endpoint_url: str | None = Field(default=None, validation_alias="AWS_ENDPOINT_URL")
    # botocore's standard retry mode, for every client: throttling, 5xx and dropped connections
    # are retried inside each call, up to this many requests in all
    aws_max_attempts: int = Field(default=3, validation_alias="AWS_MAX_ATTEMPTS")

    default_model: str = "churn"
    default_account: str = "default"
    deployment_name: str = "score-upload/score-upload"  # the warm runners
    large_deployment_name: str = "score-upload/score-upload-large"  # above chunked_above_bytes
    max_upload_bytes: int = 200_000_000  # 200 MB, as messages to customers say it
    # uploads one account may have PENDING or PROCESSING (an account row may set its own);
    # the API answers 429 above it and the trigger sets the same Prefect global concurrency limit
    max_active_uploads: int = 4
    # signs the web app's session cookies; set it in production (else a random one per process)
    session_secret: str | None = None
    session_https_only: bool = False  # Secure cookies: set true where TLS terminates in front
    # requests per API key (per API task): a minute's average, and the burst allowed above it
    rate_limit_per_minute: int = 300
    rate_limit_burst: int = 60
    max_outcomes_bytes: int = 10_000_000  # an outcomes file: ~500k rows of customer_id, churned
    max_rejected_share: float = 0.5
    chunked_above_bytes: int = 64 * 2**20  # larger files are scored chunk by chunk
    # stored objects up to this size run in the flow run itself (no task run; retried as a
    # whole); larger ones as a task run per stage, each retried on its own. A task run per stage
    # costs ~0.7 CPU s and ~2.7 s more per run whatever the size (benchmarks/README "Issue 22,
    # round 4 (large uploads)"), so every whole file (up to chunked_above_bytes) runs in the flow;
    # only chunked uploads are staged
    small_upload_bytes: int = 64 * 2**20
    chunk_bytes: int = 8 * 2**20  # ~60k Telco rows per chunk
    # a whole file this large is scored as two halves in two processes (uploads/halves.py), when
    # the 1-minute load average per core is below split_max_load (the other core is free)
    split_above_bytes: int = 40_000_000  # ~300k Telco rows
    split_max_load: float = 0.75
    max_columns: int = 1000  # fields in a file's header
    max_record_bytes: int = 4 * 2**20  # one row, in the chunked reader
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
    # "challenger": each upload is also scored by the challenger, results kept apart
    # (shadow-v<N>.csv)
    shadow: Literal["off", "challenger"] = "off"
    # the promotion gate also judges production outcomes both versions scored, from this many rows
    promotion_outcome_rows: int = 500
    top_reasons: bool = False  # add a top_reasons column to results (every row explained)
    # the actions list explains every HIGH customer and the first explain_top_n of the ranked list
    explain_top_n: int = 20_000
    # a feature (or the score) whose PSI against training is above this has drifted: the upload's
    # report flags it, the dashboard counts it, monitoring raises retainwise.data.drifted. 0.25 is
    # the usual line for a significant shift (0.1-0.25 is moderate); an alert that pages should
    # fire on significant shifts only
    drift_alert_psi: float = 0.25
    # webhooks: Fernet key(s) encrypting the signing secrets (comma-separated, the first
    # encrypts; required in production) and the API's address for the links in each event
    webhook_key: str | None = None
    public_url: str | None = None

    @cached_property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    def _or_local(self, value: str | None, variable: str, local: str) -> str:
        """The configured value; outside production the local stack's default stands in."""
        if value:
            return value
        if self.env == "production":
            raise MissingSetting(
                f"{variable} is not set; RETAINWISE_ENV=production has no local fallback"
            )
        return local

    def _from_secret(self, database: str | None = None) -> str | None:
        """A PostgreSQL URL from the RDS secret, for its own database or another on the server."""
        if not self.database_secret:
            return None
        secret = json.loads(self.database_secret)
        user, password = (quote(secret[key], safe="") for key in ("username", "password"))
        return (
            f"postgresql+psycopg://{user}:{password}@{secret['host']}:"
            f"{secret.get('port', 5432)}/{database or secret['dbname']}"
        )

    @property
    def db_url(self) -> str:
        return self._or_local(
            self.database_url or self._from_secret(),
            "RETAINWISE_DATABASE_URL (or RETAINWISE_DATABASE_SECRET)",
            f"sqlite:///{self.home_dir / 'retainwise.db'}",
        )

    @property
    def app_login(self) -> tuple[str, str] | None:
        """(username, password) of the jobs' rows-only role; None locally when unset."""
        if self.database_app_secret:
            secret = json.loads(self.database_app_secret)
            return secret["username"], secret["password"]
        if self.env == "production":
            raise MissingSetting(
                "RETAINWISE_DATABASE_APP_SECRET is not set; in production "
                "`migrate` gives the other jobs a login without DDL rights"
            )
        return None

    @property
    def api_login(self) -> tuple[str, str] | None:
        """(username, password) of the API's rows role; None when it shares the app login."""
        if not self.database_api_secret:
            return None
        secret = json.loads(self.database_api_secret)
        return secret["username"], secret["password"]

    @property
    def tracking_uri(self) -> str:
        return self._or_local(
            self.mlflow_tracking_uri or self._from_secret(self.mlflow_database),
            "RETAINWISE_MLFLOW_TRACKING_URI (or RETAINWISE_DATABASE_SECRET)",
            f"sqlite:///{self.home_dir / 'mlflow.db'}",
        )

    @property
    def artifact_root(self) -> str:
        return self._or_local(
            self.mlflow_artifact_root,
            "RETAINWISE_MLFLOW_ARTIFACT_ROOT",
            (self.home_dir / "mlartifacts").as_uri(),
        )

    def production_problems(self, serves_web: bool) -> list[str]:
        """Each setting this production process lacks or holds unsafe, by variable; [] locally.
        Only a process that serves the web app needs the session settings."""
        if self.env != "production":
            return []
        problems = [
            self._unsafe_url(lambda: self.db_url, "RETAINWISE_DATABASE_URL"),
            self._unsafe_url(lambda: self.tracking_uri, "RETAINWISE_MLFLOW_TRACKING_URI"),
        ]
        if serves_web:
            problems += self._unsafe_sessions()
        return [problem for problem in problems if problem]

    @staticmethod
    def _unsafe_url(url: Callable[[], str], variable: str) -> str | None:
        try:
            value = url()
        except MissingSetting as exc:
            return str(exc)
        if value.startswith(LOCAL_SCHEMES):
            return f"{variable} is a local file ({value.split(':')[0]}); production needs a server"
        return None

    def _unsafe_sessions(self) -> list[str | None]:
        secret = self.session_secret or ""
        return [
            None
            if len(secret) >= MIN_SESSION_SECRET_CHARS
            else f"RETAINWISE_SESSION_SECRET is {'too short' if secret else 'not set'} (at least "
            f"{MIN_SESSION_SECRET_CHARS} characters, the same for every API task)",
            None
            if self.session_https_only
            else "RETAINWISE_SESSION_HTTPS_ONLY is not true: session cookies would lack Secure",
        ]

    # the local stack (`retainwise stack up`): moto and a Prefect server on loopback
    stack_aws_port: int = 4566
    stack_prefect_port: int = 4200
    stack_api_port: int = 8000
    # the Prefect server's own database (default: SQLite under PREFECT_HOME) and how many warm
    # runner services the stack starts, each with its share of the cores
    prefect_database_url: str | None = None
    runners: int = 1

    @property
    def stack_env_file(self) -> Path:
        return self.home_dir / "stack.env"


def setting_default(name: str) -> Any:
    """A setting's default, read without the environment: domain objects (Limits, ScoringPolicy)
    default to it rather than writing the number a second time."""
    return Settings.model_fields[name].default


def check_production(settings: Settings, serves_web: bool) -> None:
    """Stop a production process at start, naming every missing or unsafe setting at once."""
    problems = settings.production_problems(serves_web)
    if problems:
        raise MissingSetting("RETAINWISE_ENV=production refuses to start: " + "; ".join(problems))
