"""The webhook deliverer: a loop beside the trigger that sends due outbox events, signed to the
Standard Webhooks spec, and records every attempt.

At least once: an event stays due until an attempt answers 2xx, retried with exponential backoff
for about 16 hours; a claim (a lease) keeps two deliverers from sending one event at once, and a
success is recorded once. Outside the scoring run: a slow or failing receiver never delays one.
In production a destination must be HTTPS on port 443 (all the deliverer's ECS service may reach)
and resolve only to public addresses; the request goes to the address that was checked (no second
lookup), and redirects are not followed.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
from cryptography.fernet import MultiFernet
from sqlalchemy.engine import Engine
from standardwebhooks.webhooks import Webhook

from retainwise.adapters import webhooks
from retainwise.adapters.db import make_engine
from retainwise.config.errors import MissingSetting
from retainwise.config.settings import Settings

log = logging.getLogger("retainwise.webhooks")

TIMEOUT = httpx.Timeout(5.0)  # each of connect, write and each read
# a whole attempt, however slowly a receiver trickles its bytes (each under TIMEOUT)
ATTEMPT_DEADLINE = 10.0
MAX_RESPONSE_BYTES = 4096  # the rest of a response body is never read
# 5 s, 20 s, 80 s, 5 min, 21 min, 85 min, 5.7 h, 8 h: nine attempts over ~16 h
RETRY_DELAYS = tuple(timedelta(seconds=min(5 * 4**n, 8 * 3600)) for n in range(8))
LEASE = timedelta(minutes=5)  # far longer than one attempt can take
BATCH = 8  # events claimed and sent (in parallel) per round
USER_AGENT = "RetainWise-Webhooks/1"
HTTPS_PORT = 443  # production: the only port the deliverer's security group lets out
# logged when an event's last attempt fails; deployments/cdk counts these lines into an alarm
GIVEN_UP = "webhook event given up"


class Undeliverable(ValueError):
    """An attempt that cannot be made; recorded as the attempt's error."""


class DestinationRefused(Undeliverable):
    """A URL the deliverer will not send to (scheme, or an address that is not public)."""


SECRET_UNREADABLE = (
    "the signing secret cannot be decrypted with RETAINWISE_WEBHOOK_KEY (the key it was "
    "encrypted with is gone); set the webhook again"
)


def checked_address(url: str, production: bool) -> tuple[httpx.URL, str]:
    """The URL and the one address to connect to; in production HTTPS and public addresses
    only, judged on every address the name resolves to now."""
    parsed = _parsed(url, production)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        found = socket.getaddrinfo(parsed.host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise DestinationRefused(f"cannot resolve {parsed.host}: {exc.strerror}") from None
    addresses = sorted(
        {ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in found},
        key=lambda a: (a.version, int(a)),  # IPv4 first, where most receivers listen
    )
    refused = [a for a in addresses if not _public(a)] if production else []
    if refused:
        raise DestinationRefused(f"{parsed.host} resolves to {refused[0]}, not a public address")
    return parsed, str(addresses[0])


def acceptable(url: str, production: bool) -> str:
    """A URL `webhook set` takes: http(s); in production HTTPS to public addresses now (and
    checked again at every attempt, as DNS may change)."""
    if production:
        checked_address(url, production)
    else:
        _parsed(url, production)
    return url


def _parsed(url: str, production: bool) -> httpx.URL:
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise DestinationRefused(f"{url!r} is not a URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise DestinationRefused(f"{url!r} is not an http(s) URL")
    if production and parsed.scheme != "https":
        raise DestinationRefused("webhook URLs must be https:// in production")
    if production and parsed.port not in (None, HTTPS_PORT):
        raise DestinationRefused(f"webhook URLs must use port {HTTPS_PORT} in production")
    return parsed


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


def render(payload: str, base_url: str) -> str:
    """The body sent for an event: its stored payload with the links made absolute."""
    event = json.loads(payload)
    links = event["data"]["links"]
    event["data"]["links"] = {k: base_url.rstrip("/") + v for k, v in links.items()}
    return json.dumps(event, separators=(",", ":"))


def signed_headers(secret: str, event_id: str, at: datetime, body: str) -> dict[str, str]:
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(event_id, at.astimezone(UTC), body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


class Deadline:
    """Shuts the attempt's socket down once the whole attempt overruns, so a receiver answering a
    byte every few seconds cannot hold a round (and every account's deliveries) for hours."""

    def __init__(self, seconds: float):
        self.seconds, self.expired = seconds, False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._timer.cancel()

    def trace(self, name: str, info: dict[str, object]) -> None:
        """httpcore's trace hook: keep the newest socket (TCP, then TLS over it)."""
        if name in ("connection.connect_tcp.complete", "connection.start_tls.complete"):
            stream = info["return_value"]
            with self._lock:
                self._sock = stream.get_extra_info("socket")  # type: ignore[attr-defined]
                if self.expired:
                    self._shut()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shut()

    def _shut(self) -> None:
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes a blocked read at once


def send(
    client: httpx.Client,
    event: webhooks.Event,
    body: str,
    now: datetime,
    production: bool,
    deadline: float = ATTEMPT_DEADLINE,
) -> webhooks.Delivery:
    """One attempt; every failure becomes the attempt's recorded error, never an exception."""
    started = time.monotonic()
    status, error = None, None
    try:
        if event.secret is None:
            raise Undeliverable(SECRET_UNREADABLE)
        url, address = checked_address(event.url, production)
        request = client.build_request(
            "POST",
            url.copy_with(host=address),
            content=body.encode(),
            headers={
                **signed_headers(event.secret, event.id, now, body),
                "host": url.netloc.decode(),
            },
        )
        with Deadline(deadline) as limit:
            # TLS checks the name, not the address
            request.extensions.update(sni_hostname=url.host, trace=limit.trace)
            try:
                status, error = _post(client, request)
            except httpx.HTTPError:
                if not limit.expired:
                    raise
                status, error = None, f"no complete answer within {deadline:g} s"
    except (Undeliverable, httpx.HTTPError) as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    duration = round((time.monotonic() - started) * 1000)
    return webhooks.Delivery(event.id, event.url, now, status, error, duration)


def _post(client: httpx.Client, request: httpx.Request) -> tuple[int, str | None]:
    """The status code, and for anything but 2xx the start of the body as the error."""
    response = client.send(request, stream=True)
    try:
        head = b""
        for block in response.iter_raw():
            head += block
            if len(head) >= MAX_RESPONSE_BYTES:
                break
    finally:
        response.close()
    if response.is_success:
        return response.status_code, None
    if response.is_redirect:
        return response.status_code, f"redirect to {response.headers.get('location')} not followed"
    text = head[:MAX_RESPONSE_BYTES].decode("utf-8", "replace")
    return response.status_code, f"HTTP {response.status_code}: {text[:200]}"


def retry_at(attempts: int, at: datetime) -> datetime | None:
    """When to try again after `attempts` failed attempts; None: give up."""
    return at + RETRY_DELAYS[attempts - 1] if attempts <= len(RETRY_DELAYS) else None


def deliver_due(
    engine: Engine,
    box: MultiFernet,
    client: httpx.Client,
    worker: str,
    now: datetime,
    *,
    production: bool,
    base_url: str,
    deadline: float = ATTEMPT_DEADLINE,
) -> list[webhooks.Delivery]:
    """One round: claim what is due, send it in parallel, record every attempt."""
    events = webhooks.claim_due(engine, worker, box, now, LEASE, BATCH)
    if not events:
        return []

    def attempt(event: webhooks.Event) -> webhooks.Delivery:
        body = render(event.payload, base_url)
        delivery = send(client, event, body, now, production, deadline)
        retry = None if delivery.succeeded else retry_at(event.attempts + 1, now)
        if not webhooks.record_attempt(engine, event, worker, delivery, retry):
            log.warning("event %s: claim lost while sending; attempt kept", event.id)
        elif retry is None and not delivery.succeeded:
            n = event.attempts + 1
            log.warning(
                "%s: %s of account %s after %d attempts", GIVEN_UP, event.id, event.account, n
            )
        return delivery

    with ThreadPoolExecutor(max_workers=len(events), thread_name_prefix="webhook") as pool:
        return list(pool.map(attempt, events))


def new_client() -> httpx.Client:
    """No redirects, no proxies from the environment (they would bypass the address check), no
    kept-alive connections (each attempt's own socket is what its deadline shuts)."""
    return httpx.Client(
        timeout=TIMEOUT,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0),
    )


def run(settings: Settings, stop: threading.Event, poll: float = 1.0) -> None:
    """Deliver until `stop` is set, a round every `poll` s (at once again after a full batch)."""
    engine, box = make_engine(settings.db_url), webhooks.secret_box(settings)
    worker = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
    base_url = settings.public_url or f"http://127.0.0.1:{settings.stack_api_port}"
    production = settings.env == "production"
    with new_client() as client:
        while not stop.is_set():
            try:
                sent = deliver_due(
                    engine,
                    box,
                    client,
                    worker,
                    datetime.now(UTC),
                    production=production,
                    base_url=base_url,
                )
                for d in sent:
                    log.info("event %s -> %s: %s %s", d.event_id, d.url, d.status_code, d.error)
            except Exception:  # a database blip: the next round tries again
                log.exception("webhook round failed")
                sent = []
            if len(sent) < BATCH:
                stop.wait(poll)
    engine.dispose()


def production_problems(settings: Settings) -> list[str]:
    """What a production deliverer lacks, by variable: the shared checks, a readable key, and
    the API's https address for the links (else they would point at loopback); [] locally."""
    if settings.env != "production":
        return []
    problems = settings.production_problems(serves_web=False)
    try:
        webhooks.secret_box(settings)
    except MissingSetting as exc:
        problems.append(str(exc))
    if not (settings.public_url or "").startswith("https://"):
        problems.append("RETAINWISE_PUBLIC_URL is not the API's https:// address (event links)")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="deliver webhook events (long-running)")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between rounds")
    args = parser.parse_args(argv)
    settings = Settings()
    problems = production_problems(settings)
    if problems:
        print("RETAINWISE_ENV=production refuses to start: " + "; ".join(problems), file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        run(settings, stop, args.poll)
    except KeyboardInterrupt:
        stop.set()
    return 0


if __name__ == "__main__":
    sys.exit(main())
