"""The local stack's Prefect server queues SQLite writers instead of answering 503."""

import asyncio
from contextlib import asynccontextmanager

from prefect.server.database import configurations

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
    monkeypatch.setattr(configurations.AioSqliteConfiguration, "begin_transaction",
                        configurations.AioSqliteConfiguration.begin_transaction)  # undone after
    assert begin_modes() == ["DEFERRED"]  # Prefect's own: a later write can be refused at once
    begin_writes_immediately()
    assert begin_modes() == ["IMMEDIATE"]
