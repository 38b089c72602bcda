"""The `ecs` work pool, with ECS itself mocked: moto in server mode stands in for ECS/EC2.

prefect-aws's ECSWorker turns prefect.yaml's job variables into a task definition and a RunTask
request against moto; moto emits no ECS state events, so the test feeds PROVISIONING -> PENDING ->
RUNNING -> STOPPED to prefect-aws's observer handlers itself, as EventBridge would in AWS.
"""

import asyncio
import re
import threading
import uuid
from datetime import UTC, datetime

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import WorkPoolCreate
from prefect.states import Running

from deployments.ecs import default_job_template
from retainwise.adapters import aws
from retainwise.entrypoints import follow
from tests.deployments.prefect_yaml import load_deployments
from tests.helpers import wait_for


@pytest.fixture
def mocked_ecs_network(stack_env):
    """A VPC with two subnets, a security group and a cluster on the moto server."""
    ec2, ecs = aws.client("ec2", stack_env), aws.client("ecs", stack_env)
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    ec2.modify_vpc_attribute(VpcId=vpc, EnableDnsHostnames={"Value": True})
    subnets = [
        ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/24")["Subnet"]["SubnetId"]
        for i in (1, 2)
    ]
    group = ec2.create_security_group(
        GroupName=f"flows-{uuid.uuid4().hex[:6]}", Description="flows", VpcId=vpc
    )["GroupId"]
    cluster = ecs.create_cluster(clusterName=f"retainwise-{uuid.uuid4().hex[:6]}")["cluster"]
    return {
        "vpc": vpc,
        "subnets": subnets,
        "group": group,
        "cluster": cluster["clusterName"],
        "ecs": ecs,
    }


DATABASE_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:retainwise-db-AbCdEf"
APP_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:retainwise-app-AbCdEf"
PREFECT_KEY_SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:prefect-key-AbCdEf"


def prefect_yaml_environment(net, settings) -> dict[str, str]:
    return {
        "RETAINWISE_IMAGE": "123456789012.dkr.ecr.us-east-1.amazonaws.com/retainwise:abc123",
        "RETAINWISE_ECS_CLUSTER": net["cluster"],
        "RETAINWISE_ECS_EXECUTION_ROLE_ARN": "arn:aws:iam::123456789012:role/retainwise-exec",
        "RETAINWISE_MIGRATE_EXECUTION_ROLE_ARN": (
            "arn:aws:iam::123456789012:role/retainwise-migrate-exec"
        ),
        "RETAINWISE_SCORING_ROLE_ARN": "arn:aws:iam::123456789012:role/retainwise-scoring",
        "RETAINWISE_TRAINING_ROLE_ARN": "arn:aws:iam::123456789012:role/retainwise-training",
        "RETAINWISE_MONITOR_ROLE_ARN": "arn:aws:iam::123456789012:role/retainwise-monitor",
        "RETAINWISE_MIGRATE_ROLE_ARN": "arn:aws:iam::123456789012:role/retainwise-migrate",
        "RETAINWISE_DATABASE_SECRET_ARN": DATABASE_SECRET_ARN,
        "RETAINWISE_APP_DATABASE_SECRET_ARN": APP_SECRET_ARN,
        "RETAINWISE_API_DATABASE_SECRET_ARN": APP_SECRET_ARN.replace("app", "api"),
        "RETAINWISE_PREFECT_API_KEY_SECRET_ARN": PREFECT_KEY_SECRET_ARN,
        "RETAINWISE_VPC_ID": net["vpc"],
        "RETAINWISE_SUBNET_A": net["subnets"][0],
        "RETAINWISE_SUBNET_B": net["subnets"][1],
        "RETAINWISE_SECURITY_GROUP": net["group"],
        "RETAINWISE_LOG_GROUP": "/retainwise/flows",
        "AWS_DEFAULT_REGION": "us-east-1",
        "RETAINWISE_BUCKET": settings.bucket,
        "RETAINWISE_QUEUE_NAME": settings.queue_name,
        "RETAINWISE_DEAD_LETTER_QUEUE_NAME": settings.dead_letter_queue_name,
        "RETAINWISE_MLFLOW_ARTIFACT_ROOT": "s3://retainwise-models/mlartifacts",
    }


def submit_migrate_run_to_ecs_worker(job_variables) -> tuple[str, str]:
    """Pool + deployment + flow run on the real Prefect API, then one poll of an ECSWorker."""
    from prefect_aws.workers import ECSWorker

    pool = f"ecs-mocked-{uuid.uuid4().hex[:6]}"
    with get_client(sync_client=True) as client:
        client.create_work_pool(
            WorkPoolCreate(name=pool, type="ecs", base_job_template=default_job_template("ecs"))
        )
        flow_id = client.create_flow_from_name("migrate")
        deployment_id = client.create_deployment(
            flow_id=flow_id,
            name=pool,
            work_pool_name=pool,
            job_variables=job_variables,
            entrypoint="flows/migrate.py:migrate",
        )
        run = client.create_flow_run_from_deployment(deployment_id, parameters={})

    async def one_poll():
        async with ECSWorker(work_pool_name=pool) as worker:
            await worker.sync_with_backend()
            await worker.get_and_submit_flow_runs()
            for _ in range(100):  # submission happens in the worker's task group
                if worker._submitting_flow_run_ids == set():
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the ECS worker was still submitting the run after 10 s")

    # the production worker has PREFECT_API_KEY (from its own ECS secret); with the job's
    # prefect_api_key_secret_arn set, prefect-aws 0.7.12 deletes the key from the flow's env
    # and fails with KeyError when the worker has none, so the worker here gets one too
    from prefect.settings import PREFECT_API_KEY, temporary_settings

    with temporary_settings({PREFECT_API_KEY: "pnu_worker_key"}):
        asyncio.run(one_poll())
    return pool, str(run.id)


def ecs_event(status: str, task: dict, exit_code: int | None = None) -> dict:
    detail = {
        "taskArn": task["taskArn"],
        "clusterArn": task["clusterArn"],
        "taskDefinitionArn": task["taskDefinitionArn"],
        "lastStatus": status,
    }
    if status == "STOPPED":
        detail.update(
            stopCode="EssentialContainerExited",
            stoppedReason="Essential container exited",
            containers=[{"name": "prefect", "exitCode": exit_code, "lastStatus": "STOPPED"}],
        )
    return {
        "id": str(uuid.uuid4()),
        "detail-type": "ECS Task State Change",
        "time": datetime.now(UTC).isoformat(),
        "detail": detail,
    }


def test_mocked_ecs_job_renders_a_valid_run_task_and_the_follower_sees_every_state(
    prefect_api, stack_env, mocked_ecs_network
):
    from prefect_aws.observers.ecs import mark_runs_as_crashed, replicate_ecs_event

    net = mocked_ecs_network
    [migrate] = [
        d
        for d in load_deployments(prefect_yaml_environment(net, stack_env))
        if d["name"] == "migrate"
    ]
    pool, flow_run_id = submit_migrate_run_to_ecs_worker(migrate["work_pool"]["job_variables"])

    # what moto received is a RunTask request AWS would accept: check what ECS would run
    ecs = net["ecs"]
    [task_arn] = ecs.list_tasks(cluster=net["cluster"])["taskArns"]
    [task] = ecs.describe_tasks(cluster=net["cluster"], tasks=[task_arn], include=["TAGS"])["tasks"]
    tags = {t["key"]: t["value"] for t in task.get("tags", [])}
    assert tags["prefect.io/flow-run-id"] == flow_run_id
    assert task["launchType"] == "FARGATE"
    definition = ecs.describe_task_definition(taskDefinition=task["taskDefinitionArn"])[
        "taskDefinition"
    ]
    [container] = definition["containerDefinitions"]
    assert container["image"].endswith("/retainwise:abc123")
    assert (definition["cpu"], definition["memory"]) == ("1024", "2048")
    assert definition["executionRoleArn"].endswith("role/retainwise-migrate-exec")
    assert definition["networkMode"] == "awsvpc"
    assert container["logConfiguration"]["options"]["awslogs-group"] == "/retainwise/flows"
    # the database logins and the Prefect key reach the flow as ECS secrets, not as environment;
    # migrate connects as the owner and sets up the app and API users' roles
    assert sorted((s["name"], s["valueFrom"]) for s in container["secrets"]) == [
        ("PREFECT_API_KEY", PREFECT_KEY_SECRET_ARN),
        ("RETAINWISE_DATABASE_API_SECRET", APP_SECRET_ARN.replace("app", "api")),
        ("RETAINWISE_DATABASE_APP_SECRET", APP_SECRET_ARN),
        ("RETAINWISE_DATABASE_SECRET", DATABASE_SECRET_ARN),
    ]
    overrides = task["overrides"]
    assert overrides["taskRoleArn"].endswith("role/retainwise-migrate")
    [override] = overrides["containerOverrides"]
    env = {e["name"]: e["value"] for e in override["environment"]}
    assert env["PREFECT__FLOW_RUN_ID"] == flow_run_id
    assert env["RETAINWISE_BUCKET"] == stack_env.bucket
    assert env["RETAINWISE_ENV"] == "production" and "PREFECT_API_KEY" not in env

    # ECS state changes, fed by hand; the follower must treat provisioning as normal
    seen: list[str] = []
    result = {}
    watcher = threading.Thread(
        target=lambda: result.update(
            outcome=follow.follow(flow_run_id, timeout=60, say=seen.append, poll_seconds=0.1)
        )
    )
    watcher.start()
    asyncio.run(replicate_ecs_event(ecs_event("PROVISIONING", task), tags))
    wait_for(lambda: "ECS task is provisioning" in "\n".join(seen), 30, "the follower to say so")
    asyncio.run(replicate_ecs_event(ecs_event("PENDING", task), tags))
    with get_client(sync_client=True) as client:  # the flow engine inside the container starts
        client.set_flow_run_state(uuid.UUID(flow_run_id), Running(), force=True)
    asyncio.run(replicate_ecs_event(ecs_event("RUNNING", task), tags))
    wait_for(lambda: seen and "] RUNNING" in seen[-1], 30, "the follower to see RUNNING")
    asyncio.run(mark_runs_as_crashed(ecs_event("STOPPED", task, exit_code=137), tags))
    watcher.join(30)

    outcome = result["outcome"]
    assert (outcome.exit_code, outcome.state) == (follow.EXIT_FAILED, "CRASHED")
    joined = "\n".join(seen)
    assert "InfrastructurePending" in joined and "ECS task is provisioning" in joined
    assert [re.search(r"\] (\w+)", line).group(1) for line in seen][-2:] == ["RUNNING", "CRASHED"]
    assert "non-zero exit code" in seen[-1]
