"""An account's webhook from outside: `retainwise account webhook set/show/remove` for operators
and `PUT/GET/DELETE /account/webhook` for customers, scoped by the bearer key's account.

The signing secret is returned once, when the URL is set; setting it again makes a new one.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Response
from pydantic import BaseModel, Field

from retainwise.adapters import webhooks
from retainwise.adapters.resources import Resources
from retainwise.entrypoints.api import errors
from retainwise.entrypoints.deps import CurrentAccount, Env
from retainwise.runtime.webhooks import DestinationRefused, acceptable

SHOWN_DELIVERIES = 50


class WebhookIn(BaseModel):
    url: str = Field(max_length=2048, description="where events are POSTed; https in production")


class WebhookSet(BaseModel):
    account: str
    url: str
    secret: str = Field(description="`whsec_...`: verify signatures with it; shown only now")


class Attempt(BaseModel):
    event_id: str
    type: str
    subject: str = Field(description="the upload's id; for model.degraded, model/vN")
    url: str
    attempted_at: datetime
    status_code: int | None
    error: str | None
    duration_ms: int


class Webhook(BaseModel):
    account: str
    url: str
    created_at: datetime
    deliveries: list[Attempt] = Field(description="the last 50 attempts, newest first")


def set_webhook(resources: Resources, account: str, url: str) -> WebhookSet:
    """Raises DestinationRefused for a URL the deliverer would not send to."""
    acceptable(url, resources.settings.env == "production")
    box = webhooks.secret_box(resources.settings)
    secret = webhooks.set_endpoint(resources.engine, account, url, box)
    return WebhookSet(account=account, url=url, secret=secret)


def show_webhook(resources: Resources, account: str) -> Webhook | None:
    endpoint = webhooks.get_endpoint(resources.engine, account)
    if endpoint is None:
        return None
    attempts = webhooks.deliveries(resources.engine, account, SHOWN_DELIVERIES)
    return Webhook(
        account=account,
        url=endpoint.url,
        created_at=endpoint.created_at,
        deliveries=[Attempt(**asdict(a)) for a in attempts],
    )


def command(resources: Resources, action: str, account: str, url: str | None) -> dict[str, Any]:
    """What `retainwise account webhook ACTION` prints; LookupError or ValueError to refuse."""
    if action == "set":
        return set_webhook(resources, account, url or "").model_dump()
    if action == "show":
        shown = show_webhook(resources, account)
        if shown is None:
            raise LookupError(f"account {account} has no webhook")
        return shown.model_dump(mode="json")
    if not webhooks.remove_endpoint(resources.engine, account):
        raise LookupError(f"account {account} has no webhook")
    return {"account": account, "removed": True}


router = APIRouter(prefix="/account/webhook", tags=["webhooks"])


@router.put("", response_model=WebhookSet, responses=errors(422))
def put_webhook(body: WebhookIn, env: Env, account: CurrentAccount) -> WebhookSet:
    """Send this account's events (`upload.completed`, `upload.failed`, `model.degraded`,
    `data.drifted`) to `url`, signed to the Standard Webhooks spec with the returned secret,
    which replaces any earlier one."""
    try:
        return set_webhook(env, account.name, body.url)
    except DestinationRefused as exc:
        raise HTTPException(422, str(exc)) from None


@router.get("", response_model=Webhook, responses=errors(404))
def get_webhook(env: Env, account: CurrentAccount) -> Webhook:
    """The URL and the last 50 delivery attempts with their response codes."""
    shown = show_webhook(env, account.name)
    if shown is None:
        raise HTTPException(404, "no webhook is set for this account")
    return shown


@router.delete("", status_code=204, responses=errors(404))
def delete_webhook(env: Env, account: CurrentAccount) -> Response:
    """No more events; undelivered ones are dropped."""
    if not webhooks.remove_endpoint(env.engine, account.name):
        raise HTTPException(404, "no webhook is set for this account")
    return Response(status_code=204)
