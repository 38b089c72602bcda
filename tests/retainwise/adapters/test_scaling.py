"""The runners' scaling signal, counted on a real Prefect API and published to moto's CloudWatch."""

import uuid
from datetime import UTC, datetime, timedelta

from retainwise.adapters import aws, scaling
from retainwise.config.settings import Settings


def make_runs(deployment: str, now: datetime) -> None:
    """Two due (one of them late), one scheduled for later, one already running."""
    from prefect.client.orchestration import get_client
    from prefect.states import Running, Scheduled

    flow, name = deployment.split("/")
    with get_client(sync_client=True) as client:
        deployment_id = client.create_deployment(
            flow_id=client.create_flow_from_name(flow), name=name, entrypoint="flows/x.py:x"
        )
        for start in (now - timedelta(minutes=10), now, now + timedelta(hours=1), now):
            run = client.create_flow_run_from_deployment(
                deployment_id, state=Scheduled(scheduled_time=start - timedelta(seconds=1))
            )
        client.set_flow_run_state(run.id, Running(), force=True)


def test_due_runs_of_the_deployment_are_counted_and_others_are_not(prefect_api):
    now = datetime.now(UTC)
    mine, other = (f"score-{uuid.uuid4().hex[:8]}/score-upload" for _ in range(2))
    make_runs(mine, now)
    make_runs(other, now)
    assert scaling.waiting_runs(mine, now) == 2
    assert scaling.waiting_runs(mine, now + timedelta(hours=2)) == 3  # the later one fell due
    assert scaling.waiting_runs(f"score-{uuid.uuid4().hex[:8]}/score-upload", now) == 0


def test_the_count_reaches_cloudwatch_under_the_name_the_stack_scales_on(
    prefect_api, stack_env, monkeypatch
):
    now = datetime.now(UTC).replace(microsecond=0)
    deployment = f"score-{uuid.uuid4().hex[:8]}/score-upload"
    make_runs(deployment, now)
    monkeypatch.setenv("RETAINWISE_DEPLOYMENT_NAME", deployment)
    settings = Settings()
    cloudwatch = aws.client("cloudwatch", settings)
    assert scaling.report_waiting_runs(settings, cloudwatch, now) == 2
    dimensions = [{"Name": "Deployment", "Value": "score-upload"}]
    stats = cloudwatch.get_metric_statistics(
        Namespace="RetainWise",
        MetricName="ScoreUploadRunsWaiting",
        Dimensions=dimensions,
        StartTime=now - timedelta(minutes=1),
        EndTime=now + timedelta(minutes=1),
        Period=60,
        Statistics=["Maximum"],
    )
    assert [point["Maximum"] for point in stats["Datapoints"]] == [2.0]
