"""The FastAPI app: the HTTP API (api.py) and the web app (web.py) on one Resources per worker.

Built here, above both routers, so neither imports the other to be served.
"""

from __future__ import annotations

from fastapi import FastAPI

from retainwise.adapters.resources import Resources
from retainwise.entrypoints import (
    actions_api,
    api,
    customers_api,
    headers,
    limits,
    web,
    webhook_page,
    webhooks,
)


def create_app(resources: Resources) -> FastAPI:
    """Routes reach `resources` through deps.get_resources (app.state), so tests can override it."""
    production = resources.settings.env == "production"
    app = FastAPI(
        **headers.docs_urls(production),
        title="RetainWise",
        version="1",
        description="Upload customer lists, get churn scores back. Authenticate with "
        "`Authorization: Bearer <API key>`.",
    )
    app.state.resources = resources
    app.include_router(api.router)
    app.include_router(customers_api.router)
    app.include_router(actions_api.router)
    app.include_router(webhooks.router)
    web.install(app, resources)
    app.include_router(webhook_page.router)
    limits.install(app, resources.settings)  # outside the sessions: bodies bounded first
    return app
