"""Webhooks per account: the endpoint, the outbox of events and every delivery attempt.

The signing secret must be readable to sign, so it cannot be hashed like an API key: it is
stored encrypted with Fernet (AES-128-CBC + HMAC-SHA256) under RETAINWISE_WEBHOOK_KEY (several
keys, comma-separated, the first encrypting: rotation), so a copy of the database alone signs
nothing. Locally, without the variable, a key file is made under $RETAINWISE_HOME (mode 0600).
"""

from __future__ import annotations

import base64
import enum
import json
import os
import secrets
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from retainwise.adapters.accounts import AccountError, get_account
from retainwise.adapters.db import Status, metadata, predictions, utcnow
from retainwise.config.errors import MissingSetting
from retainwise.config.settings import Settings

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32  # the spec allows 24 to 64
KEY_FILE = "webhook.key"

webhook_endpoints = sa.Table(
    "webhook_endpoints",
    metadata,
    sa.Column("account", sa.String(63), sa.ForeignKey("accounts.name"), primary_key=True),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("secret_encrypted", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
)

webhook_events = sa.Table(
    "webhook_events",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("account", sa.String(63), nullable=False),
    sa.Column("subject", sa.String(255), nullable=False),  # the upload, or model/vN
    sa.Column("type", sa.String(64), nullable=False),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("claimed_until", sa.DateTime(timezone=True)),
    sa.Column("delivered_at", sa.DateTime(timezone=True)),
    sa.Column("given_up_at", sa.DateTime(timezone=True)),
    sa.UniqueConstraint("account", "subject", "type"),
    sa.Index("ix_webhook_events_next_attempt_at", "next_attempt_at"),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(40), sa.ForeignKey("webhook_events.id"), nullable=False),
    sa.Column("account", sa.String(63), nullable=False),
    sa.Column("url", sa.String(2048), nullable=False),
    sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("status_code", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("duration_ms", sa.Integer, nullable=False),
    sa.Index("ix_webhook_deliveries_account_attempted_at", "account", "attempted_at"),
)


class EventType(enum.StrEnum):
    UPLOAD_COMPLETED = "upload.completed"
    UPLOAD_FAILED = "upload.failed"
    MODEL_DEGRADED = "model.degraded"
    DATA_DRIFTED = "data.drifted"


EVENT_OF_STATUS = {
    Status.COMPLETED: EventType.UPLOAD_COMPLETED,
    Status.FAILED: EventType.UPLOAD_FAILED,
}


@dataclass(frozen=True)
class Endpoint:
    account: str
    url: str
    created_at: datetime


@dataclass(frozen=True)
class Event:
    """An outbox row claimed for sending, with where to send it and the secret to sign with."""

    id: str
    account: str
    type: str
    payload: str
    attempts: int
    url: str
    secret: str | None  # None: not readable with the configured keys


@dataclass(frozen=True)
class Delivery:
    event_id: str
    url: str
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass(frozen=True)
class ShownDelivery:
    """A delivery attempt as the account sees it, with its event's type and subject."""

    event_id: str
    type: str
    subject: str  # the upload's id; for model.degraded, model/vN
    url: str
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


def secret_box(settings: Settings) -> MultiFernet:
    """The keys the secrets are encrypted under: RETAINWISE_WEBHOOK_KEY, else (not in
    production) a key file made once under the home directory."""
    keys = [k.strip() for k in (settings.webhook_key or "").split(",") if k.strip()]
    if not keys:
        if settings.env == "production":
            raise MissingSetting(
                "RETAINWISE_WEBHOOK_KEY is not set; in production the webhook signing secrets "
                "are encrypted under a key kept outside the database"
            )
        keys = [_local_key(settings.home_dir / KEY_FILE)]
    return MultiFernet([_fernet(k) for k in keys])


def _fernet(key: str) -> Fernet:
    """A Fernet key, its `=` padding optional: the stack generates 43 base64url characters, as a
    Secrets Manager generator cannot put a `=` at the end only."""
    try:
        return Fernet(key + "=" * (-len(key) % 4))
    except ValueError:
        raise MissingSetting(
            "RETAINWISE_WEBHOOK_KEY holds a key that is not 32 url-safe base64 bytes "
            "(make one with Fernet.generate_key())"
        ) from None


def _local_key(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(Fernet.generate_key().decode())
    return path.read_text().strip()


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def set_endpoint(
    engine: Engine, account: str, url: str, box: MultiFernet, now: datetime | None = None
) -> str:
    """Point the account's webhook at `url` with a new secret; returns the secret (shown once)."""
    found = get_account(engine, account)
    if found is None or found.disabled_at is not None:
        raise AccountError(f"no enabled account named {account}")
    secret = new_secret()
    values = {
        "url": url,
        "secret_encrypted": box.encrypt(secret.encode()).decode(),
        "created_at": now or utcnow(),
    }
    with engine.begin() as conn:
        where = webhook_endpoints.c.account == account
        if conn.execute(webhook_endpoints.update().where(where).values(**values)).rowcount == 0:
            conn.execute(webhook_endpoints.insert().values(account=account, **values))
    return secret


def get_endpoint(engine: Engine, account: str) -> Endpoint | None:
    columns = (webhook_endpoints.c.account, webhook_endpoints.c.url, webhook_endpoints.c.created_at)
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(*columns).where(webhook_endpoints.c.account == account)
        ).first()
    return Endpoint(row.account, row.url, _utc(row.created_at)) if row else None


def remove_endpoint(engine: Engine, account: str, now: datetime | None = None) -> bool:
    """No more deliveries: the endpoint goes, and its undelivered events are given up."""
    with engine.begin() as conn:
        removed = conn.execute(
            webhook_endpoints.delete().where(webhook_endpoints.c.account == account)
        ).rowcount
        conn.execute(
            webhook_events.update()
            .where(webhook_events.c.account == account, _undelivered())
            .values(given_up_at=now or utcnow(), claimed_by=None, claimed_until=None)
        )
    return removed == 1


def enqueue_final(conn: Connection, prediction_id: str) -> None:
    """The upload's final event into the outbox, inside the transaction that made it final, if
    its account has a webhook; a second one for the same upload and type is ignored."""
    row = conn.execute(
        sa.select(predictions, webhook_endpoints.c.url)
        .join(webhook_endpoints, webhook_endpoints.c.account == predictions.c.account)
        .where(predictions.c.id == prediction_id)
    ).first()
    if row is None or Status(row.status) not in EVENT_OF_STATUS:
        return
    event = EVENT_OF_STATUS[Status(row.status)]
    now = utcnow()
    payload = upload_payload(row._mapping, event, now)
    _insert_once(conn, row.account, prediction_id, event, payload, now)


def _insert_once(
    conn: Connection,
    account: str,
    subject: str,
    event: EventType,
    payload: dict[str, Any],
    now: datetime,
) -> bool:
    """Insert an outbox row unless the account has one of the same subject and type."""
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    inserted = conn.execute(
        dialect.insert(webhook_events)
        .values(
            id=f"msg_{uuid.uuid4().hex}",
            account=account,
            subject=subject,
            type=event.value,
            payload=json.dumps(payload),
            created_at=now,
            next_attempt_at=now,
        )
        .on_conflict_do_nothing(index_elements=["account", "subject", "type"])
        .returning(webhook_events.c.id)  # rowcount is -1 here on psycopg
    )
    return inserted.first() is not None


def enqueue_alert(engine: Engine, model: str, alert: dict[str, Any]) -> int:
    """A monitoring alert to the accounts it concerns that have a webhook: `data.drifted` to the
    drifted upload's account, `model.degraded` to every account the version scored uploads for;
    once per upload (drift) or model version (degradation). Returns the events written."""
    now, version = utcnow(), str(alert["model_version"])
    if alert["event"].startswith("retainwise.model.degraded"):
        event, subject = EventType.MODEL_DEGRADED, f"{model}/v{version}"
        scope = (predictions.c.model_name == model) & (predictions.c.model_version == version)
        data = {"model": model, "model_version": version, "reasons": alert.get("reasons", [])}
        links: dict[str, str] = {}
    elif alert["event"] == "retainwise.data.drifted":
        event = EventType.DATA_DRIFTED
        subject = alert["prediction_id"]
        scope = predictions.c.id == subject
        data = {"prediction_id": subject, "model": model, "model_version": version}
        data["columns"] = alert.get("columns", {})
        links = {"upload": f"/uploads/{subject}"}
    else:
        return 0
    payload = {"type": event.value, "timestamp": now.isoformat(), "data": {**data, "links": links}}
    with engine.begin() as conn:
        targets = conn.execute(
            sa.select(webhook_endpoints.c.account)
            .where(webhook_endpoints.c.account.in_(sa.select(predictions.c.account).where(scope)))
            .order_by(webhook_endpoints.c.account)
        ).scalars()
        return sum(
            _insert_once(conn, account, subject, event, payload, now) for account in list(targets)
        )


def upload_payload(row: Any, event: EventType, now: datetime) -> dict[str, Any]:
    """`{type, timestamp, data}`; links are paths on the API, made absolute when sent."""
    upload = f"/uploads/{row['id']}"
    links = {"upload": upload}
    if event is EventType.UPLOAD_COMPLETED:
        links |= {name: f"{upload}/{name}" for name in ("results", "rejects", "report")}
    return {
        "type": event.value,
        "timestamp": _utc(row["completed_at"] or now).isoformat(),
        "data": {
            "prediction_id": row["id"],
            "status": row["status"],
            "rows_total": row["rows_total"],
            "rows_scored": row["rows_scored"],
            "rows_rejected": row["rows_rejected"],
            "error": row["error"],
            "links": links,
        },
    }


def claim_due(
    engine: Engine,
    worker: str,
    box: MultiFernet,
    now: datetime,
    lease: timedelta,
    limit: int = 20,
) -> list[Event]:
    """Due events this deliverer now holds for `lease`: each claimed by its own conditional
    UPDATE, so of two deliverers exactly one sends an event at a time."""
    claimable = sa.and_(
        _undelivered(),
        webhook_events.c.next_attempt_at <= now,
        sa.or_(webhook_events.c.claimed_until.is_(None), webhook_events.c.claimed_until < now),
    )
    with engine.connect() as conn:
        due = conn.execute(
            sa.select(webhook_events.c.id)
            .where(claimable)
            .order_by(webhook_events.c.next_attempt_at)
            .limit(limit)
        ).scalars()
        ids = list(due)
    claimed = [i for i in ids if _claim(engine, i, claimable, worker, now + lease)]
    return _events(engine, claimed, box)


def _claim(engine: Engine, event_id: str, claimable: Any, worker: str, until: datetime) -> bool:
    with engine.begin() as conn:
        return (
            conn.execute(
                webhook_events.update()
                .where(webhook_events.c.id == event_id, claimable)
                .values(claimed_by=worker, claimed_until=until)
            ).rowcount
            == 1
        )


def _events(engine: Engine, ids: list[str], box: MultiFernet) -> list[Event]:
    if not ids:
        return []
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(webhook_events, webhook_endpoints.c.url, webhook_endpoints.c.secret_encrypted)
            .join(webhook_endpoints, webhook_endpoints.c.account == webhook_events.c.account)
            .where(webhook_events.c.id.in_(ids))
            .order_by(webhook_events.c.next_attempt_at)
        ).all()
    stored = ("id", "account", "type", "payload", "attempts", "url")
    return [
        Event(
            **{name: r._mapping[name] for name in stored},
            secret=_decrypted(box, r.secret_encrypted),
        )
        for r in rows
    ]


def _decrypted(box: MultiFernet, token: str) -> str | None:
    try:
        return box.decrypt(token.encode()).decode()
    except InvalidToken:
        return None


def record_attempt(
    engine: Engine,
    event: Event,
    worker: str,
    delivery: Delivery,
    retry_at: datetime | None,
) -> bool:
    """The attempt, and the event delivered (2xx), due again at `retry_at`, or given up (None);
    only while `worker` holds the claim. False if it had lost it (the attempt is still kept)."""
    if delivery.succeeded:
        outcome = {webhook_events.c.delivered_at: delivery.attempted_at}
    elif retry_at is None:
        outcome = {webhook_events.c.given_up_at: delivery.attempted_at}
    else:
        outcome = {webhook_events.c.next_attempt_at: retry_at}
    with engine.begin() as conn:
        conn.execute(webhook_deliveries.insert().values(account=event.account, **asdict(delivery)))
        held = sa.and_(webhook_events.c.id == event.id, webhook_events.c.claimed_by == worker)
        released = (
            webhook_events.update()
            .where(held)
            .values(outcome)
            .values(attempts=webhook_events.c.attempts + 1, claimed_by=None, claimed_until=None)
        )
        return conn.execute(released).rowcount == 1


def deliveries(engine: Engine, account: str, limit: int = 50) -> list[ShownDelivery]:
    """The account's last `limit` attempts, newest first, with each event's type and upload."""
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(
                webhook_deliveries.c.event_id,
                webhook_events.c.type,
                webhook_events.c.subject,
                webhook_deliveries.c.url,
                webhook_deliveries.c.attempted_at,
                webhook_deliveries.c.status_code,
                webhook_deliveries.c.error,
                webhook_deliveries.c.duration_ms,
            )
            .join(webhook_events, webhook_events.c.id == webhook_deliveries.c.event_id)
            .where(webhook_deliveries.c.account == account)
            .order_by(webhook_deliveries.c.attempted_at.desc(), webhook_deliveries.c.id.desc())
            .limit(limit)
        ).mappings()
        return [ShownDelivery(**{**r, "attempted_at": _utc(r["attempted_at"])}) for r in rows]


def _undelivered() -> Any:
    return sa.and_(webhook_events.c.delivered_at.is_(None), webhook_events.c.given_up_at.is_(None))


def _utc(value: datetime) -> datetime:
    """SQLite returns naive datetimes: they are the UTC they were written in."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value
