"""The warm runners' second scaling signal: score-upload runs waiting for a runner, in CloudWatch.

Application Auto Scaling tracks it beside the SQS backlog (deployments/cdk/services.py): a message
leaves the queue as soon as its flow run exists, so runs waiting for a free runner show only in
Prefect. `retainwise runner` calls `report_waiting_runs` about once a minute
(runtime.scaling_reporter).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from retainwise.config.settings import Settings

NAMESPACE = "RetainWise"
METRIC = "ScoreUploadRunsWaiting"
DIMENSION = "Deployment"


def waiting_runs(deployment_name: str, now: datetime) -> int:
    """Runs of `flow/deployment` that are due and not yet taken: Scheduled or Late, start <= now."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import (
        DeploymentFilter,
        DeploymentFilterName,
        FlowFilter,
        FlowFilterName,
        FlowRunFilter,
        FlowRunFilterExpectedStartTime,
        FlowRunFilterState,
        FlowRunFilterStateType,
    )
    from prefect.client.schemas.objects import StateType

    flow, deployment = deployment_name.split("/", 1)
    with get_client(sync_client=True) as client:
        return client.count_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=[flow])),
            deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment])),
            flow_run_filter=FlowRunFilter(
                state=FlowRunFilterState(type=FlowRunFilterStateType(any_=[StateType.SCHEDULED])),
                # pydantic validates the datetime into Prefect's DateTime
                expected_start_time=FlowRunFilterExpectedStartTime(before_=now),  # type: ignore[arg-type]
            ),
        )


def publish_waiting_runs(cloudwatch: Any, deployment_name: str, count: int, now: datetime) -> None:
    """One datapoint of RetainWise/ScoreUploadRunsWaiting, dimension Deployment=<deployment>."""
    cloudwatch.put_metric_data(
        Namespace=NAMESPACE,
        MetricData=[
            {
                "MetricName": METRIC,
                "Timestamp": now,
                "Value": float(count),
                "Unit": "Count",
                "Dimensions": [{"Name": DIMENSION, "Value": deployment_name.split("/", 1)[1]}],
            }
        ],
    )


def report_waiting_runs(settings: Settings, cloudwatch: Any, now: datetime) -> int:
    """Count the warm deployment's waiting runs and publish the count; returns it."""
    count = waiting_runs(settings.deployment_name, now)
    publish_waiting_runs(cloudwatch, settings.deployment_name, count, now)
    return count
