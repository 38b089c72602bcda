"""prefect.yaml is what `prefect deploy --all` will read: check it loads and fits the ECS worker."""

import pytest
from prefect.flows import load_flow_from_entrypoint

from deployments.ecs import PREFECT_YAML, load_deployments

EXPECTED = {"score-upload", "train-model", "migrate", "reap-stale", "monitor"}


@pytest.fixture(scope="module")
def deployments():
    import re

    names = set(re.findall(r"\{\{\s*\$(\w+)\s*\}\}", PREFECT_YAML.read_text()))
    return {d["name"]: d for d in load_deployments({n: f"value-of-{n}" for n in names})}


def test_the_deployments_point_at_flows_that_load(deployments):
    assert set(deployments) == EXPECTED
    for name, deployment in deployments.items():
        flow = load_flow_from_entrypoint(deployment["entrypoint"])
        assert flow.name == name  # the deployment is `<flow>/<flow>`, as the trigger and CLI expect


def test_job_variables_are_all_known_to_the_ecs_worker(deployments):
    from prefect_aws.workers.ecs_worker import ECSVariables

    known = set(ECSVariables.model_fields)
    for deployment in deployments.values():
        assert deployment["work_pool"]["name"] == "ecs"
        job = deployment["work_pool"]["job_variables"]
        assert set(job) <= known, set(job) - known
        ECSVariables(**{k: v for k, v in job.items() if k != "env"}, env=job["env"])
        assert job["configure_cloudwatch_logs"] and job["execution_role_arn"]


def test_only_the_reaper_and_the_monitor_run_on_a_schedule(deployments):
    scheduled = {n for n, d in deployments.items() if d.get("schedules")}
    assert scheduled == {"reap-stale", "monitor"}


def test_degraded_retrains_on_outcomes_here_and_in_the_local_runner(deployments):
    from retainwise.runtime.serve import retrain_when_degraded

    (declared,) = deployments["train-model"]["triggers"]
    (served,) = retrain_when_degraded()
    assert declared["expect"] == ["retainwise.model.degraded"] == sorted(served.expect)
    assert declared["match"] == {"prefect.resource.id": "retainwise.model.*"}
    assert declared["parameters"] == served.parameters
    assert "outcomes_of" in declared["parameters"]


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


def test_the_deploy_workflow_migrates_by_deployment_before_it_deploys():
    from pathlib import Path

    import yaml

    workflow = yaml.safe_load((Path(__file__).resolve().parents[2] / ".github" / "workflows"
                               / "deploy.yml").read_text())
    jobs = workflow["jobs"]
    assert jobs["migrate"]["needs"] == "build" and "migrate" in jobs["deploy"]["needs"]
    migrate_steps = " ".join(step.get("run", "") for step in jobs["migrate"]["steps"])
    assert "retainwise migrate --deployment --timeout 600" in migrate_steps
    deploy_steps = " ".join(step.get("run", "") for step in jobs["deploy"]["steps"])
    assert "prefect --no-prompt deploy --all" in deploy_steps
