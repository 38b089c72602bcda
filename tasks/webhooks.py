"""Monitoring alerts to the customers' webhooks (docs/webhooks.md)."""

from __future__ import annotations

from typing import Any

from retainwise.adapters import webhooks
from tasks.retry import io_task


@io_task("notify-webhooks")
def notify_accounts(env, model: str, alerts: list[dict[str, Any]]) -> int:
    """`model.degraded` and `data.drifted` into the outbox of each account concerned; each at
    most once per account and model version (degraded) or upload (drifted)."""
    return sum(webhooks.enqueue_alert(env.engine, model, alert) for alert in alerts)
