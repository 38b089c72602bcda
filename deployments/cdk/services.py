"""The ECS cluster and its long-running services: trigger, warm runners, ECS worker, API behind TLS,
webhook deliverer.

Every container gets its configuration as plain environment and its secrets (the app user's RDS
secret, the Prefect API key) through the task definition's `secrets`, which its own execution
role may read. No service gets the database owner's secret: only the migrate flow task does. The
API gets its own: its database login, the session secret and the webhook key, and no Prefect key.
The deliverer gets the app user's login and the webhook key, and may only reach the database and
HTTPS.
"""

from __future__ import annotations

from dataclasses import dataclass

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_certificatemanager as acm
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr as ecr
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_ecs_patterns as ecs_patterns
from aws_cdk import aws_elasticloadbalancingv2 as elbv2
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from deployments.cdk.roles import JobRoles
from retainwise.adapters import scaling
from retainwise.runtime import webhooks as deliverer

ECS_WORK_POOL = "ecs"
API_PORT = 8000
# prefect-aws's ECS observer reads task state changes from this queue (its default name)
OBSERVER_QUEUE_NAME = "prefect-ecs-tasks-events"


@dataclass(frozen=True)
class Release:
    """What a deploy changes: the image tag, where Prefect is, how far the runners scale."""

    image_tag: str
    prefect_api_url: str
    certificate_arn: str
    public_url: str = ""  # the API's https:// address, for the links in webhook events
    max_runners: int = 4
    backlog_per_runner: int = 5  # queued uploads one warm runner is expected to absorb
    waiting_runs_per_runner: int = 5  # late or scheduled score-upload runs per runner


class Services(Construct):
    """The cluster, the log groups and the five services."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        release: Release,
        vpc: ec2.IVpc,
        roles: JobRoles,
        environment: dict[str, str],
        secrets: dict[str, ecs.Secret],
        api_secrets: dict[str, ecs.Secret],
        webhook_secrets: dict[str, ecs.Secret],
        alarms: sns.ITopic,
        queue: sqs.IQueue,
        database: ec2.IConnectable,
        migrate_secrets: list[secretsmanager.ISecret],
        access_logs: s3.IBucket,
    ) -> None:
        super().__init__(scope, id)
        self.release, self.roles = release, roles
        self.environment, self.secrets, self.api_secrets = environment, secrets, api_secrets
        self.task_definitions: list[ecs.FargateTaskDefinition] = []
        repository = ecr.Repository.from_repository_name(self, "Repository", "retainwise")
        self.image = ecs.ContainerImage.from_ecr_repository(repository, release.image_tag)
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        self.service_logs = self._log_group("ServiceLogs", "/retainwise/services")
        self.flow_logs = self._log_group("FlowLogs", "/retainwise/flows")
        # the flow tasks the ECS worker starts reach the database through this group
        self.flow_tasks_security_group = ec2.SecurityGroup(
            self, "FlowTasks", vpc=vpc, description="flow tasks started by the prefect-aws worker"
        )
        self.flow_execution_role = self._flow_execution_role("FlowExecutionRole", repository)
        # migrate's task alone is started with a role that may inject the owner's secret (and
        # the API user's, whose role it keeps up)
        self.migrate_execution_role = self._flow_execution_role(
            "MigrateExecutionRole", repository, migrate_secrets
        )

        self.trigger = self._service("Trigger", roles.trigger, ["retainwise", "trigger"])
        self.runner = self._service(
            "Runner", roles.runner, ["retainwise", "runner"], cpu=1024, memory=4096
        )
        # the worker only talks to Prefect and ECS: no database secret, no database ingress
        self.worker = self._service(
            "EcsWorker",
            roles.worker,
            ["prefect", "worker", "start", "--pool", ECS_WORK_POOL, "--type", "ecs"],
            extra_environment={
                "PREFECT_INTEGRATIONS_AWS_ECS_OBSERVER_SQS_QUEUE_NAME": OBSERVER_QUEUE_NAME
            },
            secrets={"PREFECT_API_KEY": secrets["PREFECT_API_KEY"]},
        )
        self.api = self._api(access_logs)
        self.webhooks = self._webhooks(vpc, webhook_secrets)
        for service in (self.trigger, self.runner, self.api.service, self.webhooks):
            database.connections.allow_default_port_from(service)
        database.connections.allow_default_port_from(self.flow_tasks_security_group)

        self._scale_runners(queue)
        self._let_worker_start_flow_tasks()
        self.webhooks_given_up = self._alarm_on_webhooks_given_up(alarms)

    def _log_group(self, id: str, name: str) -> logs.LogGroup:
        return logs.LogGroup(
            self,
            id,
            log_group_name=name,
            retention=logs.RetentionDays.ONE_MONTH,
            removal_policy=RemovalPolicy.RETAIN,
        )

    def _task_definition(
        self,
        id: str,
        role: iam.IRole,
        command: list[str],
        *,
        cpu: int,
        memory: int,
        extra_environment: dict[str, str] | None = None,
        secrets: dict[str, ecs.Secret] | None = None,
        port: int | None = None,
    ) -> ecs.FargateTaskDefinition:
        """The flow image running `command`; CDK gives each task definition its execution role."""
        definition = ecs.FargateTaskDefinition(
            self, f"{id}Task", cpu=cpu, memory_limit_mib=memory, task_role=role
        )
        definition.add_container(
            id,
            image=self.image,
            command=command,
            environment={**self.environment, **(extra_environment or {})},
            secrets=self.secrets if secrets is None else secrets,
            logging=ecs.LogDrivers.aws_logs(stream_prefix=id.lower(), log_group=self.service_logs),
            port_mappings=[ecs.PortMapping(container_port=port)] if port else None,
        )
        self.task_definitions.append(definition)
        return definition

    def _service(
        self,
        id: str,
        role: iam.IRole,
        command: list[str],
        *,
        cpu: int = 512,
        memory: int = 1024,
        extra_environment: dict[str, str] | None = None,
        secrets: dict[str, ecs.Secret] | None = None,
        security_groups: list[ec2.ISecurityGroup] | None = None,
    ) -> ecs.FargateService:
        definition = self._task_definition(
            id,
            role,
            command,
            cpu=cpu,
            memory=memory,
            extra_environment=extra_environment,
            secrets=secrets,
        )
        return ecs.FargateService(
            self,
            id,
            cluster=self.cluster,
            task_definition=definition,
            desired_count=1,
            min_healthy_percent=100,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS),
            security_groups=security_groups,
        )

    def _webhooks(self, vpc: ec2.IVpc, secrets: dict[str, ecs.Secret]) -> ecs.FargateService:
        """The deliverer: one task (a second, as during a deploy, is safe: each event is claimed
        by one), no inbound port, out only to HTTPS (receivers; ECR, Secrets Manager and logs
        through the NAT) and, added with the database's ingress, PostgreSQL."""
        group = ec2.SecurityGroup(
            self,
            "WebhooksSecurityGroup",
            vpc=vpc,
            description="the webhook deliverer: HTTPS out, PostgreSQL, nothing in",
            allow_all_outbound=False,
        )
        group.add_egress_rule(
            ec2.Peer.any_ipv4(),
            ec2.Port.tcp(deliverer.HTTPS_PORT),
            "HTTPS: webhook receivers, and ECR, Secrets Manager and CloudWatch Logs",
        )
        return self._service(
            "Webhooks",
            self.roles.webhooks,
            ["python", "-m", deliverer.__name__],
            cpu=256,
            memory=512,
            extra_environment={"RETAINWISE_PUBLIC_URL": self.release.public_url},
            secrets=secrets,
            security_groups=[group],
        )

    def _alarm_on_webhooks_given_up(self, alarms: sns.ITopic) -> cloudwatch.Alarm:
        """The deliverer logs GIVEN_UP when an event's last attempt fails (~16 h of retries);
        a metric filter counts those lines and any one alarms."""
        given_up = self.service_logs.add_metric_filter(
            "WebhooksGivenUp",
            filter_pattern=logs.FilterPattern.literal(f'"{deliverer.GIVEN_UP}"'),
            metric_namespace=scaling.NAMESPACE,
            metric_name="WebhookEventsGivenUp",
            metric_value="1",
        )
        alarm = cloudwatch.Alarm(
            self,
            "WebhookEventsGivenUp",
            alarm_description="A webhook event failed every attempt for ~16 hours and was given "
            "up: the service log (/retainwise/services, stream webhooks/) names the event and "
            "account; `retainwise account webhook show NAME` lists its attempts and errors.",
            metric=given_up.metric(statistic="Sum", period=Duration.minutes(5)),
            threshold=0,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        alarm.add_alarm_action(cloudwatch_actions.SnsAction(alarms))
        return alarm

    def _api(self, access_logs: s3.IBucket) -> ecs_patterns.ApplicationLoadBalancedFargateService:
        """The API and web app on HTTPS (HTTP redirects), the ALB logging to the access-log
        bucket."""
        definition = self._task_definition(
            "Api",
            self.roles.api,
            ["retainwise", "api", "--host", "0.0.0.0", "--port", str(API_PORT)],
            cpu=512,
            memory=1024,
            port=API_PORT,
            extra_environment={"RETAINWISE_SESSION_HTTPS_ONLY": "true"},  # TLS ends at the ALB
            secrets=self.api_secrets,
        )
        api = ecs_patterns.ApplicationLoadBalancedFargateService(
            self,
            "ApiService",
            cluster=self.cluster,
            task_definition=definition,
            desired_count=2,
            min_healthy_percent=100,
            public_load_balancer=True,
            protocol=elbv2.ApplicationProtocol.HTTPS,
            redirect_http=True,
            ssl_policy=elbv2.SslPolicy.RECOMMENDED_TLS,
            certificate=acm.Certificate.from_certificate_arn(
                self, "Certificate", self.release.certificate_arn
            ),
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )
        api.target_group.configure_health_check(path="/openapi.json")
        api.load_balancer.log_access_logs(access_logs, prefix="alb")
        return api

    def _scale_runners(self, queue: sqs.IQueue) -> None:
        """Target tracking on the queue backlog and on Prefect's waiting runs; min 1, max
        configured."""
        capacity = self.runner.auto_scale_task_count(
            min_capacity=1, max_capacity=self.release.max_runners
        )
        cooldowns = {
            "scale_out_cooldown": Duration.seconds(30),
            "scale_in_cooldown": Duration.minutes(5),
        }
        capacity.scale_to_track_custom_metric(
            "QueueBacklog",
            target_value=self.release.backlog_per_runner,
            metric=queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            **cooldowns,
        )
        capacity.scale_to_track_custom_metric(
            "PrefectWaitingRuns",
            target_value=self.release.waiting_runs_per_runner,
            # published by the runner (retainwise.adapters.scaling.report_waiting_runs)
            metric=cloudwatch.Metric(
                namespace=scaling.NAMESPACE,
                metric_name=scaling.METRIC,
                dimensions_map={scaling.DIMENSION: "score-upload"},
                period=Duration.minutes(1),
                statistic="Maximum",
            ),
            **cooldowns,
        )

    def _flow_execution_role(
        self,
        id: str,
        repository: ecr.IRepository,
        extra_secrets: list[secretsmanager.ISecret] | None = None,
    ) -> iam.Role:
        """Used by ECS (not the flow code) to pull the image, write logs and inject the secrets:
        the app user's and the Prefect key, and for migrate's task the owner's and API's too."""
        role = iam.Role(
            self,
            id,
            assumed_by=iam.ServicePrincipal("ecs-tasks.amazonaws.com"),
            description="RetainWise execution role for "
            + ("the migrate flow task" if extra_secrets else "flow tasks"),
        )
        repository.grant_pull(role)
        self.flow_logs.grant_write(role)
        for secret in self.secrets.values():
            secret.grant_read(role)
        for extra in extra_secrets or []:
            extra.grant_read(role)
        return role

    def _let_worker_start_flow_tasks(self) -> None:
        """What prefect-aws's ECSWorker calls, PassRole on the flow roles only, and its observer."""
        worker = self.roles.worker
        worker.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "ecs:RegisterTaskDefinition",
                    "ecs:DeregisterTaskDefinition",
                    "ecs:DescribeTaskDefinition",
                    "ecs:ListTaskDefinitions",
                    "ec2:DescribeVpcs",
                    "ec2:DescribeSubnets",
                ],
                resources=["*"],
            )
        )  # these ECS/EC2 actions support no resource-level permission
        worker.add_to_policy(
            iam.PolicyStatement(
                actions=["ecs:RunTask", "ecs:StopTask", "ecs:DescribeTasks", "ecs:TagResource"],
                resources=["*"],
                conditions={"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}},
            )
        )
        worker.add_to_policy(
            iam.PolicyStatement(
                actions=["logs:GetLogEvents"], resources=[f"{self.flow_logs.log_group_arn}"]
            )
        )
        flow_roles = [
            self.roles.scoring,
            self.roles.training,
            self.roles.monitor,
            self.roles.migrate,
            self.flow_execution_role,
            self.migrate_execution_role,
        ]
        worker.add_to_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"], resources=[role.role_arn for role in flow_roles]
            )
        )

        self.observer_queue = observer = sqs.Queue(
            self,
            "EcsTaskEvents",
            queue_name=OBSERVER_QUEUE_NAME,
            retention_period=Duration.hours(1),
            enforce_ssl=True,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
        )
        observer.grant_consume_messages(worker)
        events.Rule(
            self,
            "EcsTaskStateChanges",
            event_pattern=events.EventPattern(
                source=["aws.ecs"],
                detail_type=["ECS Task State Change"],
                detail={"clusterArn": [self.cluster.cluster_arn]},
            ),
            targets=[targets.SqsQueue(observer)],
        )
