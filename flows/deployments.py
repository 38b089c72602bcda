"""The deployments, defined once: the local runner serves all of them, `retainwise runner` the
`warm` ones (score-upload, reap-stale), and prefect.yaml must match the others (the ecs pool).

prefect.yaml adds what only the ECS pool needs (work pool, task size, concurrency limits);
tests/deployments/test_prefect_yaml.py fails when its name, entrypoint, tags, description or
schedule differ from the definitions here.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DeploymentDefinition:
    name: str  # the deployment is `<flow name>/<name>`; the flow's name but for score-upload-large
    entrypoint: str  # `path.py:function`, as prefect.yaml writes it
    tags: tuple[str, ...]
    description: str
    interval_seconds: int | None = None  # run on this schedule; None: only when asked
    triggers: Callable[[], list] | None = None  # automations that start it (built lazily)
    warm: bool = False  # served by the warm runner service, not the ecs work pool

    def flow(self) -> Any:
        path, function = self.entrypoint.split(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        return getattr(module, function)

    def to_deployment(self) -> Any:
        return self.flow().to_deployment(
            name=self.name,
            tags=list(self.tags),
            description=self.description,
            interval=self.interval_seconds,
            triggers=self.triggers() if self.triggers else None,
        )


def retrain_when_degraded() -> list:
    """The retraining loop: `retainwise.model.degraded` (from the monitor flow) runs train-model
    on that model's pooled labelled outcomes; the result is only a challenger."""
    from prefect.events import DeploymentEventTrigger

    model = "{{ event.resource['retainwise.model'] }}"
    return [
        DeploymentEventTrigger(
            match={"prefect.resource.id": "retainwise.model.*"},
            expect={"retainwise.model.degraded"},
            parameters={"name": model, "outcomes_of": model},
        )
    ]


DEPLOYMENTS = (
    DeploymentDefinition(
        "score-upload",
        "flows/score_upload.py:score_upload",
        ("scoring",),
        "One run per uploaded file; started by the SQS trigger, never on a schedule.",
        warm=True,
    ),
    DeploymentDefinition(
        "score-upload-large",
        "flows/score_upload.py:score_upload",
        ("scoring",),
        "One run per file above the chunked threshold, in its own Fargate task; the SQS trigger "
        "routes here by the object's size.",
    ),
    DeploymentDefinition(
        "train-model",
        "flows/train_model.py:train_model",
        ("training",),
        "Fit a churn model on a labeled CSV and register it as the challenger.",
        triggers=retrain_when_degraded,
    ),
    DeploymentDefinition(
        "migrate",
        "flows/migrate.py:migrate",
        ("ops",),
        "alembic upgrade; CI runs it with `retainwise migrate --deployment` before deploying.",
    ),
    DeploymentDefinition(
        "reap-stale",
        "flows/reap_stale.py:reap_stale",
        ("ops",),
        "Hands uploads whose run died back to the queue, or fails them with a reason.",
        interval_seconds=300,
        warm=True,
    ),
    DeploymentDefinition(
        "monitor",
        "flows/monitor.py:monitor",
        ("monitoring",),
        "Estimated and realised performance and drift per model version; emits "
        "retainwise.model.degraded and retainwise.data.drifted.",
        interval_seconds=3600,
    ),
)
