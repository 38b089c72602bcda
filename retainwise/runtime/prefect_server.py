"""The local stack's Prefect server: Prefect's own app, with SQLite writes queued, not refused.

Prefect opens SQLite write transactions as DEFERRED: a transaction reads, then writes. If another
write commits in between, SQLite refuses the upgrade at once (its busy timeout does not apply) and
the API answers 503; in a burst of uploads the trigger's run creations met 100-260 of them. With
every transaction begun IMMEDIATE a writer waits for the lock (milliseconds) instead.
"""

from __future__ import annotations

import argparse


def begin_writes_immediately() -> None:
    from prefect.server.database.configurations import AioSqliteConfiguration

    begin = AioSqliteConfiguration.begin_transaction

    def begin_transaction(self, session, with_for_update: bool = False):
        return begin(self, session, with_for_update=True)

    AioSqliteConfiguration.begin_transaction = begin_transaction


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4200)
    args = parser.parse_args(argv)
    begin_writes_immediately()
    import uvicorn
    from prefect.server.api.server import create_app

    uvicorn.run(create_app(final=True), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
