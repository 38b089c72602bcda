"""prefect.yaml is what `prefect deploy --all` will read: check it loads and fits the ECS worker."""

import pytest
from prefect.flows import load_flow_from_entrypoint

from deployments.ecs import PREFECT_YAML, load_deployments

EXPECTED = {"score-upload", "train-model", "migrate", "reap-stale"}


@pytest.fixture(scope="module")
def deployments():
    import re

    names = set(re.findall(r"\{\{\s*\$(\w+)\s*\}\}", PREFECT_YAML.read_text()))
    return {d["name"]: d for d in load_deployments({n: f"value-of-{n}" for n in names})}


def test_the_four_deployments_point_at_flows_that_load(deployments):
    assert set(deployments) == EXPECTED
    for name, deployment in deployments.items():
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        assert flow.name == name  # the deployment is `<flow>/<flow>`, as the trigger and CLI expect


def test_job_variables_are_all_known_to_the_ecs_pool(deployments):
    """Every job variable is one the `ecs` pool's template declares (prefect-aws's plus `secrets`)."""
    from prefect_aws.workers.ecs_worker import ECSVariables

    from deployments.ecs import default_job_template

    known = set(default_job_template("ecs")["variables"]["properties"])
    for deployment in deployments.values():
        assert deployment["work_pool"]["name"] == "ecs"
        job = deployment["work_pool"]["job_variables"]
        assert set(job) <= known, set(job) - known
        ECSVariables(**{k: v for k, v in job.items() if k not in ("env", "secrets")}, env=job["env"])
        assert job["configure_cloudwatch_logs"] and job["execution_role_arn"]


def test_each_deployment_has_its_own_task_role(deployments):
    roles = {name: d["work_pool"]["job_variables"]["task_role_arn"] for name, d in deployments.items()}
    assert roles == {"score-upload": "value-of-RETAINWISE_SCORING_ROLE_ARN",
                     "train-model": "value-of-RETAINWISE_TRAINING_ROLE_ARN",
                     "migrate": "value-of-RETAINWISE_MIGRATE_ROLE_ARN",
                     "reap-stale": "value-of-RETAINWISE_REAPER_ROLE_ARN"}


def test_secrets_are_injected_by_ecs_never_through_env(deployments):
    """The review found no `secrets` block: a flow on ECS fell back to SQLite under /tmp."""
    for name, deployment in deployments.items():
        job = deployment["work_pool"]["job_variables"]
        assert job["secrets"] == [{"name": "RETAINWISE_DATABASE_SECRET",
                                   "valueFrom": "value-of-RETAINWISE_DATABASE_SECRET_ARN"}], name
        assert job["prefect_api_key_secret_arn"] == "value-of-RETAINWISE_PREFECT_API_KEY_SECRET_ARN"
        assert job["env"]["RETAINWISE_ENV"] == "production"  # a missing URL stops, never SQLite
        assert not [k for k in job["env"] if "SECRET" in k or "KEY" in k or k.endswith("DATABASE_URL")]


def test_only_the_reaper_runs_on_a_schedule(deployments):
    scheduled = {n for n, d in deployments.items() if d.get("schedules")}
    assert scheduled == {"reap-stale"}


def test_a_missing_environment_variable_is_named():
    with pytest.raises(KeyError, match="RETAINWISE_IMAGE"):
        load_deployments({})


def test_the_local_runner_serves_the_same_deployments():
    import ast
    from pathlib import Path

    source = (Path(__file__).resolve().parents[2] / "retainwise" / "runtime" / "serve.py").read_text()
    served = {kw.value.value for node in ast.walk(ast.parse(source))
              if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "to_deployment"
              for kw in node.keywords if kw.arg == "name"}
    assert served == EXPECTED
