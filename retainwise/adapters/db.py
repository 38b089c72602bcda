"""The `predictions` table and the few statements the product runs against it.

Functions take an Engine so tests pass in a real SQLite or PostgreSQL one; nothing connects at
import.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, RowMapping

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_name)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)


class Status(enum.StrEnum):
    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"


FINAL_STATUSES = frozenset({Status.COMPLETED, Status.FAILED})
# called inside the transaction that makes a row final (adapters.webhooks.enqueue_final)
FinalHook = Callable[[Connection, str], None]

predictions = sa.Table(
    "predictions",
    metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("account", sa.String(255), nullable=False),
    sa.Column("model_name", sa.String(255), nullable=False),
    sa.Column("model_version", sa.String(64)),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("input_key", sa.String(1024), nullable=False),
    sa.Column("original_filename", sa.String(1024)),
    sa.Column("result_key", sa.String(1024)),
    sa.Column("report_key", sa.String(1024)),
    sa.Column("rows_total", sa.Integer),
    sa.Column("rows_scored", sa.Integer),
    sa.Column("rows_rejected", sa.Integer),
    sa.Column("error", sa.Text),
    sa.Column("flow_run_id", sa.String(64)),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("started_at", sa.DateTime(timezone=True)),
    sa.Column("completed_at", sa.DateTime(timezone=True)),
    sa.Column("sqs_message_id", sa.String(255)),
    sa.Column("sqs_queued_at", sa.DateTime(timezone=True)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # input columns this upload copies into its results (comma-separated; wins over the account's)
    sa.Column("carry_columns", sa.String(2048)),
    sa.CheckConstraint(
        "status IN ('PENDING', 'PROCESSING', 'COMPLETED', 'FAILED')", name="status_known"
    ),
    sa.Index("ix_predictions_status", "status"),
    sa.Index("ix_predictions_account_created_at", "account", "created_at"),
)


@dataclasses.dataclass(frozen=True)
class Prediction:
    """One row of `predictions`: an upload and where its scoring stands."""

    id: str
    account: str
    model_name: str
    model_version: str | None
    status: Status
    input_key: str
    original_filename: str | None
    result_key: str | None
    report_key: str | None
    rows_total: int | None
    rows_scored: int | None
    rows_rejected: int | None
    error: str | None
    flow_run_id: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    sqs_message_id: str | None
    sqs_queued_at: datetime | None
    attempts: int
    carry_columns: tuple[str, ...] = ()

    @classmethod
    def from_row(cls, row: RowMapping) -> Prediction:
        values = {f.name: row[f.name] for f in dataclasses.fields(cls)}
        carried = split_names(row["carry_columns"])
        return cls(**{**values, "status": Status(row["status"]), "carry_columns": carried})

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    def to_json(self) -> dict[str, object]:
        """The row for a JSON edge (the CLI's `status`): the status as its plain string."""
        return {
            **dataclasses.asdict(self),
            "status": self.status.value,
            "carry_columns": join_names(self.carry_columns),
        }


def make_engine(url: str) -> Engine:
    """SQLite gets a busy timeout: concurrent workers wait for the write lock instead of failing;
    and a write-ahead log (`write_ahead`)."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 30})
        sa.event.listen(engine, "connect", write_ahead)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def write_ahead(connection: Any, _record: Any) -> None:
    """A file database in WAL mode, synced at checkpoints (`synchronous=NORMAL`): a commit
    appends its pages once to the log, where the rollback journal copied each page it changed
    first and synced twice (a 1k-row upload's history: ~2,000 page writes). Readers and the
    writer no longer block each other. A committed transaction survives a process crash (what
    the claim and the crash tests rely on); only a power loss may lose the last commits."""
    cursor = connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")  # kept by the file; "memory" for :memory:
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def split_names(stored: str | None) -> tuple[str, ...]:
    """Column or model names as stored (comma-separated), blanks dropped."""
    return tuple(n.strip() for n in (stored or "").split(",") if n.strip())


def join_names(names: tuple[str, ...] | list[str]) -> str | None:
    """The stored form of `split_names`; None for no names, so an unset choice stays NULL."""
    return ",".join(names) or None


MAX_CARRY_COLUMNS = 20  # input columns one upload may carry into its results
MAX_CARRY_NAME = 100  # characters in one carried column's name (20 of them fit the 2048 stored)


class CarryRefused(ValueError):
    """Carried columns past the caps: a request must not make results arbitrarily wide."""


def carry_names(typed: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Carried column names from a comma-separated text (or names), repeats dropped; refused past
    MAX_CARRY_COLUMNS names or MAX_CARRY_NAME characters in one, or with a control character."""
    names = split_names(typed) if isinstance(typed, str) else split_names(",".join(typed))
    unique = tuple(dict.fromkeys(names))
    if len(unique) > MAX_CARRY_COLUMNS:
        raise CarryRefused(
            f"{len(unique)} columns to carry; the limit is {MAX_CARRY_COLUMNS} columns"
        )
    if any(ord(char) < 32 for name in unique for char in name):  # PostgreSQL refuses NUL
        raise CarryRefused("a column to carry has a control character in its name")
    long = [name for name in unique if len(name) > MAX_CARRY_NAME]
    if long:
        raise CarryRefused(
            f"a column to carry is named with more than {MAX_CARRY_NAME} characters: "
            f"{long[0][:40]!r}..."
        )
    return unique


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_prediction(
    engine: Engine,
    *,
    account: str,
    model_name: str,
    input_key: str,
    original_filename: str | None = None,
    prediction_id: str | None = None,
    carry_columns: tuple[str, ...] = (),
) -> str:
    prediction_id = prediction_id or str(uuid.uuid4())
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(
            predictions.insert().values(
                id=prediction_id,
                account=account,
                model_name=model_name,
                status=Status.PENDING.value,
                input_key=input_key,
                original_filename=original_filename,
                carry_columns=join_names(carry_names(carry_columns)),
                created_at=now,
                updated_at=now,
            )
        )
    return prediction_id


def get_prediction(engine: Engine, prediction_id: str) -> Prediction | None:
    with engine.connect() as conn:
        row = (
            conn.execute(sa.select(predictions).where(predictions.c.id == prediction_id))
            .mappings()
            .first()
        )
    return Prediction.from_row(row) if row else None


def get_prediction_of(engine: Engine, account: str, prediction_id: str) -> Prediction | None:
    """The row only if it belongs to `account`: another account's id reads as a missing one."""
    with engine.connect() as conn:
        row = (
            conn.execute(
                sa.select(predictions).where(
                    predictions.c.id == prediction_id, predictions.c.account == account
                )
            )
            .mappings()
            .first()
        )
    return Prediction.from_row(row) if row else None


def list_predictions(
    engine: Engine, account: str, limit: int = 50, offset: int = 0
) -> list[Prediction]:
    """One account's uploads, newest first."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.select(predictions)
                .where(predictions.c.account == account)
                .order_by(predictions.c.created_at.desc(), predictions.c.id)
                .limit(limit)
                .offset(offset)
            )
            .mappings()
            .all()
        )
    return [Prediction.from_row(row) for row in rows]


def count_active(engine: Engine, account: str) -> int:
    """Uploads of `account` waiting or running: what the per-account cap counts."""
    active = (Status.PENDING.value, Status.PROCESSING.value)
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count())
            .select_from(predictions)
            .where(predictions.c.account == account, predictions.c.status.in_(active))
        ).scalar_one()


def record_queued(engine: Engine, prediction_id: str, message_id: str, queued_at: datetime) -> None:
    _update(engine, prediction_id, sqs_message_id=message_id, sqs_queued_at=queued_at)


def claim_prediction(engine: Engine, prediction_id: str, flow_run_id: str | None = None) -> bool:
    """PENDING -> PROCESSING as one conditional UPDATE: of two concurrent runs exactly one wins.

    Each claim counts one attempt; the reaper gives up on an upload after a few of them.
    """
    now = utcnow()
    with engine.begin() as conn:
        result = conn.execute(
            predictions.update()
            .where(predictions.c.id == prediction_id, predictions.c.status == Status.PENDING.value)
            .values(
                status=Status.PROCESSING.value,
                started_at=now,
                updated_at=now,
                flow_run_id=flow_run_id,
                attempts=predictions.c.attempts + 1,
            )
        )
    return result.rowcount == 1


def claim_or_resume(
    engine: Engine, prediction_id: str, flow_run_id: str | None
) -> Prediction | None:
    """The prediction row if this run holds it (won now, or won before a lost reply), else None.

    A retried claim whose first UPDATE committed finds the row PROCESSING under its own run id.
    """
    if claim_prediction(engine, prediction_id, flow_run_id):
        return get_prediction(engine, prediction_id)
    row = get_prediction(engine, prediction_id)
    if row is None or not flow_run_id or row.flow_run_id != flow_run_id:
        return None
    return row if row.status is Status.PROCESSING else None


def finish_prediction(
    engine: Engine,
    prediction_id: str,
    flow_run_id: str | None,
    status: Status,
    on_final: FinalHook | None = None,
    **fields: Any,
) -> bool:
    """PROCESSING -> COMPLETED/FAILED, only for the run holding the claim (a fencing token).

    A run the reaper already gave up on finds its claim gone and changes nothing. `on_final`
    runs in the same transaction (the webhook outbox: an event never lost nor doubled).
    """
    return _move_if_held(
        engine,
        prediction_id,
        flow_run_id,
        on_final=on_final,
        status=Status(status).value,
        completed_at=utcnow(),
        **fields,
    )


def processing(engine: Engine) -> list[Prediction]:
    """Every row a run holds right now: the reaper's candidates."""
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.select(predictions)
                .where(predictions.c.status == Status.PROCESSING.value)
                .order_by(predictions.c.started_at)
            )
            .mappings()
            .all()
        )
    return [Prediction.from_row(row) for row in rows]


def pending_since(engine: Engine, before: datetime) -> list[Prediction]:
    """PENDING rows last queued before `before`: their message may be lost (or in the DLQ)."""
    queued = sa.func.coalesce(predictions.c.sqs_queued_at, predictions.c.created_at)
    with engine.connect() as conn:
        rows = (
            conn.execute(
                sa.select(predictions).where(
                    predictions.c.status == Status.PENDING.value, queued < before
                )
            )
            .mappings()
            .all()
        )
    return [Prediction.from_row(row) for row in rows]


def refresh_claim(engine: Engine, prediction_id: str, flow_run_id: str | None) -> bool:
    """The holding run's sign of life: `updated_at` moves on; False once the claim is gone."""
    return _move_if_held(engine, prediction_id, flow_run_id)


def release_claim(
    engine: Engine,
    prediction_id: str,
    flow_run_id: str | None,
    refreshed_at: datetime | None = None,
) -> bool:
    """PROCESSING -> PENDING for a run that died, so a new run can claim it; only if unchanged
    (same run and, given `refreshed_at`, no refresh since the reaper read the row)."""
    return _move_if_held(
        engine,
        prediction_id,
        flow_run_id,
        refreshed_at,
        status=Status.PENDING.value,
        started_at=None,
    )


def fail_claim(
    engine: Engine,
    prediction_id: str,
    flow_run_id: str | None,
    error: str,
    refreshed_at: datetime | None = None,
    on_final: FinalHook | None = None,
) -> bool:
    """PROCESSING -> FAILED with a reason, for a run that died once too often; only if unchanged."""
    return _move_if_held(
        engine,
        prediction_id,
        flow_run_id,
        refreshed_at,
        on_final=on_final,
        status=Status.FAILED.value,
        completed_at=utcnow(),
        error=error,
    )


def _move_if_held(
    engine: Engine,
    prediction_id: str,
    flow_run_id: str | None,
    refreshed_at: datetime | None = None,
    on_final: FinalHook | None = None,
    **values: Any,
) -> bool:
    """One conditional UPDATE of a PROCESSING row, applied only while `flow_run_id` holds it
    (and, given `refreshed_at`, only if its `updated_at` is still that)."""
    conditions = [
        predictions.c.id == prediction_id,
        predictions.c.status == Status.PROCESSING.value,
        _same_run(flow_run_id),
    ]
    if refreshed_at is not None:
        conditions.append(predictions.c.updated_at == refreshed_at)
    with engine.begin() as conn:
        result = conn.execute(
            predictions.update().where(*conditions).values(updated_at=utcnow(), **values)
        )
        final = Status(values.get("status", "PROCESSING")) in FINAL_STATUSES
        if result.rowcount == 1 and final and on_final is not None:
            on_final(conn, prediction_id)  # same transaction: never lost or doubled
    return result.rowcount == 1


def _same_run(flow_run_id: str | None):
    if flow_run_id is None:
        return predictions.c.flow_run_id.is_(None)
    return predictions.c.flow_run_id == flow_run_id


def _update(engine: Engine, prediction_id: str, **fields: Any) -> None:
    with engine.begin() as conn:
        conn.execute(
            predictions.update()
            .where(predictions.c.id == prediction_id)
            .values(updated_at=utcnow(), **fields)
        )
