"""monitor: a model's figures over time, published as Prefect artifacts, and alerts as events.

Runs on a schedule and after every outcomes upload. `retainwise.model.degraded` starts the
train-model deployment on the pooled labelled outcomes (an automation; see prefect.yaml), whose
result is a challenger that still needs the promotion gate.
"""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from retainwise.adapters.resources import Resources
from retainwise.modelops.monitoring import auc_chart, version_table
from retainwise.modelops.outcomes import gate_retraining
from tasks.monitoring import monitor_figures
from tasks.webhooks import notify_accounts


@flow(name="monitor", flow_run_name="monitor-{name}")
def monitor(name: str = "churn", account: str | None = None) -> dict[str, Any]:
    env = Resources.of_process()
    logger = get_run_logger()
    figures = monitor_figures(env, name, account)
    notify_accounts(env, name, figures["alerts"])  # the accounts' webhooks
    publish(name, figures)
    alerts = gate_retraining(figures)  # one account's outcomes alone retrain nothing
    for alert in alerts:
        emit_alert(name, alert)
        logger.warning(
            "%s on %s v%s: %s",
            alert["event"],
            name,
            alert["model_version"],
            alert.get("reasons") or alert.get("columns"),
        )
    return {"model": name, "uploads": len(figures["uploads"]), "alerts": alerts}


def publish(name: str, figures: dict[str, Any]) -> None:
    """A table (one row per upload) and a text chart of estimated vs realised AUC per version."""
    for version, rows in version_table(figures).items():
        key = f"monitor-{name}-v{version}".lower().replace("_", "-")[:60]
        create_table_artifact(rows, key=key, description=f"{name} v{version}: per upload")
        create_markdown_artifact(
            auc_chart(name, version, rows),
            key=f"{key}-chart",
            description=f"{name} v{version}: estimated vs realised ROC AUC",
        )


def emit_alert(name: str, alert: dict[str, Any]) -> None:
    """The event the train-model automation listens to; the resource names model and version."""
    emit_event(
        event=alert["event"],
        resource={
            "prefect.resource.id": f"retainwise.model.{name}",
            "retainwise.model": name,
            "retainwise.model.version": str(alert["model_version"]),
        },
        payload=alert,
    )
