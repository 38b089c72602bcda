"""Security headers on every response: an ASGI middleware in front of the app.

Content-Security-Policy allows only this origin, and inline scripts only with the response's
nonce (templates write `nonce="{{ csp_nonce }}"`); no framing, no MIME sniffing, and no caching:
every page and file here is one account's data. HSTS in production, where TLS terminates at the
load balancer. `/docs` exists only outside production (FastAPI's Swagger UI comes from a CDN), so
its looser policy never reaches a production origin.
"""

from __future__ import annotations

import secrets
from typing import Any, TypedDict

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

HSTS = "max-age=31536000; includeSubDomains"
DOCS_PATHS = ("/docs", "/docs/oauth2-redirect", "/redoc")
SWAGGER_CDN = "https://cdn.jsdelivr.net"
POLICY = (
    "default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
DOCS_POLICY = (
    f"default-src 'self'; script-src 'self' 'unsafe-inline' {SWAGGER_CDN}; "
    f"style-src 'self' 'unsafe-inline' {SWAGGER_CDN}; img-src 'self' data: "
    "https://fastapi.tiangolo.com; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)


class DocsUrls(TypedDict):
    docs_url: str | None
    redoc_url: str | None


def docs_urls(production: bool) -> DocsUrls:
    """FastAPI's docs arguments: none in production (the schema stays at /openapi.json)."""
    if production:
        return {"docs_url": None, "redoc_url": None}
    return {"docs_url": "/docs", "redoc_url": "/redoc"}


def template_context(request: Request) -> dict[str, Any]:
    """For Jinja2Templates(context_processors=...): the nonce inline scripts must carry."""
    return {"csp_nonce": getattr(request.state, "csp_nonce", "")}


class SecurityHeaders:
    """ASGI middleware adding the headers above to every HTTP response the app sends."""

    def __init__(self, app: ASGIApp, production: bool) -> None:
        self.app, self.production = app, production

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        nonce = secrets.token_urlsafe(16)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        added = self.headers(scope["path"], nonce)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(name, value) for name, value in added if name not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, with_headers)

    def headers(self, path: str, nonce: str) -> list[tuple[bytes, bytes]]:
        policy = DOCS_POLICY if path in DOCS_PATHS else POLICY.format(nonce=nonce)
        headers = {
            "content-security-policy": policy,
            "x-frame-options": "DENY",
            "x-content-type-options": "nosniff",
            "referrer-policy": "same-origin",
            "cache-control": "no-store",
        }
        if self.production:
            headers["strict-transport-security"] = HSTS
        return [(name.encode(), value.encode()) for name, value in headers.items()]
