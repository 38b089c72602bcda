"""Security headers on every response, the CSP nonce the templates read, no /docs in production."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from retainwise.entrypoints.headers import HSTS, SecurityHeaders, docs_urls, template_context


async def page(request: Request) -> JSONResponse:
    return JSONResponse(template_context(request))


async def cached(request: Request) -> PlainTextResponse:
    return PlainTextResponse("x", headers={"Cache-Control": "max-age=60"})


def client(production: bool) -> TestClient:
    app = Starlette(routes=[Route("/page", page), Route("/docs", page), Route("/cached", cached)])
    return TestClient(SecurityHeaders(app, production=production))


@pytest.mark.parametrize("production", [False, True])
def test_every_response_carries_the_headers(production):
    answer = client(production).get("/page")
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    assert answer.headers.get("strict-transport-security") == (HSTS if production else None)
    missing = client(production).get("/nowhere")
    assert missing.status_code == 404 and missing.headers["x-frame-options"] == "DENY"


def test_inline_scripts_need_this_responses_nonce():
    first, second = client(False).get("/page"), client(False).get("/page")
    nonce = first.json()["csp_nonce"]
    assert len(nonce) >= 16 and nonce != second.json()["csp_nonce"]
    policy = first.headers["content-security-policy"]
    assert (
        f"script-src 'self' 'nonce-{nonce}';" in policy
        and "script-src 'self' 'unsafe-inline'" not in policy
    )


def test_a_responses_own_header_wins_and_docs_get_their_cdn():
    assert client(False).get("/cached").headers["cache-control"] == "max-age=60"
    assert "cdn.jsdelivr.net" in client(False).get("/docs").headers["content-security-policy"]
    assert "cdn.jsdelivr.net" not in client(False).get("/page").headers["content-security-policy"]


def test_production_serves_no_docs():
    assert docs_urls(production=True) == {"docs_url": None, "redoc_url": None}
    assert docs_urls(production=False)["docs_url"] == "/docs"
