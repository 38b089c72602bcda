"""cdk-nag AwsSolutions findings this design accepts, each with the reason it is accepted.

Anything not listed here fails tests/deployments/test_cdk.py.
"""

from __future__ import annotations

from cdk_nag import NagPackSuppression, NagSuppressions, RegexAppliesTo

OBJECT_PREFIXES = RegexAppliesTo(
    regex=r"/^Resource::<Storage(Uploads|Models)[0-9A-F]+\.Arn>\/(uploads|results|mlartifacts)\/\*$/"
)


NO_RESOURCE_ARN = ["Resource::*"]


def accepted_findings(stack) -> list[tuple[object, str, str, list | None]]:
    """(construct, rule, reason, applies_to) for every finding the design accepts."""
    services, roles, database = stack.services, stack.roles, stack.database.instance
    accepted = [
        (
            stack.prefect_api_key,
            "AwsSolutions-SMG4",
            "The Prefect API key is issued by Prefect, which Secrets Manager cannot rotate; rotate "
            "it in Prefect and put the new value (deployments/README.md).",
            None,
        ),
        (
            database,
            "AwsSolutions-SMG4",
            "ECS injects the password when a task starts; automatic rotation would break the new "
            "connections of running tasks until they restart. Rotate with a rolling deploy.",
            None,
        ),
        (
            stack.database.app_secret,
            "AwsSolutions-SMG4",
            "The app user's password, set by `migrate` (ALTER ROLE) and read by tasks when they "
            "start; rotation would need migrate to run first. Rotate with a new value, migrate, "
            "then a rolling deploy.",
            None,
        ),
        (
            stack.database.api_secret,
            "AwsSolutions-SMG4",
            "The API user's password, set by `migrate` like the app user's; rotated the same way.",
            None,
        ),
        (
            stack.session_secret,
            "AwsSolutions-SMG4",
            "Signs the web app's session cookies; a rotation signs every customer out, so it is "
            "rotated by hand with a deploy (deployments/README.md), not on a schedule.",
            None,
        ),
        (
            stack.webhook_key,
            "AwsSolutions-SMG4",
            "The Fernet key the webhook signing secrets are stored under; a scheduled rotation "
            "would replace it and leave every stored secret unreadable. Rotated by hand: put "
            "`NEW,OLD` (the first encrypts, all decrypt) and deploy (deployments/README.md).",
            None,
        ),
        (
            database,
            "AwsSolutions-RDS11",
            "The instance is in isolated subnets, reachable only from the task security groups; a "
            "non-default port would add no protection there.",
            None,
        ),
        (
            services.flow_execution_role,
            "AwsSolutions-IAM5",
            "ecr:GetAuthorizationToken (to pull the flow image) has no resource ARN.",
            NO_RESOURCE_ARN,
        ),
        (
            services.migrate_execution_role,
            "AwsSolutions-IAM5",
            "ecr:GetAuthorizationToken (to pull the flow image) has no resource ARN.",
            NO_RESOURCE_ARN,
        ),
        (
            services.observer_queue,
            "AwsSolutions-SQS3",
            "prefect-aws's observer queue holds ECS task-state events for an hour; an event it "
            "misses is not retried by design, and the reaper catches the run it concerned.",
            None,
        ),
        (
            services.api.load_balancer,
            "AwsSolutions-EC23",
            "The public HTTPS endpoint of the API and web app: clients connect from anywhere; port "
            "80 only redirects to 443.",
            None,
        ),
        (
            roles.runner,
            "AwsSolutions-IAM5",
            "cloudwatch:PutMetricData has no resource ARN; a condition limits it to the RetainWise "
            "namespace (the runner's waiting-runs metric).",
            NO_RESOURCE_ARN,
        ),
        (
            roles.worker,
            "AwsSolutions-IAM5",
            "ecs:RegisterTaskDefinition/DescribeTaskDefinition and ec2:Describe* have no resource "
            "ARN; RunTask, StopTask and DescribeTasks are limited to the cluster.",
            NO_RESOURCE_ARN,
        ),
    ]
    for definition in services.task_definitions:
        accepted.append(
            (
                definition,
                "AwsSolutions-ECS2",
                "Only non-secret configuration (names, region, URLs without credentials) "
                "is environment; the database secret, the Prefect key, the session secret and "
                "the webhook key come through `secrets`.",
                None,
            )
        )
        accepted.append(
            (
                definition.execution_role,
                "AwsSolutions-IAM5",
                "ecr:GetAuthorizationToken (CDK's grant to pull the image) has no resource ARN.",
                NO_RESOURCE_ARN,
            )
        )
    for role in (
        roles.scoring,
        roles.runner,
        roles.training,
        roles.monitor,
        roles.trigger,
        roles.api,
    ):
        accepted.append(
            (
                role,
                "AwsSolutions-IAM5",
                "Object-level access to one key prefix (uploads/, results/ or "
                "mlartifacts/); the wildcard stands for the object keys below it.",
                [OBJECT_PREFIXES],
            )
        )
    return accepted


def accept_findings(stack) -> None:
    """Attach the suppressions to the stack's constructs (called once the stack is built)."""
    for construct, rule, reason, applies_to in accepted_findings(stack):
        NagSuppressions.add_resource_suppressions(
            construct,
            [NagPackSuppression(id=rule, reason=reason, applies_to=applies_to)],
            apply_to_children=True,
        )
