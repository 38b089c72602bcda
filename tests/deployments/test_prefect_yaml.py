"""prefect.yaml is what `prefect deploy --all` will read: check it loads and fits the ECS worker."""

import pytest

# before loading flows/ entrypoints (the tests below import them), which put flows/deployments.py
# on the path as `deployments`
from deployments.ecs import default_job_template
from tests.deployments.prefect_yaml import load_deployments, placeholders

EXPECTED = {"score-upload-large", "train-model", "migrate", "monitor"}  # on the ecs pool
WARM = {"score-upload", "reap-stale"}  # served by `retainwise runner`


@pytest.fixture(scope="module")
def deployments():
    return {d["name"]: d for d in load_deployments({n: f"value-of-{n}" for n in placeholders()})}


def test_the_ecs_deployments_point_at_flows_that_load(deployments):
    from prefect.flows import load_flow_from_entrypoint

    from retainwise.config.settings import Settings

    assert set(deployments) == EXPECTED
    full_names = {
        f"{load_flow_from_entrypoint(d['entrypoint']).name}/{name}"
        for name, d in deployments.items()
    }
    # the names the trigger and the CLI use
    assert full_names == {
        Settings().large_deployment_name,
        "train-model/train-model",
        "migrate/migrate",
        "monitor/monitor",
    }


def test_job_variables_are_all_known_to_the_ecs_pool(deployments):
    """Every job variable is one the `ecs` pool's template declares (prefect-aws's plus
    `secrets`)."""
    from prefect_aws.workers.ecs_worker import ECSVariables

    known = set(default_job_template("ecs")["variables"]["properties"])
    for deployment in deployments.values():
        assert deployment["work_pool"]["name"] == "ecs"
        job = deployment["work_pool"]["job_variables"]
        assert set(job) <= known, set(job) - known
        ECSVariables(
            **{k: v for k, v in job.items() if k not in ("env", "secrets")}, env=job["env"]
        )
        assert job["configure_cloudwatch_logs"] and job["execution_role_arn"]


def test_each_deployment_has_its_own_task_role(deployments):
    roles = {
        name: d["work_pool"]["job_variables"]["task_role_arn"] for name, d in deployments.items()
    }
    assert roles == {
        "score-upload-large": "value-of-RETAINWISE_SCORING_ROLE_ARN",
        "train-model": "value-of-RETAINWISE_TRAINING_ROLE_ARN",
        "migrate": "value-of-RETAINWISE_MIGRATE_ROLE_ARN",
        "monitor": "value-of-RETAINWISE_MONITOR_ROLE_ARN",
    }


def test_only_migrate_starts_with_the_execution_role_that_reads_the_owner_secret(deployments):
    roles = {
        name: d["work_pool"]["job_variables"]["execution_role_arn"]
        for name, d in deployments.items()
    }
    assert roles.pop("migrate") == "value-of-RETAINWISE_MIGRATE_EXECUTION_ROLE_ARN"
    assert set(roles.values()) == {"value-of-RETAINWISE_ECS_EXECUTION_ROLE_ARN"}


def test_secrets_are_injected_by_ecs_never_through_env(deployments):
    """The review found no `secrets` block: a flow on ECS fell back to SQLite under /tmp."""
    for name, deployment in deployments.items():
        job = deployment["work_pool"]["job_variables"]
        injected = {s["name"]: s["valueFrom"] for s in job["secrets"]}
        # only migrate connects as the owner (DDL), and sets the app and API users' roles up
        assert injected == (
            {
                "RETAINWISE_DATABASE_SECRET": "value-of-RETAINWISE_DATABASE_SECRET_ARN",
                "RETAINWISE_DATABASE_APP_SECRET": "value-of-RETAINWISE_APP_DATABASE_SECRET_ARN",
                "RETAINWISE_DATABASE_API_SECRET": "value-of-RETAINWISE_API_DATABASE_SECRET_ARN",
            }
            if name == "migrate"
            else {"RETAINWISE_DATABASE_SECRET": "value-of-RETAINWISE_APP_DATABASE_SECRET_ARN"}
        ), name
        assert job["prefect_api_key_secret_arn"] == "value-of-RETAINWISE_PREFECT_API_KEY_SECRET_ARN"
        assert job["env"]["RETAINWISE_ENV"] == "production"  # a missing URL stops, never SQLite
        assert not [
            k for k in job["env"] if "SECRET" in k or "KEY" in k or k.endswith("DATABASE_URL")
        ]


def test_only_the_monitor_runs_on_a_schedule_on_the_ecs_pool(deployments):
    scheduled = {n for n, d in deployments.items() if d.get("schedules")}
    assert scheduled == {"monitor"}  # reap-stale's schedule is served by the warm runner


def test_degraded_retrains_on_outcomes_here_and_in_the_local_runner(deployments):
    from flows.deployments import retrain_when_degraded

    (declared,) = deployments["train-model"]["triggers"]
    (served,) = retrain_when_degraded()
    assert declared["expect"] == ["retainwise.model.degraded"] == sorted(served.expect)
    assert declared["match"] == {"prefect.resource.id": "retainwise.model.*"}
    assert declared["parameters"] == served.parameters
    assert "outcomes_of" in declared["parameters"]


def test_a_missing_environment_variable_is_named():
    with pytest.raises(KeyError, match="RETAINWISE_IMAGE"):
        load_deployments({})


def test_prefect_yaml_matches_the_one_definition_of_the_deployments(deployments):
    from flows.deployments import DEPLOYMENTS

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
    from flows.deployments import DEPLOYMENTS
    from retainwise.runtime import serve

    served = serve.deployments()
    assert [(flow.name, d.name) for flow, d in served] == [
        (d.name.removesuffix("-large"), d.name) for d in DEPLOYMENTS
    ]
    assert {d.name for _, d in serve.deployments(list(serve.RUNNER_DEPLOYMENTS))} == WARM
    by_name = {d.name: d for _, d in served}
    assert by_name["reap-stale"].schedules[0].schedule.interval.total_seconds() == 300
    assert by_name["score-upload"].tags == ["scoring"] and not by_name["score-upload"].schedules
    assert [t.expect for t in by_name["train-model"].triggers] == [{"retainwise.model.degraded"}]


def test_the_deployment_guide_gives_the_queue_the_visibility_timeout_the_code_uses():
    from pathlib import Path

    from retainwise.adapters.aws import VISIBILITY_TIMEOUT_SECONDS
    from retainwise.config.settings import Settings

    guide = (Path(__file__).resolve().parents[2] / "deployments" / "README.md").read_text()
    stated = f"`VisibilityTimeout={VISIBILITY_TIMEOUT_SECONDS}`"
    assert stated in guide and "VisibilityTimeout=" not in guide.replace(stated, "")
    # the trigger gives up on a busy Prefect API before the message could be received again
    assert Settings().trigger_create_timeout < VISIBILITY_TIMEOUT_SECONDS
