"""Webhook storage on SQLite and PostgreSQL: the secret encrypted, one event per final status in
the same transaction, one deliverer per event at a time, every attempt kept."""

import json
import stat
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from cryptography.fernet import Fernet, MultiFernet

from retainwise.adapters import accounts, db, webhooks
from retainwise.config.errors import MissingSetting
from retainwise.config.settings import Settings

NOW = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
LEASE = timedelta(minutes=5)
BOX = MultiFernet([Fernet(Fernet.generate_key())])


def with_webhook(engine, account: str = "acme", url: str = "https://hooks.example.com/rw") -> str:
    accounts.create_account(engine, account, NOW)
    return webhooks.set_endpoint(engine, account, url, BOX, NOW)


def finished(engine, status=db.Status.COMPLETED, account: str = "acme", **fields) -> str:
    prediction_id = db.create_prediction(
        engine, account=account, model_name="churn", input_key=f"uploads/{account}/x/input"
    )
    assert db.claim_prediction(engine, prediction_id, "run-1")
    assert db.finish_prediction(
        engine, prediction_id, "run-1", status, on_final=webhooks.enqueue_final, **fields
    )
    return prediction_id


def events(engine) -> list[dict]:
    with engine.connect() as conn:
        return [dict(r) for r in conn.execute(sa.select(webhooks.webhook_events)).mappings()]


def test_the_secret_is_shown_once_and_stored_only_encrypted(migrated_engine):
    secret = with_webhook(migrated_engine)
    assert secret.startswith("whsec_") and len(secret) > 40
    with migrated_engine.connect() as conn:
        stored = conn.execute(sa.select(webhooks.webhook_endpoints)).mappings().one()
    assert secret not in str(dict(stored))
    assert BOX.decrypt(stored["secret_encrypted"].encode()).decode() == secret
    endpoint = webhooks.get_endpoint(migrated_engine, "acme")
    assert endpoint == webhooks.Endpoint("acme", "https://hooks.example.com/rw", NOW)
    again = webhooks.set_endpoint(migrated_engine, "acme", "https://other.example.com/", BOX, NOW)
    assert again != secret and webhooks.get_endpoint(migrated_engine, "acme").url.startswith(
        "https://other"
    )


def test_only_an_enabled_account_gets_a_webhook(migrated_engine):
    with pytest.raises(accounts.AccountError):
        webhooks.set_endpoint(migrated_engine, "nobody", "https://x.example.com/", BOX, NOW)


def test_completing_an_upload_writes_its_event_in_the_same_transaction(migrated_engine):
    with_webhook(migrated_engine)
    prediction_id = finished(
        migrated_engine, rows_total=10, rows_scored=9, rows_rejected=1, model_version="3"
    )
    [event] = events(migrated_engine)
    assert (event["subject"], event["type"]) == (prediction_id, "upload.completed")
    assert event["id"].startswith("msg_") and event["delivered_at"] is None
    payload = json.loads(event["payload"])
    assert payload["type"] == "upload.completed"
    assert payload["data"] == {
        "prediction_id": prediction_id,
        "status": "COMPLETED",
        "rows_total": 10,
        "rows_scored": 9,
        "rows_rejected": 1,
        "error": None,
        "links": {
            "upload": f"/uploads/{prediction_id}",
            "results": f"/uploads/{prediction_id}/results",
            "rejects": f"/uploads/{prediction_id}/rejects",
            "report": f"/uploads/{prediction_id}/report",
        },
    }
    assert datetime.fromisoformat(payload["timestamp"]).tzinfo is not None


def test_a_failure_and_a_reaper_give_up_write_upload_failed(migrated_engine):
    with_webhook(migrated_engine)
    failed = finished(migrated_engine, db.Status.FAILED, error="column tenure is missing")
    reaped = db.create_prediction(
        migrated_engine, account="acme", model_name="churn", input_key="k"
    )
    assert db.claim_prediction(migrated_engine, reaped, "run-2")
    assert db.fail_claim(
        migrated_engine, reaped, "run-2", "died three times", on_final=webhooks.enqueue_final
    )
    by_prediction = {e["subject"]: json.loads(e["payload"]) for e in events(migrated_engine)}
    assert {p["type"] for p in by_prediction.values()} == {"upload.failed"}
    assert by_prediction[failed]["data"]["error"] == "column tenure is missing"
    assert list(by_prediction[reaped]["data"]["links"]) == ["upload"]


def test_no_webhook_no_event_and_a_second_finish_or_enqueue_writes_nothing(migrated_engine):
    accounts.create_account(migrated_engine, "quiet", NOW)
    finished(migrated_engine, account="quiet")
    assert events(migrated_engine) == []

    with_webhook(migrated_engine)
    prediction_id = finished(migrated_engine)
    assert not db.finish_prediction(
        migrated_engine, prediction_id, "run-1", db.Status.FAILED, webhooks.enqueue_final
    )
    with migrated_engine.begin() as conn:  # a redelivered run's write: ignored, not an error
        webhooks.enqueue_final(conn, prediction_id)
    assert len(events(migrated_engine)) == 1


def test_of_two_deliverers_each_event_goes_to_one_until_its_lease_ends(migrated_engine):
    with_webhook(migrated_engine)
    ids = {finished(migrated_engine) for _ in range(3)}
    now = datetime.now(UTC)
    first = webhooks.claim_due(migrated_engine, "a", BOX, now, LEASE)
    assert webhooks.claim_due(migrated_engine, "b", BOX, now, LEASE) == []
    assert len(first) == 3 and {e.url for e in first} == {"https://hooks.example.com/rw"}
    assert first[0].secret.startswith("whsec_") and first[0].attempts == 0
    later = webhooks.claim_due(migrated_engine, "b", BOX, now + LEASE + timedelta(seconds=1), LEASE)
    assert {e.id for e in later} == {e.id for e in first} and len(ids) == 3


def test_an_attempt_is_kept_and_moves_the_event_on(migrated_engine):
    with_webhook(migrated_engine)
    finished(migrated_engine)
    now = datetime.now(UTC)
    [event] = webhooks.claim_due(migrated_engine, "a", BOX, now, LEASE)
    failed = webhooks.Delivery(event.id, event.url, now, 503, "HTTP 503: busy", 12)
    assert webhooks.record_attempt(migrated_engine, event, "a", failed, now + timedelta(seconds=5))
    assert webhooks.claim_due(migrated_engine, "a", BOX, now + timedelta(seconds=4), LEASE) == []

    retry_time = now + timedelta(seconds=5)
    [again] = webhooks.claim_due(migrated_engine, "a", BOX, retry_time, LEASE)
    assert again.attempts == 1
    ok = webhooks.Delivery(event.id, event.url, retry_time, 204, None, 8)
    assert not webhooks.record_attempt(migrated_engine, again, "b", ok, None)  # not b's claim
    assert webhooks.record_attempt(migrated_engine, again, "a", ok, None)
    assert webhooks.claim_due(migrated_engine, "a", BOX, now + timedelta(days=1), LEASE) == []

    shown = webhooks.deliveries(migrated_engine, "acme")
    assert [d.status_code for d in shown] == [204, 204, 503]  # newest first
    assert shown[-1].error == "HTTP 503: busy" and shown[-1].type == "upload.completed"
    assert shown[0].attempted_at == retry_time


def test_the_last_failed_attempt_gives_up(migrated_engine):
    with_webhook(migrated_engine)
    finished(migrated_engine)
    now = datetime.now(UTC)
    [event] = webhooks.claim_due(migrated_engine, "a", BOX, now, LEASE)
    failed = webhooks.Delivery(event.id, event.url, now, None, "ConnectError", 3)
    assert webhooks.record_attempt(migrated_engine, event, "a", failed, None)
    assert webhooks.claim_due(migrated_engine, "a", BOX, now + timedelta(days=9), LEASE) == []
    [row] = events(migrated_engine)
    assert row["given_up_at"] is not None and row["attempts"] == 1


def test_removing_the_webhook_gives_up_what_is_undelivered(migrated_engine):
    with_webhook(migrated_engine)
    finished(migrated_engine)
    assert webhooks.remove_endpoint(migrated_engine, "acme", NOW)
    assert not webhooks.remove_endpoint(migrated_engine, "acme", NOW)
    assert webhooks.get_endpoint(migrated_engine, "acme") is None
    assert webhooks.claim_due(migrated_engine, "a", BOX, datetime.now(UTC), LEASE) == []


def test_the_deliveries_shown_are_the_last_fifty(migrated_engine):
    with_webhook(migrated_engine)
    finished(migrated_engine)
    [event] = webhooks.claim_due(migrated_engine, "a", BOX, datetime.now(UTC), LEASE)
    for n in range(55):
        at = NOW + timedelta(seconds=n)
        webhooks.record_attempt(
            migrated_engine, event, "a", webhooks.Delivery(event.id, event.url, at, 500, "x", 1), at
        )
    shown = webhooks.deliveries(migrated_engine, "acme")
    assert len(shown) == 50 and shown[0].attempted_at == NOW + timedelta(seconds=54)


def test_production_needs_a_key_and_locally_one_is_made_private(tmp_path):
    with pytest.raises(MissingSetting, match="RETAINWISE_WEBHOOK_KEY"):
        webhooks.secret_box(Settings(env="production", home=tmp_path))
    box = webhooks.secret_box(Settings(home=tmp_path))
    key_file = tmp_path / webhooks.KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    token = box.encrypt(b"whsec_x")
    assert webhooks.secret_box(Settings(home=tmp_path)).decrypt(token) == b"whsec_x"
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    rotated = webhooks.secret_box(Settings(home=tmp_path, webhook_key=f"{new},{old}"))
    assert rotated.decrypt(Fernet(old).encrypt(b"whsec_y")) == b"whsec_y"


def test_a_key_without_its_padding_is_accepted_and_a_malformed_one_named(tmp_path):
    """The stack generates 43 base64url characters (Secrets Manager cannot end one with `=`)."""
    key = Fernet.generate_key().decode()
    unpadded = webhooks.secret_box(Settings(home=tmp_path, webhook_key=key.rstrip("=")))
    assert unpadded.decrypt(Fernet(key).encrypt(b"whsec_z")) == b"whsec_z"
    for bad in ("short", key[:-2], "é" * 43):
        with pytest.raises(MissingSetting, match="RETAINWISE_WEBHOOK_KEY holds a key"):
            webhooks.secret_box(Settings(home=tmp_path, webhook_key=bad))


def test_deliverers_claiming_at_once_never_share_an_event(migrated_engine):
    from concurrent.futures import ThreadPoolExecutor

    with_webhook(migrated_engine)
    made = {finished(migrated_engine) for _ in range(24)}
    now = datetime.now(UTC)

    def claim(worker: str) -> list[str]:
        return [e.id for e in webhooks.claim_due(migrated_engine, worker, BOX, now, LEASE, 24)]

    with ThreadPoolExecutor(4) as pool:
        claimed = [i for ids in pool.map(claim, "abcd") for i in ids]
    assert len(claimed) == len(set(claimed)) == len(made)


def test_monitoring_alerts_reach_the_accounts_they_concern_once(migrated_engine):
    with_webhook(migrated_engine)
    with_webhook(migrated_engine, "bravo")
    accounts.create_account(migrated_engine, "quiet", NOW)
    acme = finished(migrated_engine, model_version="3")
    finished(migrated_engine, account="bravo", model_version="3")
    finished(migrated_engine, account="quiet", model_version="3")
    before = {e["id"] for e in events(migrated_engine)}
    degraded = {"event": "retainwise.model.degraded", "model_version": 3, "reasons": ["AUC"]}
    drifted = {
        "event": "retainwise.data.drifted",
        "model_version": "3",
        "prediction_id": acme,
        "columns": {"tenure": 0.41},
    }
    written = [
        [webhooks.enqueue_alert(migrated_engine, "churn", alert) for alert in (degraded, drifted)]
        for _ in range(2)
    ]
    assert written == [[2, 1], [0, 0]]  # the monitor running again writes nothing new
    assert webhooks.enqueue_alert(migrated_engine, "churn", {"event": "x", "model_version": 3}) == 0
    new = [e for e in events(migrated_engine) if e["id"] not in before]
    assert sorted((e["account"], e["type"], e["subject"]) for e in new) == [
        ("acme", "data.drifted", acme),
        ("acme", "model.degraded", "churn/v3"),
        ("bravo", "model.degraded", "churn/v3"),
    ]
    payloads = {e["type"]: json.loads(e["payload"]) for e in new if e["account"] == "acme"}
    assert payloads["model.degraded"]["data"] == {
        "model": "churn",
        "model_version": "3",
        "reasons": ["AUC"],
        "links": {},
    }
    assert payloads["data.drifted"]["data"]["columns"] == {"tenure": 0.41}
    assert payloads["data.drifted"]["data"]["links"] == {"upload": f"/uploads/{acme}"}
