"""The CDK app, synthesised offline once per session (jsii on the machine's Node.js) and checked.

cdk-nag's AwsSolutions pack runs on the same synthesis: an unsuppressed error fails here.
"""

import importlib
import json
import os
import re
import secrets
import string

import pytest

from deployments.cdk.outputs import OUTPUT_KEY
from retainwise.adapters import webhooks
from retainwise.adapters.aws import VISIBILITY_TIMEOUT_SECONDS
from retainwise.config.settings import Settings
from retainwise.runtime import webhooks as deliverer
from tests.deployments.prefect_yaml import placeholders

# jsii warns on every start that Node 20 is past end of life; the synthesis itself works
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")


class Lazy:
    """`module.attr`, imported on first use: importing aws_cdk starts a Node.js process and loads
    aws-cdk-lib (~3 CPU s), which every xdist worker paid while collecting, and only the worker
    that runs this file needs."""

    def __init__(self, module: str, attr: str | None = None):
        self._module, self._attr = module, attr

    def __getattr__(self, name: str):
        target = importlib.import_module(self._module)
        return getattr(getattr(target, self._attr) if self._attr else target, name)

    def __call__(self, *args, **kwargs):
        return getattr(importlib.import_module(self._module), self._attr)(*args, **kwargs)


cdk = Lazy("aws_cdk")
Annotations = Lazy("aws_cdk.assertions", "Annotations")
Match = Lazy("aws_cdk.assertions", "Match")
Template = Lazy("aws_cdk.assertions", "Template")
build = Lazy("deployments.cdk.app", "build")

CONTEXT = {
    "imageTag": "abc123",
    "region": "eu-west-1",
    "maxRunners": 6,
    "prefectApiUrl": "https://api.prefect.cloud/api/accounts/a/workspaces/w",
    "certificateArn": "arn:aws:acm:eu-west-1:123456789012:certificate/test",
    "publicUrl": "https://retainwise.example.com/",
}


@pytest.fixture(scope="session")
def synthesised():
    """(stack, template): the one synthesis every test here reads (~20 s of CPU)."""
    stack = build(cdk.App(context=CONTEXT))
    return stack, Template.from_stack(stack)


@pytest.fixture(scope="session")
def stack(synthesised):
    return synthesised[0]


@pytest.fixture(scope="session")
def template(synthesised):
    return synthesised[1]


def resources(template, kind: str) -> dict:
    return template.find_resources(kind)


def logical_id(stack, construct) -> str:
    return stack.resolve(stack.get_logical_id(construct.node.default_child))


def statements_of(template, stack, role) -> list[dict]:
    """Every policy statement attached to `role` (its inline default policy)."""
    ref = {"Ref": logical_id(stack, role)}
    return [
        statement
        for policy in resources(template, "AWS::IAM::Policy").values()
        if ref in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    ]


def grants(statements) -> set[tuple[str, str]]:
    """(action, resource rendered as text) pairs, so prefixes like `uploads/*` can be matched."""
    listed = lambda v: v if isinstance(v, list) else [v]  # noqa: E731
    return {
        (action, json.dumps(resource))
        for s in statements
        if s["Effect"] == "Allow"
        for action in listed(s["Action"])
        for resource in listed(s["Resource"])
    }


def test_cdk_nag_finds_no_unsuppressed_error(stack, template):
    errors = Annotations.from_stack(stack).find_error(
        "*", Match.string_like_regexp("AwsSolutions-.*")
    )
    assert errors == [], "\n".join(f"{e.id}: {str(e.entry.data)[:160]}" for e in errors)


def test_every_suppression_says_why(template):
    suppressions = [
        rule
        for body in template.to_json()["Resources"].values()
        for rule in body.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert suppressions, "the nag suppressions are not attached"
    for rule in suppressions:
        assert rule["id"].startswith("AwsSolutions-") and len(rule["reason"]) > 40, rule


def test_buckets_are_encrypted_private_tls_only_with_lifecycle(stack, template):
    buckets = resources(template, "AWS::S3::Bucket")
    assert len(buckets) == 3  # uploads, models, access logs
    for bucket in buckets.values():
        props = bucket["Properties"]
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
        assert props["PublicAccessBlockConfiguration"] == {
            "BlockPublicAcls": True,
            "BlockPublicPolicy": True,
            "IgnorePublicAcls": True,
            "RestrictPublicBuckets": True,
        }
        assert props["LifecycleConfiguration"]["Rules"]
    uploads = buckets[logical_id(stack, stack.storage.uploads)]["Properties"]
    expiring = {
        rule.get("Prefix"): rule.get("ExpirationInDays")
        for rule in uploads["LifecycleConfiguration"]["Rules"]
    }
    assert expiring["uploads/"] == expiring["results/"] == 30
    for policy in resources(template, "AWS::S3::BucketPolicy").values():
        denies = [
            s for s in policy["Properties"]["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"
        ]
        assert any(s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}} for s in denies)


def test_the_queue_dead_letters_after_three_receives_and_the_dlq_alarms(stack, template):
    dlq = logical_id(stack, stack.queue.dead_letters)
    template.has_resource_properties(
        "AWS::SQS::Queue",
        {
            "QueueName": "retainwise-uploads",
            "VisibilityTimeout": VISIBILITY_TIMEOUT_SECONDS,
            "RedrivePolicy": {
                "deadLetterTargetArn": {"Fn::GetAtt": [dlq, "Arn"]},
                "maxReceiveCount": 3,
            },
            "SqsManagedSseEnabled": True,
        },
    )
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": "ApproximateNumberOfMessagesVisible",
            "Namespace": "AWS/SQS",
            "Dimensions": [{"Name": "QueueName", "Value": {"Fn::GetAtt": [dlq, "QueueName"]}}],
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0,
            "AlarmActions": Match.any_value(),
        },
    )


def test_postgres_is_private_encrypted_multi_az_with_a_generated_secret(template):
    template.has_resource_properties(
        "AWS::RDS::DBInstance",
        {
            "Engine": "postgres",
            "StorageEncrypted": True,
            "MultiAZ": True,
            "PubliclyAccessible": False,
            "DeletionProtection": True,
        },
    )
    template.has_resource_properties(
        "AWS::SecretsManager::Secret",
        {
            "GenerateSecretString": Match.object_like(
                {"SecretStringTemplate": '{"username":"retainwise"}'}
            )
        },
    )


def test_the_app_user_has_its_own_generated_secret_attached_to_the_instance(stack, template):
    """migrate creates the role from it; the attachment adds the host and port tasks connect to."""
    app = logical_id(stack, stack.database.app_secret)
    template_of_app = resources(template, "AWS::SecretsManager::Secret")[app]["Properties"]
    assert json.loads(template_of_app["GenerateSecretString"]["SecretStringTemplate"]) == {
        "username": "retainwise_app",
        "dbname": "retainwise",
    }
    template.has_resource_properties(
        "AWS::SecretsManager::SecretTargetAttachment",
        {
            "SecretId": {"Ref": app},
            "TargetType": "AWS::RDS::DBInstance",
            "TargetId": {"Ref": logical_id(stack, stack.database.instance)},
        },
    )
    # the owner's secret is another one (RDS's generated master secret, attached the same way)
    assert logical_id(stack, stack.database.secret) != logical_id(stack, stack.database.app_login)


def container(template, command_start: list[str]) -> dict:
    found = [
        c
        for d in resources(template, "AWS::ECS::TaskDefinition").values()
        for c in d["Properties"]["ContainerDefinitions"]
        if c.get("Command", [])[: len(command_start)] == command_start
    ]
    assert len(found) == 1, (command_start, len(found))
    return found[0]


SERVICES = {
    "trigger": ["retainwise", "trigger"],
    "runner": ["retainwise", "runner"],
    "worker": ["prefect", "worker", "start", "--pool", "ecs"],
    "api": ["retainwise", "api"],
    "webhooks": ["python", "-m", "retainwise.runtime.webhooks"],
}


EXPECTED_SECRETS = {
    "worker": {"PREFECT_API_KEY"},
    "api": {"RETAINWISE_DATABASE_SECRET", "RETAINWISE_SESSION_SECRET", "RETAINWISE_WEBHOOK_KEY"},
    "webhooks": {"RETAINWISE_DATABASE_SECRET", "RETAINWISE_WEBHOOK_KEY"},
}


def test_the_api_gets_its_own_database_login_and_the_generated_session_secret(stack, template):
    injected = {s["Name"]: s["ValueFrom"] for s in container(template, SERVICES["api"])["Secrets"]}
    assert injected["RETAINWISE_DATABASE_SECRET"] == {
        "Ref": logical_id(stack, stack.database.api_login)
    }
    session = logical_id(stack, stack.session_secret)
    assert injected["RETAINWISE_SESSION_SECRET"] == {"Ref": session}
    generated = resources(template, "AWS::SecretsManager::Secret")[session]["Properties"]
    assert generated["GenerateSecretString"]["PasswordLength"] >= 32


def app_secret_ref(stack) -> dict:
    return {"Ref": logical_id(stack, stack.database.app_login)}


@pytest.mark.parametrize("service", SERVICES)
def test_secrets_come_through_ecs_secrets_never_plain_environment(stack, template, service):
    definition = container(template, SERVICES[service])
    injected = {s["Name"]: s["ValueFrom"] for s in definition["Secrets"]}
    # the worker only talks to Prefect and ECS: it never gets a database secret; the API creates
    # no flow run, so it never gets the Prefect key, and it signs sessions with one shared secret;
    # the deliverer talks to the database and customers' URLs only
    assert set(injected) == EXPECTED_SECRETS.get(
        service, {"RETAINWISE_DATABASE_SECRET", "PREFECT_API_KEY"}
    )
    if service not in ("worker", "api"):  # the rows-only app user, never the owner
        assert injected["RETAINWISE_DATABASE_SECRET"] == app_secret_ref(stack)
    environment = {e["Name"]: e["Value"] for e in definition["Environment"]}
    assert (environment.get("RETAINWISE_SESSION_HTTPS_ONLY") == "true") == (service == "api")
    assert environment["RETAINWISE_ENV"] == "production"
    assert not [n for n in environment if re.search("KEY|PASSWORD|SECRET|DATABASE_URL|TOKEN", n)]
    assert "postgresql" not in json.dumps(environment)
    assert definition["LogConfiguration"]["LogDriver"] == "awslogs"


def secrets_readable_by(template, stack, role) -> set[str]:
    """Logical ids of the secrets (or their attachments) `role` may read."""
    return {
        json.loads(resource).get("Ref")
        for action, resource in grants(statements_of(template, stack, role))
        if action == "secretsmanager:GetSecretValue"
    }


def test_only_migrate_execution_role_can_read_the_owner_secret(stack, template):
    """Services and other flow tasks inject the app user's secret; migrate's task, started with an
    execution role of its own (prefect.yaml), is the one place the owner's secret is injected."""
    owner = logical_id(stack, stack.database.secret)
    app = app_secret_ref(stack)["Ref"]
    api = logical_id(stack, stack.database.api_login)
    services = stack.services
    worker = logical_id(stack, services.worker.task_definition.execution_role)
    api_task = logical_id(stack, services.api.task_definition.execution_role)
    for role in [d.execution_role for d in services.task_definitions] + [
        services.flow_execution_role
    ]:
        readable = secrets_readable_by(template, stack, role)
        assert owner not in readable
        # the worker's container gets only the Prefect key, the API's its own login
        assert (app in readable) == (logical_id(stack, role) not in (worker, api_task))
        assert (api in readable) == (logical_id(stack, role) == api_task)
    migrate = secrets_readable_by(template, stack, services.migrate_execution_role)
    assert {owner, app, api} <= migrate
    for role in stack.roles.by_job().values():  # no job's code may fetch any secret itself
        assert not secrets_readable_by(template, stack, role)


def task_definition(template, command_start: list[str]) -> dict:
    """The properties of the one task definition whose container runs `command_start`."""
    [found] = [
        d["Properties"]
        for d in resources(template, "AWS::ECS::TaskDefinition").values()
        if container(template, command_start) in d["Properties"]["ContainerDefinitions"]
    ]
    return found


def test_each_service_runs_with_its_own_task_role(stack, template):
    roles = {logical_id(stack, role) for role in stack.roles.by_job().values()}
    assert len(roles) == 9  # reap-stale runs in the runner, under its role
    assert len(resources(template, "AWS::ECS::TaskDefinition")) == len(SERVICES)
    by_service = {
        service: task_definition(template, command)["TaskRoleArn"]["Fn::GetAtt"][0]
        for service, command in SERVICES.items()
    }
    assert by_service == {
        service: logical_id(stack, stack.roles.by_job()[service]) for service in SERVICES
    }


@pytest.mark.parametrize("job", ["scoring", "runner"])
def test_scoring_reads_uploads_models_and_results_and_writes_only_results(stack, template, job):
    allowed = grants(statements_of(template, stack, stack.roles.by_job()[job]))
    writes = {resource for action, resource in allowed if action == "s3:PutObject"}
    reads = {resource for action, resource in allowed if action == "s3:GetObject"}
    assert len(writes) == 1 and "/results/*" in writes.pop()
    # results are read back for the per-upload monitoring figures (flows/score_upload.py)
    assert {any(f"/{p}/*" in r for p in ("uploads", "mlartifacts", "results")) for r in reads} == {
        True
    }
    assert not [a for a, _ in allowed if a.startswith("iam:")]
    sqs = {a for a, _ in allowed if a.startswith("sqs:")}
    # the runner also sweeps stale uploads (reap-stale), which sends their messages again
    assert sqs == (
        set()
        if job == "scoring"
        else {"sqs:SendMessage", "sqs:GetQueueUrl", "sqs:GetQueueAttributes"}
    )


@pytest.mark.parametrize("job, prefix", [("api", "uploads"), ("scoring", "results")])
def test_whoever_writes_multipart_objects_may_abort_them(stack, template, job, prefix):
    """A 413 or a dropped client aborts the upload; without the right it answered 500."""
    allowed = grants(statements_of(template, stack, stack.roles.by_job()[job]))
    aborts = {r for a, r in allowed if a == "s3:AbortMultipartUpload"}
    writes = {r for a, r in allowed if a == "s3:PutObject"}
    assert aborts == writes and len(aborts) == 1 and f"/{prefix}/*" in aborts.pop()


def test_the_api_reads_model_artifacts_for_the_monitoring_page_and_writes_none(stack, template):
    allowed = grants(statements_of(template, stack, stack.roles.api))
    models = logical_id(stack, stack.storage.models)
    assert (
        "s3:GetObject",
        json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [models, "Arn"]}, "/mlartifacts/*"]]}),
    ) in allowed
    assert not [r for a, r in allowed if a == "s3:PutObject" and models in r]


def test_training_writes_models_and_never_results(stack, template):
    allowed = grants(statements_of(template, stack, stack.roles.training))
    writes = {resource for action, resource in allowed if action == "s3:PutObject"}
    assert len(writes) == 1 and "/mlartifacts/*" in writes.pop()
    assert not [r for _, r in allowed if "/results/" in r]


def test_monitor_reads_model_artifacts_and_writes_nothing(stack, template):
    """It reads rows through the database and each version's profile from MLflow's artifacts."""
    allowed = grants(statements_of(template, stack, stack.roles.monitor))
    actions = {action for action, _ in allowed}
    assert actions == {"s3:GetObject", "s3:ListBucket"}
    models = logical_id(stack, stack.storage.models)
    assert {r for a, r in allowed if a == "s3:GetObject"} == {
        json.dumps({"Fn::Join": ["", [{"Fn::GetAtt": [models, "Arn"]}, "/mlartifacts/*"]]})
    }
    assert not [r for _, r in allowed if "/uploads/" in r or "/results/" in r]
    assert logical_id(stack, stack.roles.monitor) != logical_id(stack, stack.roles.training)


def test_migrate_has_no_aws_permission_only_the_database_secret(stack, template):
    assert statements_of(template, stack, stack.roles.migrate) == []


def test_the_trigger_reads_and_deletes_messages_and_only_sizes_uploads(stack, template):
    allowed = grants(statements_of(template, stack, stack.roles.trigger))
    actions = {action for action, _ in allowed}
    assert {
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
    } <= actions and "sqs:SendMessage" not in actions
    s3 = {(a, r) for a, r in allowed if a.startswith("s3:")}
    [(action, resource)] = s3  # HEAD, to route by the object's size
    assert action == "s3:GetObject" and "/uploads/*" in resource
    assert {a.split(":")[0] for a in actions} == {"sqs", "s3"}


def test_the_worker_may_pass_only_the_flow_roles(stack, template):
    passed = {
        json.loads(resource)["Fn::GetAtt"][0]
        for action, resource in grants(statements_of(template, stack, stack.roles.worker))
        if action == "iam:PassRole"
    }
    roles = stack.roles
    assert passed == {
        logical_id(stack, r)
        for r in (
            roles.scoring,
            roles.training,
            roles.monitor,
            roles.migrate,
            stack.services.flow_execution_role,
            stack.services.migrate_execution_role,
        )
    }


def test_runners_scale_on_queue_backlog_and_waiting_prefect_runs(template):
    template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget",
        {"MinCapacity": 1, "MaxCapacity": 6, "ScalableDimension": "ecs:service:DesiredCount"},
    )
    tracked = [
        p["Properties"]["TargetTrackingScalingPolicyConfiguration"]["CustomizedMetricSpecification"]
        for p in resources(template, "AWS::ApplicationAutoScaling::ScalingPolicy").values()
        if p["Properties"]["PolicyType"] == "TargetTrackingScaling"
    ]
    metrics = {(m["Namespace"], m["MetricName"]) for m in tracked}
    assert metrics == {
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"),
        ("RetainWise", "ScoreUploadRunsWaiting"),
    }


def test_the_api_is_served_over_tls_and_http_redirects(template):
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 443,
            "Protocol": "HTTPS",
            "Certificates": [{"CertificateArn": CONTEXT["certificateArn"]}],
        },
    )
    template.has_resource_properties(
        "AWS::ElasticLoadBalancingV2::Listener",
        {
            "Port": 80,
            "DefaultActions": [
                Match.object_like(
                    {
                        "Type": "redirect",
                        "RedirectConfig": Match.object_like({"Protocol": "HTTPS", "Port": "443"}),
                    }
                )
            ],
        },
    )


def test_log_groups_keep_thirty_days(template):
    groups = {
        g["Properties"].get("LogGroupName"): g["Properties"]["RetentionInDays"]
        for g in resources(template, "AWS::Logs::LogGroup").values()
    }
    assert groups["/retainwise/flows"] == groups["/retainwise/services"] == 30


def test_the_deliverer_runs_its_module_with_the_public_url_and_a_scoped_log_stream(template):
    definition = task_definition(template, SERVICES["webhooks"])
    [box] = definition["ContainerDefinitions"]
    assert box["Command"] == ["python", "-m", deliverer.__name__]
    assert callable(deliverer.main)  # the module the command runs, and its entry point
    environment = {e["Name"]: e["Value"] for e in box["Environment"]}
    assert environment["RETAINWISE_PUBLIC_URL"] == "https://retainwise.example.com"
    options = box["LogConfiguration"]["Options"]
    assert options["awslogs-stream-prefix"] == "webhooks"
    [group] = [
        g["Properties"]
        for name, g in resources(template, "AWS::Logs::LogGroup").items()
        if options["awslogs-group"] == {"Ref": name}
    ]
    assert (group["LogGroupName"], group["RetentionInDays"]) == ("/retainwise/services", 30)
    assert (definition["Cpu"], definition["Memory"]) == ("256", "512")  # ~70 MB RSS measured


def deliverer_settings(template, stack) -> Settings:
    """What the deliverer's container would read: its environment, with stand-ins for the
    values CloudFormation fills in and for its two injected secrets."""
    [box] = task_definition(template, SERVICES["webhooks"])["ContainerDefinitions"]
    environment = {
        e["Name"]: e["Value"] if isinstance(e["Value"], str) else "from-the-stack"
        for e in box["Environment"]
    }
    login = {"username": "retainwise_app", "password": "p", "host": "db", "dbname": "retainwise"}
    return Settings.model_validate(
        {
            **{k.removeprefix("RETAINWISE_").lower(): v for k, v in environment.items()},
            "database_secret": json.dumps(login),
            "webhook_key": generated_webhook_key(template, stack),
        }
    )


def generated_webhook_key(template, stack) -> str:
    """A key as Secrets Manager would generate it from the stack's WebhookKey settings."""
    generator = resources(template, "AWS::SecretsManager::Secret")[
        logical_id(stack, stack.webhook_key)
    ]["Properties"]["GenerateSecretString"]
    everything = string.ascii_letters + string.digits + string.punctuation
    alphabet = [c for c in everything if c not in generator["ExcludeCharacters"]]
    assert sorted(alphabet) == sorted(string.ascii_letters + string.digits + "-_")  # base64url
    assert generator["RequireEachIncludedType"] is False
    return "".join(secrets.choice(alphabet) for _ in range(generator["PasswordLength"]))


def test_the_generated_webhook_key_is_a_fernet_key(template, stack):
    for _ in range(200):  # every character is drawn: any draw must be a key
        box = webhooks.secret_box(Settings(webhook_key=generated_webhook_key(template, stack)))
        assert box.decrypt(box.encrypt(b"whsec_x")) == b"whsec_x"


def test_the_deliverer_as_configured_passes_its_production_checks(template, stack):
    """RETAINWISE_ENV=production, a server database, a readable key, https links: it starts."""
    settings = deliverer_settings(template, stack)
    assert settings.env == "production" and settings.public_url == "https://retainwise.example.com"
    assert deliverer.production_problems(settings) == []
    without_url = settings.model_copy(update={"public_url": None})
    assert deliverer.production_problems(without_url)  # the check above can fail


def test_the_deliverer_has_no_inbound_port_no_public_ip_and_only_https_out(stack, template):
    service = logical_id(stack, stack.services.webhooks)
    props = resources(template, "AWS::ECS::Service")[service]["Properties"]
    assert props["DesiredCount"] == 1 and "LoadBalancers" not in props
    network = props["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert network["AssignPublicIp"] == "DISABLED"
    [group_ref] = network["SecurityGroups"]
    group = group_ref["Fn::GetAtt"][0]
    sg = resources(template, "AWS::EC2::SecurityGroup")[group]["Properties"]
    assert "SecurityGroupIngress" not in sg
    assert not [
        r
        for r in resources(template, "AWS::EC2::SecurityGroupIngress").values()
        if r["Properties"]["GroupId"] == group_ref
    ]
    assert [
        (e["CidrIp"], e["IpProtocol"], e["FromPort"], e["ToPort"])
        for e in sg["SecurityGroupEgress"]
    ] == [("0.0.0.0/0", "tcp", 443, 443)]
    database = logical_id(stack, stack.database.instance.connections.security_groups[0])
    extra_egress = [
        r["Properties"]["DestinationSecurityGroupId"]
        for r in resources(template, "AWS::EC2::SecurityGroupEgress").values()
        if r["Properties"]["GroupId"] == group_ref
    ]
    assert extra_egress == [{"Fn::GetAtt": [database, "GroupId"]}]  # PostgreSQL


def test_the_deliverer_task_role_has_no_aws_permission(stack, template):
    assert statements_of(template, stack, stack.roles.webhooks) == []


def test_the_deliverer_execution_role_pulls_logs_and_reads_its_two_secrets(stack, template):
    role = stack.services.webhooks.task_definition.execution_role
    allowed = grants(statements_of(template, stack, role))
    assert {a for a, _ in allowed} == {
        "ecr:BatchCheckLayerAvailability",
        "ecr:GetDownloadUrlForLayer",
        "ecr:BatchGetImage",
        "ecr:GetAuthorizationToken",
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
    }
    logs = {json.loads(r)["Fn::GetAtt"][0] for a, r in allowed if a.startswith("logs:")}
    assert logs == {logical_id(stack, stack.services.service_logs)}
    assert secrets_readable_by(template, stack, role) == {
        app_secret_ref(stack)["Ref"],
        logical_id(stack, stack.webhook_key),
    }


def test_only_the_api_and_the_deliverer_can_read_the_webhook_key(stack, template):
    key = logical_id(stack, stack.webhook_key)
    services = stack.services
    readers = {
        logical_id(stack, role)
        for role in [d.execution_role for d in services.task_definitions]
        + [services.flow_execution_role, services.migrate_execution_role]
        if key in secrets_readable_by(template, stack, role)
    }
    assert readers == {
        logical_id(stack, services.api.task_definition.execution_role),
        logical_id(stack, services.webhooks.task_definition.execution_role),
    }


def test_an_event_given_up_alarms_through_the_alarm_topic(stack, template):
    [metric_filter] = resources(template, "AWS::Logs::MetricFilter").values()
    props = metric_filter["Properties"]
    assert props["FilterPattern"] == f'"{deliverer.GIVEN_UP}"'
    assert props["LogGroupName"] == {"Ref": logical_id(stack, stack.services.service_logs)}
    [transform] = props["MetricTransformations"]
    assert (transform["MetricNamespace"], transform["MetricValue"]) == ("RetainWise", "1")
    template.has_resource_properties(
        "AWS::CloudWatch::Alarm",
        {
            "MetricName": transform["MetricName"],
            "Namespace": "RetainWise",
            "Statistic": "Sum",
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": 0,
            "TreatMissingData": "notBreaching",
            "AlarmActions": [{"Ref": logical_id(stack, stack.queue.alarms)}],
        },
    )


def test_the_stack_output_fills_every_variable_prefect_yaml_reads(stack, template):
    """prefect.yaml's `{{ $NAME }}` come from this output, except the image and the region."""
    assert set(template.find_outputs(OUTPUT_KEY)) == {OUTPUT_KEY}
    assert set(stack.prefect_yaml_environment) == placeholders() - {
        "RETAINWISE_IMAGE",
        "AWS_DEFAULT_REGION",
    }


@pytest.mark.parametrize("name", ["certificateArn", "publicUrl"])
def test_a_missing_context_value_is_named(name):
    with pytest.raises(SystemExit, match=name):
        build(cdk.App(context={k: v for k, v in CONTEXT.items() if k != name}))


def test_a_public_url_that_is_not_https_is_refused():
    with pytest.raises(SystemExit, match="publicUrl"):
        build(cdk.App(context={**CONTEXT, "publicUrl": "http://retainwise.example.com"}))


def test_only_the_services_that_use_the_database_can_reach_it(stack, template):
    def group(connectable) -> str:
        return logical_id(stack, connectable.connections.security_groups[0])

    services, database = stack.services, group(stack.database.instance)
    sources = {
        rule["Properties"]["SourceSecurityGroupId"]["Fn::GetAtt"][0]
        for rule in resources(template, "AWS::EC2::SecurityGroupIngress").values()
        if rule["Properties"]["GroupId"] == {"Fn::GetAtt": [database, "GroupId"]}
    }
    assert sources == {
        group(services.trigger),
        group(services.runner),
        group(services.api.service),
        group(services.webhooks),
        logical_id(stack, services.flow_tasks_security_group),
    }
