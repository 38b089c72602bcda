"""The deploy workflow, parsed: protected environment, main only, pinned actions, scoped key,
gate."""

import ast
import re
from pathlib import Path

import pytest
import yaml

from deployments.cdk.outputs import OUTPUT_KEY, STACK_NAME, env_lines

REPO = Path(__file__).resolve().parents[2]
WORKFLOW = REPO / ".github" / "workflows" / "deploy.yml"
CDK_APP = REPO / "deployments" / "cdk" / "app.py"
# steps that call the Prefect API: they, and only they, get PREFECT_API_KEY
PREFECT_CALLS = re.compile(r"\bprefect\b.*\bdeploy\b|retainwise migrate|deployments\.ecs\b")


@pytest.fixture(scope="module")
def workflow():
    return yaml.safe_load(WORKFLOW.read_text())


def steps(workflow):
    return [(name, step) for name, job in workflow["jobs"].items() for step in job["steps"]]


def test_it_runs_only_from_main_in_the_protected_environment(workflow):
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as True
    assert triggers["push"] == {"branches": ["main"]}
    for name, job in workflow["jobs"].items():
        assert job["environment"] == "production", name
        assert job["if"] == "github.ref == 'refs/heads/main'", name  # workflow_dispatch too


def test_every_action_is_pinned_by_commit_sha(workflow):
    used = [step["uses"] for _, step in steps(workflow) if "uses" in step]
    assert used
    for action in used:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action


def test_the_prefect_key_is_only_on_the_steps_that_call_prefect(workflow):
    assert "PREFECT_API_KEY" not in workflow.get("env", {})
    for name, job in workflow["jobs"].items():
        assert "PREFECT_API_KEY" not in job.get("env", {}), name
    calling = 0
    for job, step in steps(workflow):
        has_key = "PREFECT_API_KEY" in step.get("env", {})
        calls = bool(PREFECT_CALLS.search(step.get("run", "")))
        assert has_key == calls, (job, step.get("name") or step.get("run"))
        calling += calls
    assert calling == 4  # work pools, migrate deployment, the migration, deploy --all


def test_the_migration_gates_the_deploy(workflow):
    jobs = workflow["jobs"]
    assert jobs["migrate"]["needs"] == "build" and "migrate" in jobs["deploy"]["needs"]
    migrate_steps = " ".join(step.get("run", "") for step in jobs["migrate"]["steps"])
    assert "retainwise migrate --deployment --timeout 600" in migrate_steps
    deploy_runs = [step.get("run", "") for step in jobs["deploy"]["steps"]]
    flows = next(
        i for i, run in enumerate(deploy_runs) if "prefect --no-prompt deploy --all" in run
    )
    services = next(
        i for i, run in enumerate(deploy_runs) if "aws-cdk@" in run and " deploy " in run
    )
    assert flows < services  # flows point at the new image before the runners roll onto it
    assert re.search(r"aws-cdk@\d+\.\d+\.\d+ ", deploy_runs[services])  # the CLI version is pinned


def required_context() -> tuple[str, ...]:
    """deployments/cdk/app.py's REQUIRED_CONTEXT, read from its source: importing the app imports
    aws_cdk, whose jsii runtime starts Node.js (~7 s; tests/deployments/test_cdk.py synthesises
    the app, e2e). Fails if the constant stops being a literal tuple assigned once."""
    [value] = [
        node.value
        for node in ast.parse(CDK_APP.read_text()).body
        if isinstance(node, ast.Assign)
        and [getattr(target, "id", None) for target in node.targets] == ["REQUIRED_CONTEXT"]
    ]
    required = ast.literal_eval(value)
    assert isinstance(required, tuple) and required
    return required


def test_cdk_deploy_gets_every_context_value_the_app_requires(workflow):
    required = set(required_context())
    [deploy] = [
        step["run"]
        for step in workflow["jobs"]["deploy"]["steps"]
        if "aws-cdk@" in step.get("run", "") and " deploy " in step["run"]
    ]
    passed = set(re.findall(r"-c (\w+)=", deploy))
    assert required <= passed, required - passed


def test_the_jobs_read_the_stack_this_repository_deploys(workflow):
    assert workflow["env"]["STACK_NAME"] == STACK_NAME
    for name in ("migrate", "deploy"):
        runs = " ".join(step.get("run", "") for step in workflow["jobs"][name]["steps"])
        assert 'python -m deployments.cdk.outputs "$STACK_NAME" >> "$GITHUB_ENV"' in runs


def test_stack_outputs_become_github_env_lines():
    outputs = [
        {"OutputKey": "Other", "OutputValue": "x"},
        {
            "OutputKey": OUTPUT_KEY,
            "OutputValue": '{"RETAINWISE_BUCKET": "b", "RETAINWISE_VPC_ID": "vpc-1"}',
        },
    ]
    assert env_lines(outputs) == "RETAINWISE_BUCKET=b\nRETAINWISE_VPC_ID=vpc-1\n"
    with pytest.raises(SystemExit, match=OUTPUT_KEY):
        env_lines(outputs[:1])
    with pytest.raises(SystemExit, match="RETAINWISE_X"):
        env_lines([{"OutputKey": OUTPUT_KEY, "OutputValue": '{"RETAINWISE_X": "a\\nb"}'}])
