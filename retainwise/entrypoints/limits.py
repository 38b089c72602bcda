"""Every request body bounded before anything parses it: an ASGI middleware in front of the app.

Each route has a byte limit (a few KB unless it takes files); the middleware refuses a larger
`Content-Length` at once and counts the bytes of every body as they arrive, so a chunked body, or
one longer than its `Content-Length` said, is cut off at the limit too. A request that carries
both `Content-Length` and `Transfer-Encoding` is refused: the two can disagree about where the
body ends. Forms are parsed with explicit field, file and part limits and closed (`small_form`).
Each API key gets a request rate (`RateLimit`), answered 429 with `Retry-After` past it.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from retainwise.adapters import admission
from retainwise.adapters.db import utcnow
from retainwise.config.settings import Settings
from retainwise.entrypoints.headers import SecurityHeaders

MAX_OFFSET = 10**9  # paging further answers 422 (a larger number overflows the database's)
CAP_RETRY_AFTER_SECONDS = 30
SMALL_BODY_BYTES = 16 * 1024  # a sign-in form, a JSON call: far below this
FORM_FIELDS = 8
FORM_PART_BYTES = 4096
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundaries and part headers around an uploaded file
CLOSE = (b"connection", b"close")


class BodyTooLarge(HTTPException):
    """The body passed its route's limit; raised from `receive`, answered 413."""

    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than {describe(limit)}; it was refused")


def describe(limit: int) -> str:
    """A limit as customers read it: MB when it is one, else KB."""
    if limit >= 1_000_000:
        return f"{limit // 1_000_000} MB"
    return f"{limit // 1024} KB"


@dataclass(frozen=True)
class RouteLimit:
    """Bodies of `method` requests whose path matches `path` (a regex, whole path) up to `bytes`."""

    method: str
    path: str
    bytes: int

    def matches(self, method: str, path: str) -> bool:
        return method == self.method and re.fullmatch(self.path, path) is not None


def upload_limits(max_upload_bytes: int, max_outcomes_bytes: int) -> list[RouteLimit]:
    """The routes that take files: uploads (raw or a form around the file) and outcomes."""
    form_bytes = max_upload_bytes + MULTIPART_OVERHEAD_BYTES
    return [
        RouteLimit("POST", "/uploads", form_bytes),
        RouteLimit("POST", "/app/uploads", form_bytes),
        RouteLimit("POST", "/uploads/[^/]+/outcomes", max_outcomes_bytes),
    ]


class BodyLimits:
    """ASGI middleware: 400 for a doubly framed body, 413 past the route's limit."""

    def __init__(
        self, app: ASGIApp, routes: Sequence[RouteLimit] = (), default: int = SMALL_BODY_BYTES
    ) -> None:
        self.app, self.routes, self.default = app, tuple(routes), default

    def limit_for(self, method: str, path: str) -> int:
        return next((r.bytes for r in self.routes if r.matches(method, path)), self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {name.lower(): value for name, value in scope["headers"]}
        limit = self.limit_for(scope["method"], scope["path"])
        refusal = _refusal(headers, limit)
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received, overflowed, started = 0, False, False

        async def counting_receive() -> Message:
            nonlocal received, overflowed
            message = await receive()
            received += len(message.get("body", b""))
            overflowed = received > limit
            if overflowed:
                raise BodyTooLarge(limit)
            return message

        async def closing_send(message: Message) -> None:
            """After an overflow the rest of the body is never read: the connection must end."""
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if overflowed:
                    message = {**message, "headers": [*message["headers"], CLOSE]}
            await send(message)

        try:
            await self.app(scope, counting_receive, closing_send)
        except BodyTooLarge as exc:
            if started:
                raise
            await _problem(413, exc.detail)(scope, receive, send)


def _refusal(headers: dict[bytes, bytes], limit: int) -> JSONResponse | None:
    """The answer a request gets from its headers alone, or None to read its body."""
    length = headers.get(b"content-length")
    if length is not None and b"transfer-encoding" in headers:
        return _problem(400, "send Content-Length or Transfer-Encoding, not both")
    if length is None:
        return None
    if not length.isdigit():
        return _problem(400, "Content-Length is not a number")
    if int(length) > limit:
        return _problem(413, BodyTooLarge(limit).detail)
    return None


def _problem(status: int, detail: str) -> JSONResponse:
    """A JSON error like the API's own; the connection ends, leaving the body unread."""
    return JSONResponse({"detail": detail}, status, headers={"Connection": "close"})


@asynccontextmanager
async def small_form(request: Request, fields: int = FORM_FIELDS) -> AsyncIterator[FormData]:
    """A form of a few short text fields and no files (sign-in, sign-out), closed after use."""
    async with request.form(max_files=0, max_fields=fields, max_part_size=FORM_PART_BYTES) as form:
        yield form


@dataclass
class RateLimit:
    """A token bucket per API key: `per_minute` requests on average, bursts up to `burst`. In
    memory, so each API task keeps its own (the load balancer spreads a key's requests)."""

    per_minute: int
    burst: int
    _buckets: dict[str, tuple[float, float]] = field(default_factory=dict)  # tokens, when
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def retry_after(self, key: str, now: float) -> int | None:
        """None when this request of `key` may go (and takes a token); else whole seconds until
        one is there."""
        rate = self.per_minute / 60
        with self._lock:
            tokens, then = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - then) * rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return None
            self._buckets[key] = (tokens, now)
        return max(1, math.ceil((1 - tokens) / rate))

    def check(self, key: str, now: float) -> None:
        """Raise 429 with Retry-After when `key` is over its rate."""
        wait = self.retry_after(key, now)
        if wait is not None:
            raise HTTPException(
                429,
                f"too many requests for this API key; retry in {wait} s",
                headers={"Retry-After": str(wait)},
            )


def install(app: Starlette, settings: Settings) -> None:
    """Body limits inside, security headers outermost (so a 413 carries them too), and the
    per-key rate on app.state for `check_rate`."""
    limits = upload_limits(settings.max_upload_bytes, settings.max_outcomes_bytes)
    app.add_middleware(BodyLimits, routes=limits)
    app.add_middleware(SecurityHeaders, production=settings.env == "production")
    app.state.rate_limit = RateLimit(settings.rate_limit_per_minute, settings.rate_limit_burst)


def check_rate(request: Request, key_id: str) -> None:
    """429 with Retry-After when this API key is over its rate (none set: no limit)."""
    limit: RateLimit | None = getattr(request.app.state, "rate_limit", None)
    if limit is not None:
        limit.check(key_id, time.monotonic())


@asynccontextmanager
async def upload_slot(engine, account: str, prediction_id: str, cap: int) -> AsyncIterator[None]:
    """Hold one of the account's `cap` active-upload slots while the body streams, or 429."""
    taken = await run_in_threadpool(
        admission.take_slot, engine, account, prediction_id, cap, utcnow()
    )
    if not taken:
        raise HTTPException(
            429,
            f"{cap} uploads of this account are arriving, waiting or running; retry when one "
            "finishes",
            headers={"Retry-After": str(CAP_RETRY_AFTER_SECONDS)},
        )
    try:
        yield
    finally:
        await run_in_threadpool(admission.release_slot, engine, prediction_id)
