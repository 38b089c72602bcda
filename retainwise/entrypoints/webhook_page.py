"""The web app's account page (/app/webhook): set or remove the account's webhook URL, see the
secret once, and the last 50 deliveries with their response codes; name the input columns carried
into every upload's results and the value column that ranks the actions list by value at risk."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from retainwise.adapters import accounts, webhooks
from retainwise.adapters.db import split_names
from retainwise.adapters.resources import Resources
from retainwise.entrypoints.deps import Env
from retainwise.entrypoints.limits import small_form
from retainwise.entrypoints.web import SignedIn, check_csrf, render
from retainwise.entrypoints.webhooks import set_webhook, show_webhook
from retainwise.runtime.webhooks import DestinationRefused

router = APIRouter(include_in_schema=False)


def page(request: Request, env: Resources, account: str, status: int = 200, **context: Any):
    shown = show_webhook(env, account)
    found = accounts.get_account(env.engine, account)
    carried = ", ".join(found.carry_columns) if found is not None else ""
    value = (found.value_column or "") if found is not None else ""
    return render(
        request, "webhook.html", status, webhook=shown, carried=carried, value=value, **context
    )


@router.get("/app/webhook")
def webhook_page(request: Request, env: Env, account: SignedIn) -> HTMLResponse:
    return page(request, env, account.name)


@router.post("/app/columns")
async def change_columns(request: Request, env: Env, account: SignedIn):
    """The account's carried columns (comma-separated) and value column; empty clears one, a
    form without the value field keeps it."""
    async with small_form(request) as form:
        check_csrf(request, form.get("csrf"))
        typed = str(form.get("carry") or "")
        value = form.get("value")
    named = None if value is None else str(value)
    try:
        await run_in_threadpool(
            accounts.set_columns, env.engine, account.name, named, split_names(typed)
        )
    except accounts.AccountError as exc:
        return await run_in_threadpool(page, request, env, account.name, 422, error=str(exc))
    return RedirectResponse("/app/webhook", 303)


@router.post("/app/webhook")
async def change_webhook(request: Request, env: Env, account: SignedIn):
    form = {key: str(value) for key, value in (await request.form()).items()}
    check_csrf(request, form.get("csrf"))
    if form.get("action") == "remove":
        await run_in_threadpool(webhooks.remove_endpoint, env.engine, account.name)
        return RedirectResponse("/app/webhook", 303)
    try:
        made = await run_in_threadpool(set_webhook, env, account.name, form.get("url", ""))
    except DestinationRefused as exc:
        return await run_in_threadpool(page, request, env, account.name, 422, error=str(exc))
    return await run_in_threadpool(page, request, env, account.name, secret=made.secret)
