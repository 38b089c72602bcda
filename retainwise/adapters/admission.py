"""The per-account cap on active uploads, taken atomically, and web sessions ended on the server.

An upload holds a slot (`upload_slots`) from the moment its body starts streaming until its
predictions row is PENDING (then that row counts) or it is refused. A slot is taken under a
per-account lock (PostgreSQL: a transaction advisory lock; SQLite: the write lock the insert
takes), counting the account's live slots and its PENDING and PROCESSING uploads, so of N
concurrent uploads against a cap of C at most C are received. A slot left by an API task that
died stops counting after SLOT_SECONDS.

`session_versions` holds each API key's web-session generation: a session remembers the one it
was signed in under; sign-out raises it, so that cookie (and any copy) no longer signs in.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from retainwise.adapters.db import Status, metadata, predictions

SLOT_SECONDS = 3600  # longer than any upload takes to arrive; a dead task's slot then frees

upload_slots = sa.Table(
    "upload_slots",
    metadata,
    sa.Column("prediction_id", sa.String(36), primary_key=True),
    sa.Column("account", sa.String(255), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
    sa.Index("ix_upload_slots_account", "account"),
)

session_versions = sa.Table(
    "session_versions",
    metadata,
    sa.Column("key_id", sa.String(64), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
)


def take_slot(engine: Engine, account: str, prediction_id: str, cap: int, now: datetime) -> bool:
    """Hold a receiving slot for this upload if the account has fewer than `cap` active; False
    (nothing held) when it does not."""
    with engine.begin() as conn:
        _lock_account(conn, account)
        conn.execute(
            upload_slots.delete().where(
                upload_slots.c.started_at < now - timedelta(seconds=SLOT_SECONDS)
            )
        )
        conn.execute(
            upload_slots.insert().values(
                prediction_id=prediction_id, account=account, started_at=now
            )
        )
        if _active(conn, account) <= cap:
            return True
        conn.rollback()
        return False


def release_slot(engine: Engine, prediction_id: str) -> None:
    """The upload is PENDING (its row counts now) or was refused: its slot is free."""
    with engine.begin() as conn:
        conn.execute(upload_slots.delete().where(upload_slots.c.prediction_id == prediction_id))


def _lock_account(conn: Connection, account: str) -> None:
    """Serialise cap checks of one account; SQLite serialises every writer already."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(hashtext(:a))"), {"a": account})


def _active(conn: Connection, account: str) -> int:
    receiving = sa.select(sa.func.count()).where(upload_slots.c.account == account)
    running = sa.select(sa.func.count()).where(
        predictions.c.account == account,
        predictions.c.status.in_([Status.PENDING.value, Status.PROCESSING.value]),
    )
    return conn.execute(receiving).scalar_one() + conn.execute(running).scalar_one()


def session_version(engine: Engine, key_id: str) -> int:
    """The key's current web-session generation (0 before its first sign-out)."""
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(session_versions.c.version).where(session_versions.c.key_id == key_id)
        ).scalar()
    return found or 0


def end_sessions(engine: Engine, key_id: str) -> int:
    """Sign-out: every session of this key signed in so far stops working; the new generation."""
    with engine.begin() as conn:
        updated = conn.execute(
            session_versions.update()
            .where(session_versions.c.key_id == key_id)
            .values(version=session_versions.c.version + 1)
        ).rowcount
        if not updated:
            conn.execute(session_versions.insert().values(key_id=key_id, version=1))
    return session_version(engine, key_id)
