"""Body limits: in-process through Starlette's TestClient, and as raw bytes on a socket to uvicorn
(the only way to send a chunked body, a lying length, or both framings at once)."""

from __future__ import annotations

import asyncio
import socket

import pytest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from retainwise.config.settings import Settings
from retainwise.entrypoints.limits import (
    BodyLimits,
    RateLimit,
    RouteLimit,
    describe,
    install,
    small_form,
    upload_slot,
)
from tests.conftest import free_port
from tests.helpers import served

SMALL, LARGE = 100, 10_000


async def length(request: Request) -> JSONResponse:
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
    return JSONResponse({"bytes": size})


async def form(request: Request) -> JSONResponse:
    async with small_form(request) as fields:
        return JSONResponse({"name": fields.get("name")})


def limited_app() -> BodyLimits:
    app = Starlette(
        routes=[
            Route("/small", length, methods=["POST"]),
            Route("/files/{id}", length, methods=["POST"]),
            Route("/form", form, methods=["POST"]),
        ]
    )
    return BodyLimits(app, [RouteLimit("POST", "/files/[^/]+", LARGE)], default=SMALL)


@pytest.fixture
def client():
    with TestClient(limited_app()) as client:
        yield client


@pytest.fixture(scope="module")
def address():
    port = free_port()
    with served(limited_app(), port):
        yield ("127.0.0.1", port)


def raw(address: tuple[str, int], head: str, body: bytes = b"") -> tuple[int, bytes]:
    """Send one request as bytes; the status and the whole answer (the server closes)."""
    with socket.create_connection(address, timeout=10) as sock:
        try:
            sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before reading it all
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1]), answer


def chunked(blocks: int, size: int) -> bytes:
    return b"".join(f"{size:x}\r\n".encode() + b"x" * size + b"\r\n" for _ in range(blocks)) + (
        b"0\r\n\r\n"
    )


def test_a_body_within_its_routes_limit_is_read(client):
    assert client.post("/small", content=b"x" * SMALL).json() == {"bytes": SMALL}
    assert client.post("/files/7", content=b"x" * LARGE).json() == {"bytes": LARGE}


def test_a_declared_length_over_the_limit_is_refused_unread(client):
    answer = client.post("/small", content=b"x" * (SMALL + 1))
    assert answer.status_code == 413
    assert answer.headers["connection"] == "close"
    assert "larger than 0 KB" in answer.json()["detail"]


def test_a_streamed_body_is_counted_as_it_arrives(client):
    def blocks():
        yield from (b"x" * 64 for _ in range(100))

    answer = client.post("/files/7", content=blocks())  # no Content-Length: chunked
    assert answer.status_code == 200
    answer = client.post("/small", content=blocks())
    assert answer.status_code == 413


def test_both_framings_are_refused(client):
    headers = {"Content-Length": "5", "Transfer-Encoding": "chunked"}
    answer = client.post("/small", content=b"hello", headers=headers)
    assert answer.status_code == 400
    assert "not both" in answer.json()["detail"]


def test_a_length_that_is_not_a_number_is_refused(client):
    answer = client.post("/small", content=b"hi", headers={"Content-Length": "-2"})
    assert answer.status_code == 400


def test_forms_have_few_short_fields_and_no_files(client):
    assert client.post("/form", data={"name": "acme"}).json() == {"name": "acme"}
    too_many = {f"f{i}": "x" for i in range(9)}
    assert client.post("/form", data=too_many).status_code == 400
    files = {"file": ("a.csv", b"a,b\n")}
    assert client.post("/form", data={"name": "a"}, files=files).status_code in (400, 413)


def test_uvicorn_refuses_a_chunked_body_past_the_limit(address):
    head = "POST /small HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n"
    status, answer = raw(address, head, chunked(blocks=50, size=1000))
    assert status == 413
    assert b"connection: close" in answer.lower()


def test_uvicorn_refuses_a_chunked_body_with_a_lying_length(address):
    head = "POST /files/1 HTTP/1.1\nHost: t\nContent-Length: 5\nTransfer-Encoding: chunked\n"
    status, _ = raw(address, head, chunked(blocks=50, size=1000))
    assert status == 400


def test_uvicorn_refuses_a_declared_length_before_the_body(address):
    status, _ = raw(address, "POST /small HTTP/1.1\nHost: t\nContent-Length: 600000000\n")
    assert status == 413


def test_uvicorn_reads_a_chunked_body_within_the_limit(address):
    head = "POST /files/1 HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\nConnection: close\n"
    status, answer = raw(address, head, chunked(blocks=5, size=1000))
    assert status == 200
    assert answer.endswith(b'{"bytes":5000}')


def test_limits_read_in_units_customers_know():
    assert describe(200_000_000) == "200 MB"
    assert describe(16 * 1024) == "16 KB"


def test_a_key_over_its_rate_waits_and_others_do_not():
    limit = RateLimit(per_minute=60, burst=3)
    assert [limit.retry_after("a", now=100.0) for _ in range(3)] == [None, None, None]
    assert limit.retry_after("a", now=100.0) == 1
    assert limit.retry_after("b", now=100.0) is None
    assert limit.retry_after("a", now=101.0) is None  # one token a second
    with pytest.raises(HTTPException) as refused:
        limit.check("a", now=101.0)
    assert refused.value.status_code == 429 and refused.value.headers["Retry-After"] == "1"


def test_the_burst_refills_to_its_cap_only():
    limit = RateLimit(per_minute=6, burst=2)
    assert limit.retry_after("a", 0.0) is None and limit.retry_after("a", 0.0) is None
    assert limit.retry_after("a", 0.0) == 10
    assert limit.retry_after("a", 3600.0) is None and limit.retry_after("a", 3600.0) is None
    assert limit.retry_after("a", 3600.0) == 10


def test_installed_limits_answer_with_the_security_headers():
    app = Starlette(routes=[Route("/small", length, methods=["POST"])])
    install(app, Settings(rate_limit_per_minute=60, rate_limit_burst=1))
    with TestClient(app) as client:
        refused = client.post("/small", content=b"x" * 20_000)
        assert refused.status_code == 413 and refused.headers["x-frame-options"] == "DENY"
        assert client.post("/small", content=b"x").status_code == 200
    assert app.state.rate_limit.burst == 1


def test_an_upload_holds_its_slot_until_it_ends(migrated_engine):
    async def two_at_once():
        async with upload_slot(migrated_engine, "acme", "u1", cap=1):
            with pytest.raises(HTTPException) as refused:
                async with upload_slot(migrated_engine, "acme", "u2", cap=1):
                    pass
            assert refused.value.status_code == 429 and refused.value.headers["Retry-After"]
        async with upload_slot(migrated_engine, "acme", "u3", cap=1):
            return True

    assert asyncio.run(two_at_once())
