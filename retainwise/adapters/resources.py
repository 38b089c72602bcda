"""The external systems a run talks to, built in one place from Settings (dagster-style)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy.engine import Engine

from retainwise.adapters import aws
from retainwise.adapters.db import make_engine
from retainwise.config.settings import Settings


@dataclass
class Resources:
    """Lazily connected: building one costs nothing until a client is used."""

    settings: Settings

    @classmethod
    def from_env(cls) -> Resources:
        return cls(Settings())

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.db_url)

    @cached_property
    def s3(self) -> Any:
        return aws.client("s3", self.settings)

    @cached_property
    def queue(self) -> aws.Queue:
        return aws.open_queue(self.settings)
