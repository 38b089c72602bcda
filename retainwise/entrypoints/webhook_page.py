"""The web app's webhook page (/app/webhook): set or remove the account's URL, see the secret
once, and the last 50 deliveries with their response codes."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from retainwise.adapters import webhooks
from retainwise.adapters.resources import Resources
from retainwise.entrypoints import web
from retainwise.entrypoints.webhooks import set_webhook, show_webhook
from retainwise.runtime.webhooks import DestinationRefused


def router(resources: Resources) -> APIRouter:
    routes = APIRouter(include_in_schema=False)
    signed_in = web.session_account(resources)

    def page(request: Request, account: str, status: int = 200, **context) -> HTMLResponse:
        shown = show_webhook(resources, account)
        return web.render(request, "webhook.html", status, webhook=shown, **context)

    @routes.get("/app/webhook")
    def webhook_page(request: Request, account: dict = Depends(signed_in)) -> HTMLResponse:
        return page(request, account["name"])

    @routes.post("/app/webhook")
    async def change_webhook(request: Request, account: dict = Depends(signed_in)):
        form = {key: str(value) for key, value in (await request.form()).items()}
        web.check_csrf(request, form.get("csrf"))
        name = account["name"]
        if form.get("action") == "remove":
            await run_in_threadpool(webhooks.remove_endpoint, resources.engine, name)
            return RedirectResponse("/app/webhook", 303)
        try:
            made = await run_in_threadpool(set_webhook, resources, name, form.get("url", ""))
        except DestinationRefused as exc:
            return await run_in_threadpool(page, request, name, 422, error=str(exc))
        return await run_in_threadpool(page, request, name, secret=made.secret)

    return routes
