"""Customer accounts and their API keys: the `accounts` and `api_keys` tables.

A key reads `rw_<key id>_<secret>`. The key id is public (it names the key in lists and logs);
the secret is 256 random bits shown once, and only its SHA-256 is stored. A slow password hash
would add nothing: it slows guessing of low-entropy secrets, and 2**256 cannot be guessed at any
speed. The stored hash is compared with `hmac.compare_digest`, so timing leaks nothing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, RowMapping

from retainwise.adapters.db import (
    CarryRefused,
    carry_names,
    join_names,
    metadata,
    split_names,
    utcnow,
)

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
KEY_PREFIX = "rw"
KEY_ID_HEX = 12  # 48 bits: unique enough to name a key, not a secret
SECRET_BYTES = 32  # 256 bits
_KEY_PATTERN = re.compile(rf"^{KEY_PREFIX}_([0-9a-f]{{{KEY_ID_HEX}}})_([A-Za-z0-9_-]{{43}})$")
LAST_USED_RESOLUTION = timedelta(minutes=1)  # at most one write per key per minute
VALUE_COLUMN_WIDTH = 255  # accounts.value_column's stored width

accounts = sa.Table(
    "accounts",
    metadata,
    sa.Column("name", sa.String(63), primary_key=True),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("disabled_at", sa.DateTime(timezone=True)),
    sa.Column("allowed_models", sa.String(1024), nullable=False, server_default="churn"),
    sa.Column("max_active_uploads", sa.Integer),
    # the input column that weighs a customer (actions rank by probability x value when set)
    sa.Column("value_column", sa.String(VALUE_COLUMN_WIDTH)),
    # input columns copied into every upload's results beside the seed's four (comma-separated)
    sa.Column("carry_columns", sa.String(2048)),
)

api_keys = sa.Table(
    "api_keys",
    metadata,
    sa.Column("key_id", sa.String(KEY_ID_HEX), primary_key=True),
    sa.Column("account", sa.String(63), sa.ForeignKey("accounts.name"), nullable=False),
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("last_used_at", sa.DateTime(timezone=True)),
    sa.Column("revoked_at", sa.DateTime(timezone=True)),
    sa.Index("ix_api_keys_account", "account"),
)


@dataclasses.dataclass(frozen=True)
class Account:
    """A customer: what its keys may score (`models`, stored comma-separated) and its upload cap."""

    name: str
    created_at: datetime
    disabled_at: datetime | None
    models: tuple[str, ...]
    max_active_uploads: int | None
    value_column: str | None = None
    carry_columns: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: RowMapping) -> Account:
        return cls(
            name=row["name"],
            created_at=row["created_at"],
            disabled_at=row["disabled_at"],
            models=split_names(row["allowed_models"]),
            max_active_uploads=row["max_active_uploads"],
            value_column=row["value_column"],
            carry_columns=split_names(row["carry_columns"]),
        )

    def default_model(self, fallback: str) -> str:
        """`fallback` (the product's default) if the account may use it, else its first model."""
        return fallback if fallback in self.models or not self.models else self.models[0]

    def to_json(self) -> dict[str, object]:
        """The CLI's view, the row as stored: the models as the comma-separated string typed."""
        return {
            "name": self.name,
            "created_at": self.created_at,
            "disabled_at": self.disabled_at,
            "allowed_models": ",".join(self.models),
            "max_active_uploads": self.max_active_uploads,
            "value_column": self.value_column,
            "carry_columns": join_names(self.carry_columns),
        }


@dataclasses.dataclass(frozen=True)
class ApiKey:
    """A key as operators list it: its public id and dates, never its hash."""

    key_id: str
    account: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class AccountError(ValueError):
    """An operator's request that cannot be done: bad name, duplicate, unknown account."""


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name or ""):
        raise AccountError(f"account name {name!r} must match {NAME_PATTERN.pattern}")
    return name


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse_key(token: str) -> tuple[str, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    match = _KEY_PATTERN.fullmatch(token or "")
    return (match.group(1), match.group(2)) if match else None


def create_account(
    engine: Engine, name: str, now: datetime | None = None, allowed_models: str = "churn"
) -> Account:
    check_name(name)
    with engine.begin() as conn:
        if conn.execute(sa.select(accounts.c.name).where(accounts.c.name == name)).first():
            raise AccountError(f"account {name} exists")
        conn.execute(
            accounts.insert().values(
                name=name, created_at=now or utcnow(), allowed_models=allowed_models
            )
        )
    account = get_account(engine, name)
    assert account is not None  # written just now
    return account


def get_account(engine: Engine, name: str) -> Account | None:
    with engine.connect() as conn:
        row = conn.execute(sa.select(accounts).where(accounts.c.name == name)).mappings().first()
    return Account.from_row(row) if row else None


def list_accounts(engine: Engine) -> list[Account]:
    with engine.connect() as conn:
        rows = conn.execute(sa.select(accounts).order_by(accounts.c.name)).mappings()
        return [Account.from_row(r) for r in rows]


def set_columns(
    engine: Engine,
    name: str,
    value_column: str | None = None,
    carry_columns: tuple[str, ...] | None = None,
) -> Account:
    """Name the value column and/or the carried columns; "" or () clears one, None keeps it."""
    changes: dict[str, str | None] = {}
    if value_column is not None:
        changes["value_column"] = _value_name(value_column)
    if carry_columns is not None:
        try:
            changes["carry_columns"] = join_names(carry_names(carry_columns))
        except CarryRefused as exc:
            raise AccountError(str(exc)) from None
    with engine.begin() as conn:
        if changes:
            conn.execute(accounts.update().where(accounts.c.name == name).values(changes))
    account = get_account(engine, name)
    if account is None:
        raise AccountError(f"no account named {name}")
    return account


def _value_name(typed: str) -> str | None:
    """The value column's name, stripped ("" clears it); refused past the stored width or with a
    control character (PostgreSQL refuses NUL), as a form may send anything."""
    name = typed.strip()
    if len(name) > VALUE_COLUMN_WIDTH:
        raise AccountError(
            f"the value column's name is longer than {VALUE_COLUMN_WIDTH} characters"
        )
    if any(ord(char) < 32 for char in name):
        raise AccountError("the value column's name has a control character")
    return name or None


def disable_account(engine: Engine, name: str, now: datetime | None = None) -> bool:
    """Every key of the account stops working at once; its data stays."""
    return _stamp_once(engine, accounts.c.name == name, accounts.c.disabled_at, now)


def create_key(engine: Engine, account: str, now: datetime | None = None) -> dict[str, str]:
    """A new key for an enabled account; the returned `api_key` is the only copy of the secret."""
    found = get_account(engine, account)
    if found is None or found.disabled_at is not None:
        raise AccountError(f"no enabled account named {account}")
    key_id, secret = secrets.token_hex(KEY_ID_HEX // 2), secrets.token_urlsafe(SECRET_BYTES)
    with engine.begin() as conn:
        conn.execute(
            api_keys.insert().values(
                key_id=key_id,
                account=account,
                key_hash=hash_secret(secret),
                created_at=now or utcnow(),
            )
        )
    return {"account": account, "key_id": key_id, "api_key": f"{KEY_PREFIX}_{key_id}_{secret}"}


def revoke_key(engine: Engine, key_id: str, now: datetime | None = None) -> bool:
    return _stamp_once(engine, api_keys.c.key_id == key_id, api_keys.c.revoked_at, now)


def _stamp_once(engine: Engine, row: Any, column: sa.Column, now: datetime | None) -> bool:
    """Set a still-empty timestamp column (disabled_at, revoked_at); False if already set."""
    with engine.begin() as conn:
        result = conn.execute(
            column.table.update()
            .where(row, column.is_(None))
            .values({column.name: now or utcnow()})
        )
    return result.rowcount == 1


def list_keys(engine: Engine, account: str) -> list[ApiKey]:
    """Key ids and dates, never hashes."""
    columns = [getattr(api_keys.c, f.name) for f in dataclasses.fields(ApiKey)]
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(*columns).where(api_keys.c.account == account).order_by(api_keys.c.created_at)
        ).mappings()
        return [ApiKey(**r) for r in rows]


def authenticate(engine: Engine, token: str, now: datetime | None = None) -> Account | None:
    """The account a key names, if the key is well formed, known, unrevoked and its account
    enabled; else None, the same for every reason."""
    parsed = parse_key(token)
    if parsed is None:
        return None
    key_id, secret = parsed
    row = _live_key(engine, key_id)
    if row is None or not hmac.compare_digest(row["key_hash"], hash_secret(secret)):
        return None
    _touch(engine, key_id, row["last_used_at"], now or utcnow())
    return Account.from_row(row)


def account_of_key(engine: Engine, key_id: str) -> Account | None:
    """For a web session signed in with key `key_id`: its account while the key and the account
    are live, so revoking or disabling ends the session too."""
    row = _live_key(engine, key_id)
    return Account.from_row(row) if row else None


def _live_key(engine: Engine, key_id: str) -> RowMapping | None:
    with engine.connect() as conn:
        row = (
            conn.execute(
                sa.select(api_keys.c.key_hash, api_keys.c.last_used_at, accounts)
                .join(accounts, accounts.c.name == api_keys.c.account)
                .where(
                    api_keys.c.key_id == key_id,
                    api_keys.c.revoked_at.is_(None),
                    accounts.c.disabled_at.is_(None),
                )
            )
            .mappings()
            .first()
        )
    return row


def _touch(engine: Engine, key_id: str, last_used: datetime | None, now: datetime) -> None:
    if last_used is not None:
        if last_used.tzinfo is None:  # SQLite returns naive datetimes
            last_used = last_used.replace(tzinfo=now.tzinfo)
        if now - last_used < LAST_USED_RESOLUTION:
            return
    with engine.begin() as conn:
        conn.execute(api_keys.update().where(api_keys.c.key_id == key_id).values(last_used_at=now))
