"""The deliverer against a real receiver on loopback: signatures that verify by the spec's
algorithm, retries until one success, refusals in production, an upload's event end to end."""

import base64
import contextlib
import hashlib
import hmac
import json
import socket
import threading
import time
from datetime import UTC, datetime, timedelta
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from cryptography.fernet import Fernet, MultiFernet
from standardwebhooks.webhooks import Webhook

from retainwise.adapters import accounts, db, webhooks
from retainwise.config.settings import Settings
from retainwise.runtime import webhooks as deliverer

BOX = MultiFernet([Fernet(Fernet.generate_key())])
BASE_URL = "https://retainwise.example.com"


class Receiver:
    """An HTTP server on loopback answering each POST with the next scripted (status, headers,
    body) (the last one repeats) and keeping what it got."""

    def __init__(self, *answers: tuple[int, dict[str, str], bytes]):
        self.answers, self.got = list(answers) or [(204, {}, b"")], []
        self.release = threading.Event()  # a "hang" answer waits for it
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.got.append((dict(self.headers), body.decode()))
                status, headers, content = receiver.answers[
                    min(len(receiver.got), len(receiver.answers)) - 1
                ]
                if status == 0:
                    receiver.release.wait(10)
                    return
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(content)))
                self.end_headers()
                self.wfile.write(content)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://localhost:{self.server.server_port}/hooks/rw"
        # shutdown() waits for the next poll: 0.05 s, not the default 0.5 s, per receiver
        serve = partial(self.server.serve_forever, poll_interval=0.05)
        threading.Thread(target=serve, daemon=True).start()

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver_of(request):
    made = []

    def make(*answers):
        made.append(Receiver(*answers))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


def spec_verify(secret: str, headers: dict[str, str], body: str) -> bool:
    """The Standard Webhooks algorithm written out: HMAC-SHA256 over `id.timestamp.body` with
    the base64-decoded secret, compared with each `v1,` signature."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.{body}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(f"v1,{expected}", candidate)
        for candidate in headers["webhook-signature"].split(" ")
    )


def account_with_webhook(engine, url: str) -> str:
    accounts.create_account(engine, "acme")
    return webhooks.set_endpoint(engine, "acme", url, BOX)


def completed_upload(engine) -> str:
    prediction_id = db.create_prediction(
        engine, account="acme", model_name="churn", input_key="uploads/acme/x/input"
    )
    assert db.claim_prediction(engine, prediction_id, "run-1")
    fields = {"rows_total": 5, "rows_scored": 5, "rows_rejected": 0}
    final = webhooks.enqueue_final
    assert db.finish_prediction(
        engine, prediction_id, "run-1", db.Status.COMPLETED, on_final=final, **fields
    )
    return prediction_id


def deliver(engine, client, now, production=False):
    return deliverer.deliver_due(
        engine, BOX, client, "w", now, production=production, base_url=BASE_URL
    )


@pytest.fixture
def client():
    with deliverer.new_client() as made:
        yield made


def test_a_delivery_is_signed_by_the_spec_and_verifies(migrated_engine, receiver_of, client):
    receiver = receiver_of()
    secret = account_with_webhook(migrated_engine, receiver.url)
    prediction_id = completed_upload(migrated_engine)
    now = datetime.now(UTC)

    [delivery] = deliver(migrated_engine, client, now)

    assert delivery.succeeded and delivery.status_code == 204
    [(headers, body)] = receiver.got
    headers = {k.lower(): v for k, v in headers.items()}
    assert spec_verify(secret, headers, body)
    assert not spec_verify(webhooks.new_secret(), headers, body)
    assert Webhook(secret).verify(body, headers)["type"] == "upload.completed"
    assert headers["webhook-id"].startswith("msg_") and headers["webhook-timestamp"] == str(
        int(now.timestamp())
    )
    assert headers["host"] == receiver.url.split("/")[2]  # sent to the checked address
    event = json.loads(body)
    assert event["data"]["prediction_id"] == prediction_id
    assert event["data"]["links"]["results"] == f"{BASE_URL}/uploads/{prediction_id}/results"
    assert deliver(migrated_engine, client, now + timedelta(days=1)) == []  # delivered once


def test_fails_twice_then_succeeds_gives_exactly_one_success(migrated_engine, receiver_of, client):
    receiver = receiver_of((500, {}, b"down"), (503, {}, b"busy"), (200, {}, b"ok"))
    account_with_webhook(migrated_engine, receiver.url)
    completed_upload(migrated_engine)
    now = datetime.now(UTC)

    assert [d.status_code for d in deliver(migrated_engine, client, now)] == [500]
    assert deliver(migrated_engine, client, now + timedelta(seconds=4)) == []  # backing off
    assert [
        d.status_code for d in deliver(migrated_engine, client, now + timedelta(seconds=5))
    ] == [503]
    third = now + timedelta(seconds=25)
    assert [d.status_code for d in deliver(migrated_engine, client, third)] == [200]
    assert deliver(migrated_engine, client, third + timedelta(days=2)) == []

    shown = webhooks.deliveries(migrated_engine, "acme")
    assert [d.status_code for d in shown] == [200, 503, 500]
    assert [d.error for d in shown] == [None, "HTTP 503: busy", "HTTP 500: down"]
    assert len({h["webhook-id"] for h, _ in receiver.got}) == 1 and len(receiver.got) == 3


def test_backoff_is_exponential_for_hours_then_gives_up():
    at = datetime(2026, 12, 3, tzinfo=UTC)
    delays = [deliverer.retry_at(n, at) - at for n in range(1, len(deliverer.RETRY_DELAYS) + 1)]
    assert delays == sorted(delays) and delays[0] == timedelta(seconds=5)
    assert sum(delays, timedelta()) > timedelta(hours=12)
    assert deliverer.retry_at(len(deliverer.RETRY_DELAYS) + 1, at) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hook",  # not https
        "https://127.0.0.1/hook",
        "https://localhost/hook",
        "https://10.1.2.3/hook",
        "https://192.168.0.10/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/hook",
        "https://[fd00::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://0.0.0.0/hook",
        "https://224.0.0.1/hook",
        "file:///etc/passwd",
        "https://93.184.215.14:8443/hook",  # the ECS service lets only 443 out
    ],
)
def test_production_refuses_what_is_not_https_to_a_public_address(url):
    with pytest.raises(deliverer.DestinationRefused):
        deliverer.checked_address(url, production=True)


@pytest.mark.parametrize("port", ["", ":443"])
def test_production_accepts_https_to_a_public_address_and_connects_to_it(port):
    url, address = deliverer.checked_address(f"https://93.184.215.14{port}/h", production=True)
    assert (url.host, url.port, address) == ("93.184.215.14", None, "93.184.215.14")


def test_locally_any_port_is_accepted():
    url, _ = deliverer.checked_address("http://127.0.0.1:8443/h", production=False)
    assert url.port == 8443


def test_the_last_failed_attempt_is_logged_as_given_up(
    migrated_engine, receiver_of, client, caplog
):
    """deployments/cdk counts these lines (GIVEN_UP) into the WebhookEventsGivenUp alarm."""
    receiver = receiver_of((500, {}, b"down"))
    account_with_webhook(migrated_engine, receiver.url)
    completed_upload(migrated_engine)
    with migrated_engine.begin() as conn:  # the attempts before the last one have failed
        conn.execute(webhooks.webhook_events.update().values(attempts=len(deliverer.RETRY_DELAYS)))
    with caplog.at_level("WARNING", logger=deliverer.log.name):
        [first] = deliver(migrated_engine, client, datetime.now(UTC))
    assert first.status_code == 500
    [line] = [r.getMessage() for r in caplog.records if deliverer.GIVEN_UP in r.getMessage()]
    assert line.endswith(f"of account acme after {len(deliverer.RETRY_DELAYS) + 1} attempts")


def test_a_failed_attempt_that_will_be_retried_is_not_given_up(
    migrated_engine, receiver_of, client, caplog
):
    account_with_webhook(migrated_engine, receiver_of((500, {}, b"down")).url)
    completed_upload(migrated_engine)
    with caplog.at_level("WARNING", logger=deliverer.log.name):
        deliver(migrated_engine, client, datetime.now(UTC))
    assert not [r for r in caplog.records if deliverer.GIVEN_UP in r.getMessage()]


PRODUCTION = {
    "RETAINWISE_ENV": "production",
    "RETAINWISE_DATABASE_URL": "postgresql+psycopg://u@db:5432/retainwise",
    "RETAINWISE_MLFLOW_TRACKING_URI": "postgresql+psycopg://u@db:5432/mlflow",
    "RETAINWISE_WEBHOOK_KEY": Fernet.generate_key().decode(),
    "RETAINWISE_PUBLIC_URL": "https://retainwise.example.com",
}


@pytest.mark.parametrize(
    "variable, value, named",
    [
        (None, None, None),
        ("RETAINWISE_WEBHOOK_KEY", None, "RETAINWISE_WEBHOOK_KEY is not set"),
        ("RETAINWISE_WEBHOOK_KEY", "not-a-key", "RETAINWISE_WEBHOOK_KEY holds a key that is not"),
        ("RETAINWISE_PUBLIC_URL", None, "RETAINWISE_PUBLIC_URL is not"),
        ("RETAINWISE_PUBLIC_URL", "http://retainwise.example.com", "RETAINWISE_PUBLIC_URL is not"),
        ("RETAINWISE_DATABASE_URL", "sqlite:///x.db", "RETAINWISE_DATABASE_URL is a local file"),
    ],
)
def test_a_production_deliverer_refuses_to_start_naming_what_is_unsafe(
    monkeypatch, capsys, variable, value, named
):
    for name, setting in PRODUCTION.items():
        monkeypatch.setenv(name, setting)
    if variable and value is None:
        monkeypatch.delenv(variable)
    elif variable:
        monkeypatch.setenv(variable, value)
    problems = deliverer.production_problems(Settings())
    if named is None:
        assert problems == []
        return
    assert [p for p in problems if named in p]
    assert deliverer.main([]) == 2  # before any database connection or loop
    assert named in capsys.readouterr().err


def test_locally_the_deliverer_has_no_production_problems(monkeypatch, tmp_path):
    monkeypatch.setenv("RETAINWISE_ENV", "local")
    assert deliverer.production_problems(Settings(home=tmp_path)) == []


def test_a_refused_destination_is_a_recorded_attempt_and_nothing_is_sent(migrated_engine, client):
    # loopback's 443: a test receiver's own port would be refused first (production: 443 only)
    account_with_webhook(migrated_engine, "https://localhost/hooks/rw")
    completed_upload(migrated_engine)
    [delivery] = deliver(migrated_engine, client, datetime.now(UTC), production=True)
    # refused by the address check: a connection tried would have been a ConnectError
    assert delivery.error == (
        "DestinationRefused: localhost resolves to 127.0.0.1, not a public address"
    )
    assert webhooks.deliveries(migrated_engine, "acme")[0].error == delivery.error


def test_a_redirect_is_not_followed_and_counts_as_a_failure(migrated_engine, receiver_of, client):
    receiver = receiver_of((302, {"location": "http://169.254.169.254/"}, b""))
    account_with_webhook(migrated_engine, receiver.url)
    completed_upload(migrated_engine)
    [delivery] = deliver(migrated_engine, client, datetime.now(UTC))
    assert delivery.status_code == 302 and not delivery.succeeded
    assert "169.254.169.254" in delivery.error and len(receiver.got) == 1


def test_a_huge_response_body_is_not_read_and_a_hung_receiver_times_out(
    migrated_engine, receiver_of
):
    huge = receiver_of((500, {}, b"x" * 5_000_000))
    account_with_webhook(migrated_engine, huge.url)
    completed_upload(migrated_engine)
    with deliverer.new_client() as client:
        [delivery] = deliver(migrated_engine, client, datetime.now(UTC))
    assert delivery.status_code == 500 and len(delivery.error) < 300

    hung = receiver_of((0, {}, b""))
    webhooks.remove_endpoint(migrated_engine, "acme")  # the first event is given up
    webhooks.set_endpoint(migrated_engine, "acme", hung.url, BOX)
    completed_upload(migrated_engine)
    started = time.monotonic()
    with httpx.Client(timeout=0.5, follow_redirects=False, trust_env=False) as client:
        [delivery] = deliver(migrated_engine, client, datetime.now(UTC))
    assert delivery.status_code is None and "ReadTimeout" in delivery.error
    assert time.monotonic() - started < 5


def test_an_upload_scored_on_the_stack_is_delivered_signed_within_15_s(
    resources, receiver_of, prefect_api
):
    from flows.score_upload import score_upload
    from tests.helpers import customers_csv, submit, wait_for

    receiver = receiver_of()
    accounts.create_account(resources.engine, "acme")
    secret = webhooks.set_endpoint(
        resources.engine, "acme", receiver.url, webhooks.secret_box(resources.settings)
    )
    stop = threading.Event()
    loop = threading.Thread(target=deliverer.run, args=(resources.settings, stop, 0.2))
    loop.start()
    try:
        prediction_id = submit(resources, customers_csv(50))
        score_upload(prediction_id)
        completed = time.monotonic()
        wait_for(lambda: receiver.got, 15, "the upload.completed webhook")
        took = time.monotonic() - completed
    finally:
        stop.set()
        loop.join(10)
    [(headers, body)] = receiver.got
    assert spec_verify(secret, {k.lower(): v for k, v in headers.items()}, body)
    event = json.loads(body)
    assert (event["type"], event["data"]["prediction_id"]) == ("upload.completed", prediction_id)
    assert event["data"]["status"] == "COMPLETED" and event["data"]["rows_scored"] == 50
    assert took < 15


def test_a_receiver_trickling_its_answer_is_cut_off_at_the_attempt_deadline(
    migrated_engine, receiver_of
):
    """Each byte comes well within the per-read timeout; only the whole-attempt deadline ends it."""
    trickle = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def answer_a_byte_at_a_time():
        conn, _ = trickle.accept()
        with conn:
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 1000:
                if stop.wait(0.1):
                    return
                with contextlib.suppress(OSError):
                    conn.sendall(bytes([byte]))

    threading.Thread(target=answer_a_byte_at_a_time, daemon=True).start()
    accounts.create_account(migrated_engine, "acme")
    url = f"http://localhost:{trickle.getsockname()[1]}/hooks"
    webhooks.set_endpoint(migrated_engine, "acme", url, BOX)
    completed_upload(migrated_engine)
    started = time.monotonic()
    with httpx.Client(timeout=0.5, follow_redirects=False, trust_env=False) as client:
        [delivery] = deliverer.deliver_due(
            migrated_engine,
            BOX,
            client,
            "w",
            datetime.now(UTC),
            production=False,
            base_url=BASE_URL,
            deadline=1.0,
        )
    stop.set()
    trickle.close()
    assert delivery.status_code is None and delivery.error == "no complete answer within 1 s"
    assert time.monotonic() - started < 5  # the trickle alone would take 100 s


def test_a_secret_no_key_can_read_is_a_recorded_failure_not_a_stuck_outbox(
    migrated_engine, receiver_of, client
):
    receiver = receiver_of()
    account_with_webhook(migrated_engine, receiver.url)
    completed_upload(migrated_engine)
    other_key = MultiFernet([Fernet(Fernet.generate_key())])
    [delivery] = deliverer.deliver_due(
        migrated_engine, other_key, client, "w", datetime.now(UTC), production=False, base_url=""
    )
    assert delivery.error.endswith(deliverer.SECRET_UNREADABLE) and receiver.got == []
