"""The local stack's Prefect server: Prefect's own app, on SQLite (the default) with writes queued,
not refused, or on PostgreSQL (`--database-url`, from RETAINWISE_PREFECT_DATABASE_URL).

Prefect opens SQLite write transactions as DEFERRED: a transaction reads, then writes. If another
write commits in between, SQLite refuses the upgrade at once (its busy timeout does not apply) and
the API answers 503; in a burst of uploads the trigger's run creations met 100-260 of them. With
every transaction begun IMMEDIATE a writer waits for the lock (milliseconds) instead.
"""

from __future__ import annotations

import argparse
import os


def begin_writes_immediately() -> None:
    from prefect.server.database.configurations import AioSqliteConfiguration

    begin = AioSqliteConfiguration.begin_transaction

    def begin_transaction(self, session, with_for_update: bool = False):
        return begin(self, session, with_for_update=True)

    AioSqliteConfiguration.begin_transaction = begin_transaction  # type: ignore[method-assign]


def asyncpg_url(url: str) -> str:
    """Prefect's server talks to PostgreSQL through asyncpg; accept our psycopg-style URLs."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql+asyncpg{sep}{rest}" if scheme.startswith("postgres") else url


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4200)
    parser.add_argument("--database-url", help="PostgreSQL for the server (default: SQLite)")
    args = parser.parse_args(argv)
    if args.database_url:  # before Prefect reads its settings; PostgreSQL locks rows itself
        os.environ["PREFECT_SERVER_DATABASE_CONNECTION_URL"] = asyncpg_url(args.database_url)
    else:
        begin_writes_immediately()
    import uvicorn
    from prefect.server.api.server import create_app

    uvicorn.run(create_app(final=True), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
