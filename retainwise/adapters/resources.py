"""The external systems a process talks to, built in one place from Settings, once per process.

A process (a warm runner child, the API, a CLI command) holds one `Resources`: its engine (one
connection pool) and boto3 clients are built on first use and closed when the process ends, so a
warm runner serving many flow runs keeps one pool, not one per run. Flows get it from
`Resources.of_process()`; the runner child sets its own at start (`use_for_process`).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy.engine import Engine

from retainwise.adapters import aws
from retainwise.adapters.db import make_engine
from retainwise.config.settings import Settings


@dataclass
class Resources:
    """Lazily connected: building one costs nothing until a client is used; `close()` (or leaving
    the `with` block) disposes the engine and closes the clients that were built."""

    settings: Settings

    @classmethod
    def from_env(cls) -> Resources:
        """Settings read from the environment: for a process whose entry point is not ours."""
        return cls(Settings())

    @classmethod
    def of_process(cls, settings: Settings | None = None) -> Resources:
        """This process's Resources: what flows use, so a warm runner's runs share one pool.
        `settings`: the entry point's, used if the process has none yet."""
        return process_resources(settings)

    @cached_property
    def engine(self) -> Engine:
        return make_engine(self.settings.db_url)

    @cached_property
    def s3(self) -> Any:
        return aws.client("s3", self.settings)

    @cached_property
    def queue(self) -> aws.Queue:
        return aws.open_queue(self.settings)

    def close(self) -> None:
        """Dispose the engine, close the boto3 clients built so far; a later use rebuilds one."""
        built = vars(self)
        if "engine" in built:
            built.pop("engine").dispose()
        if "s3" in built:
            built.pop("s3").close()
        if "queue" in built:
            built.pop("queue").sqs.close()

    def __enter__(self) -> Resources:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


@dataclass
class _ProcessSlot:
    resources: Resources | None = None
    pid: int = 0


_slot = _ProcessSlot()
_lock = threading.Lock()


def process_resources(settings: Settings | None = None) -> Resources:
    """This process's Resources: the one a runner child set, else built once on first use from
    the entry point's `settings` (a CLI command's) or, in a process no entry point of ours started
    (a flow run Prefect spawned), from the environment; closed at exit. A forked child never uses
    its parent's (sockets are shared)."""
    with _lock:
        if _slot.resources is None or _slot.pid != os.getpid():
            _slot.resources, _slot.pid = (
                Resources(settings) if settings is not None else Resources.from_env(),
                os.getpid(),
            )
            atexit.unregister(forget_process_resources)  # once, however often it is rebuilt
            atexit.register(forget_process_resources)
        return _slot.resources


@contextlib.contextmanager
def use_for_process(resources: Resources) -> Iterator[Resources]:
    """Make `resources` the process's for the block (a runner child's lifetime), then close it."""
    with _lock:
        _slot.resources, _slot.pid = resources, os.getpid()
    try:
        yield resources
    finally:
        forget_process_resources()


def forget_process_resources() -> None:
    """Close and drop the process's Resources, so the next use reads the environment again (tests
    change it between tests)."""
    with _lock:
        resources, owned = _slot.resources, _slot.pid == os.getpid()
        _slot.resources, _slot.pid = None, 0
    if resources is not None and owned:
        resources.close()
