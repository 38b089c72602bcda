"""The atomic upload cap and server-side sign-out, on SQLite and PostgreSQL, with real threads."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

from retainwise.adapters import admission, db

NOW = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def slot(engine, account: str = "acme", now: datetime = NOW, cap: int = 4) -> bool:
    return admission.take_slot(engine, account, str(uuid.uuid4()), cap, now)


def test_of_ten_concurrent_uploads_against_a_cap_of_four_four_are_received(migrated_engine):
    start = threading.Barrier(10)

    def race(_: int) -> bool:
        start.wait()
        return slot(migrated_engine)

    with ThreadPoolExecutor(10) as pool:
        taken = list(pool.map(race, range(10)))
    assert taken.count(True) == 4
    assert not slot(migrated_engine) and slot(migrated_engine, account="globex")


def test_pending_and_running_uploads_count_and_a_released_slot_frees(migrated_engine):
    queued = db.create_prediction(
        migrated_engine, account="acme", model_name="churn", input_key="k"
    )
    held = str(uuid.uuid4())
    assert admission.take_slot(migrated_engine, "acme", held, 2, NOW)
    assert not slot(migrated_engine, cap=2)  # one PENDING + one receiving
    admission.release_slot(migrated_engine, held)
    assert slot(migrated_engine, cap=2)
    assert queued


def test_a_dead_tasks_slot_stops_counting(migrated_engine):
    assert slot(migrated_engine, cap=1)
    assert not slot(migrated_engine, cap=1, now=NOW + timedelta(minutes=59))
    later = NOW + timedelta(seconds=admission.SLOT_SECONDS + 1)
    assert slot(migrated_engine, cap=1, now=later)


def test_sign_out_raises_the_keys_session_generation(migrated_engine):
    assert admission.session_version(migrated_engine, "k1") == 0
    assert admission.end_sessions(migrated_engine, "k1") == 1
    assert admission.end_sessions(migrated_engine, "k1") == 2
    assert admission.session_version(migrated_engine, "k1") == 2
    assert admission.session_version(migrated_engine, "k2") == 0
