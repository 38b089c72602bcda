"""The predictions repository on SQLite and PostgreSQL: the claim that makes results once."""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

from retainwise.adapters import db


def new_prediction(engine) -> str:
    return db.create_prediction(
        engine,
        account="acme",
        model_name="churn",
        input_key="uploads/acme/x/input",
        original_filename="x.csv",
    )


def test_a_new_prediction_is_pending_with_its_queue_receipt(migrated_engine):
    prediction_id = new_prediction(migrated_engine)
    queued_at = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    db.record_queued(migrated_engine, prediction_id, "msg-1", queued_at)

    row = db.get_prediction(migrated_engine, prediction_id)
    assert row.status == "PENDING"
    assert row.sqs_message_id == "msg-1"
    assert row.sqs_queued_at.replace(tzinfo=UTC) == queued_at


def test_only_one_of_many_concurrent_claims_wins(migrated_engine):
    prediction_id = new_prediction(migrated_engine)
    with ThreadPoolExecutor(max_workers=8) as pool:
        wins = list(
            pool.map(
                lambda i: db.claim_prediction(migrated_engine, prediction_id, f"run-{i}"), range(8)
            )
        )
    assert wins.count(True) == 1
    row = db.get_prediction(migrated_engine, prediction_id)
    assert row.status == "PROCESSING" and row.started_at is not None


def test_a_finished_prediction_cannot_be_claimed_again(migrated_engine):
    prediction_id = new_prediction(migrated_engine)
    assert db.claim_prediction(migrated_engine, prediction_id)
    assert db.finish_prediction(
        migrated_engine,
        prediction_id,
        None,
        db.Status.COMPLETED,
        rows_total=3,
        rows_scored=2,
        rows_rejected=1,
    )
    assert not db.claim_prediction(migrated_engine, prediction_id)
    row = db.get_prediction(migrated_engine, prediction_id)
    assert row.status == "COMPLETED" and row.completed_at is not None
    assert row.rows_total == row.rows_scored + row.rows_rejected


def test_an_unknown_status_is_refused_by_the_database(migrated_engine):
    import pytest
    import sqlalchemy as sa

    prediction_id = new_prediction(migrated_engine)
    with pytest.raises(sa.exc.IntegrityError):
        with migrated_engine.begin() as conn:
            conn.execute(
                db.predictions.update()
                .where(db.predictions.c.id == prediction_id)
                .values(status="LOST")
            )


def test_a_sqlite_file_is_opened_with_a_write_ahead_log(tmp_path):
    """Each connection of a file database: WAL journal, synced at checkpoints (a commit writes its
    pages once); another process's connection sees the same mode (the file keeps it)."""
    import sqlite3

    import sqlalchemy as sa

    path = tmp_path / "retainwise.db"
    engine = db.make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
        conn.execute(sa.text("CREATE TABLE t (x INTEGER)"))
    engine.dispose()
    with sqlite3.connect(path) as other:
        assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    memory = db.make_engine("sqlite://")  # nothing to log ahead of: still opens
    with memory.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "memory"
