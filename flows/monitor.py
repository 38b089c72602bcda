"""monitor: a model's figures over time, published as Prefect artifacts, and alerts as events.

Runs on a schedule and after every outcomes upload. `retainwise.model.degraded` starts the
train-model deployment on the pooled labelled outcomes (an automation; see prefect.yaml), whose
result is a challenger that still needs the promotion gate.
"""

from __future__ import annotations

from typing import TypedDict

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from retainwise.adapters.resources import Resources
from retainwise.modelops.monitoring import Alert, ModelFigures, auc_chart, version_table
from retainwise.modelops.outcomes import gate_retraining
from tasks.monitoring import monitor_figures
from tasks.webhooks import notify_accounts


class MonitorRun(TypedDict):
    """The flow run's result (stored by Prefect as JSON): the alerts as emitted."""

    model: str
    uploads: int
    alerts: list[dict[str, object]]


@flow(name="monitor", flow_run_name="monitor-{name}")
def monitor(name: str = "churn", account: str | None = None) -> MonitorRun:
    env = Resources.of_process()
    logger = get_run_logger()
    figures: ModelFigures = monitor_figures(env, name, account)
    notify_accounts(env, name, [a.to_json() for a in figures.alerts])  # the accounts' webhooks
    publish(name, figures)
    alerts = gate_retraining(figures)  # one account's outcomes alone retrain nothing
    for alert in alerts:
        emit_alert(name, alert)
        logger.warning(
            "%s on %s v%s: %s",
            alert.event.value,
            name,
            alert.model_version,
            alert.reasons or alert.columns or None,
        )
    return {
        "model": name,
        "uploads": len(figures.uploads),
        "alerts": [a.to_json() for a in alerts],
    }


def publish(name: str, figures: ModelFigures) -> None:
    """A table (one row per upload) and a text chart of estimated vs realised AUC per version."""
    for version, rows in version_table(figures).items():
        key = f"monitor-{name}-v{version}".lower().replace("_", "-")[:60]
        table = [row.to_json() for row in rows]
        create_table_artifact(table, key=key, description=f"{name} v{version}: per upload")
        create_markdown_artifact(
            auc_chart(name, version, rows),
            key=f"{key}-chart",
            description=f"{name} v{version}: estimated vs realised ROC AUC",
        )


def emit_alert(name: str, alert: Alert) -> None:
    """The event the train-model automation listens to; the resource names model and version."""
    emit_event(
        event=alert.event.value,
        resource={
            "prefect.resource.id": f"retainwise.model.{name}",
            "retainwise.model": name,
            "retainwise.model.version": str(alert.model_version),
        },
        payload=alert.to_json(),
    )
