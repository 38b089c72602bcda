"""The local stack's Prefect server queues SQLite writers instead of answering 503; on PostgreSQL
the patch is not applied. The first test fails if a Prefect upgrade changes what it patches."""

import asyncio
import os
from contextlib import asynccontextmanager

import pytest
from prefect.server.database import configurations

from retainwise.runtime import prefect_server
from retainwise.runtime.prefect_server import begin_writes_immediately


def begin_modes() -> list[str | None]:
    """The BEGIN mode Prefect would emit for a default (read-then-write) transaction."""
    seen = []

    class Session:
        @asynccontextmanager
        async def begin(self):
            seen.append(configurations.SQLITE_BEGIN_MODE.get())
            yield

    async def transaction():
        config = configurations.AioSqliteConfiguration
        async with config.begin_transaction(None, Session()):
            pass

    asyncio.run(transaction())
    return seen


def test_default_transactions_begin_immediate_once_patched(monkeypatch):
    monkeypatch.setattr(
        configurations.AioSqliteConfiguration,
        "begin_transaction",
        configurations.AioSqliteConfiguration.begin_transaction,
    )  # undone after
    assert begin_modes() == ["DEFERRED"]  # Prefect's own: a later write can be refused at once
    begin_writes_immediately()
    assert begin_modes() == ["IMMEDIATE"]


@pytest.mark.parametrize(
    "database_url, immediate",
    [(None, True), ("postgresql+psycopg://postgres@127.0.0.1:5432/prefect", False)],
)
def test_the_patch_applies_only_while_the_server_is_on_sqlite(monkeypatch, database_url, immediate):
    import uvicorn
    from prefect.server.api import server

    monkeypatch.setattr(
        configurations.AioSqliteConfiguration,
        "begin_transaction",
        configurations.AioSqliteConfiguration.begin_transaction,
    )  # undone after
    monkeypatch.setenv("PREFECT_SERVER_DATABASE_CONNECTION_URL", "")  # restored after, as main
    monkeypatch.delenv("PREFECT_SERVER_DATABASE_CONNECTION_URL")  # sets it in os.environ
    monkeypatch.setattr(server, "create_app", lambda final: "app")
    monkeypatch.setattr(uvicorn, "run", lambda app, **_: None)
    prefect_server.main(
        ["--port", "0"] + (["--database-url", database_url] if database_url else [])
    )
    assert begin_modes() == (["IMMEDIATE"] if immediate else ["DEFERRED"])
    if database_url:
        assert os.environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"] == (
            "postgresql+asyncpg://postgres@127.0.0.1:5432/prefect"
        )
