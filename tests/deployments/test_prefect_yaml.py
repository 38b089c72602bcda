"""prefect.yaml is what `prefect deploy --all` will read: check it loads and fits the ECS worker."""

import pytest
from prefect.flows import load_flow_from_entrypoint

from flows.deployments import DEPLOYMENTS
from retainwise.runtime import serve
from tests.deployments.prefect_yaml import load_deployments, placeholders

EXPECTED = {"score-upload-large", "train-model", "migrate"}  # on the ecs pool
WARM = {"score-upload", "reap-stale"}  # served by `retainwise runner`


@pytest.fixture(scope="module")
def deployments():
    return {d["name"]: d for d in load_deployments({n: f"value-of-{n}" for n in placeholders()})}


def test_the_ecs_deployments_point_at_flows_that_load(deployments):
    from retainwise.config.settings import Settings

    assert set(deployments) == EXPECTED
    full_names = {f"{load_flow_from_entrypoint(d['entrypoint']).name}/{name}"
                  for name, d in deployments.items()}
    # the names the trigger and the CLI use
    assert full_names == {Settings().large_deployment_name, "train-model/train-model",
                          "migrate/migrate"}


def test_job_variables_are_all_known_to_the_ecs_worker(deployments):
    from prefect_aws.workers.ecs_worker import ECSVariables

    known = set(ECSVariables.model_fields)
    for deployment in deployments.values():
        assert deployment["work_pool"]["name"] == "ecs"
        job = deployment["work_pool"]["job_variables"]
        assert set(job) <= known, set(job) - known
        ECSVariables(**{k: v for k, v in job.items() if k != "env"}, env=job["env"])
        assert job["configure_cloudwatch_logs"] and job["execution_role_arn"]


def test_nothing_on_the_ecs_pool_runs_on_a_schedule(deployments):
    assert not any(d.get("schedules") for d in deployments.values())  # the runner's reaper does


def test_a_missing_environment_variable_is_named():
    with pytest.raises(KeyError, match="RETAINWISE_IMAGE"):
        load_deployments({})


def test_prefect_yaml_matches_the_one_definition_of_the_deployments(deployments):
    defined = {d.name: d for d in DEPLOYMENTS if not d.warm}
    assert set(defined) == EXPECTED == set(deployments)
    assert {d.name for d in DEPLOYMENTS if d.warm} == WARM
    for name, deployment in deployments.items():
        definition = defined[name]
        assert deployment["entrypoint"] == definition.entrypoint
        assert tuple(deployment["tags"]) == definition.tags
        assert deployment["description"] == definition.description
        intervals = [s["interval"] for s in deployment.get("schedules") or []]
        assert intervals == ([definition.interval_seconds] if definition.interval_seconds else [])


def test_the_local_runner_serves_every_deployment_and_the_production_runner_the_warm_ones():
    served = serve.deployments()
    assert [(flow.name, d.name) for flow, d in served] == [
        (d.name.removesuffix("-large"), d.name) for d in DEPLOYMENTS]
    assert {d.name for _, d in serve.deployments(list(serve.RUNNER_DEPLOYMENTS))} == WARM
    by_name = {d.name: d for _, d in served}
    assert by_name["reap-stale"].schedules[0].schedule.interval.total_seconds() == 300
    assert by_name["score-upload"].tags == ["scoring"] and not by_name["score-upload"].schedules


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


def test_the_deployment_guide_gives_the_queue_the_visibility_timeout_the_code_uses():
    from pathlib import Path

    from retainwise.adapters.aws import VISIBILITY_TIMEOUT_SECONDS
    from retainwise.config.settings import Settings

    guide = (Path(__file__).resolve().parents[2] / "deployments" / "README.md").read_text()
    stated = f"`VisibilityTimeout={VISIBILITY_TIMEOUT_SECONDS}`"
    assert stated in guide and "VisibilityTimeout=" not in guide.replace(stated, "")
    # the trigger gives up on a busy Prefect API before the message could be received again
    assert Settings().trigger_create_timeout < VISIBILITY_TIMEOUT_SECONDS
