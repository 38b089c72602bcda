"""The whole production topology in one stack (docs/topology.md draws it)."""

from __future__ import annotations

import string

from aws_cdk import CfnOutput, Stack
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from deployments.cdk.data import MODELS_PREFIX, Database, Network, Storage, UploadQueue
from deployments.cdk.nag import accept_findings
from deployments.cdk.outputs import OUTPUT_KEY
from deployments.cdk.roles import JobRoles
from deployments.cdk.services import Release, Services
from retainwise.config.settings import Settings

MAX_RECEIVE_COUNT = Settings.model_fields["max_receive_count"].default
RETENTION_DAYS = 30  # uploads and results
# container settings prefect.yaml writes itself (or leaves to the default) rather than reading
NOT_IN_PREFECT_YAML = {"RETAINWISE_ENV", "RETAINWISE_MAX_RECEIVE_COUNT"}
# a Fernet key is 32 bytes in url-safe base64: 43 characters of A-Z a-z 0-9 - _ and a `=` the
# generator cannot place last, which the code adds back (adapters.webhooks._fernet)
FERNET_KEY_CHARACTERS = 43
NOT_BASE64URL = "".join(c for c in string.punctuation if c not in "-_")


class RetainWiseStack(Stack):
    """VPC, storage, queue, database, job roles and services, and the values prefect.yaml reads."""

    def __init__(self, scope: Construct, id: str, *, release: Release, **kwargs) -> None:
        super().__init__(scope, id, **kwargs)
        network = Network(self, "Network")
        storage = Storage(self, "Storage", retention_days=RETENTION_DAYS)
        uploads = UploadQueue(self, "Queue", max_receive_count=MAX_RECEIVE_COUNT)
        database = Database(self, "Database", vpc=network.vpc)
        self.prefect_api_key = secretsmanager.Secret(
            self,
            "PrefectApiKey",
            description="PREFECT_API_KEY for every RetainWise process; "
            "put the real key in after the first deploy (deployments/README.md)",
        )
        # signs the web app's session cookies: one value for every API task, kept across deploys
        self.session_secret = secretsmanager.Secret(
            self,
            "SessionSecret",
            description="RETAINWISE_SESSION_SECRET: signs the web app's session cookies",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=64, exclude_punctuation=True
            ),
        )
        # encrypts the webhook signing secrets in the database: the API (webhook set) and the
        # deliverer hold it, nothing else; kept across deploys (rotation: deployments/README.md)
        self.webhook_key = secretsmanager.Secret(
            self,
            "WebhookKey",
            description="RETAINWISE_WEBHOOK_KEY: the Fernet key encrypting webhook signing secrets",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=FERNET_KEY_CHARACTERS,
                exclude_characters=NOT_BASE64URL,
                require_each_included_type=False,  # every character uniform over the 64
            ),
        )
        self.roles = JobRoles(
            self,
            "Roles",
            uploads=storage.uploads,
            models=storage.models,
            queue=uploads.queue,
            dead_letters=uploads.dead_letters,
        )

        # configuration for every container; secrets are never in here
        self.container_environment = {
            "RETAINWISE_ENV": "production",
            "RETAINWISE_BUCKET": storage.uploads.bucket_name,
            "RETAINWISE_QUEUE_NAME": uploads.queue.queue_name,
            "RETAINWISE_DEAD_LETTER_QUEUE_NAME": uploads.dead_letters.queue_name,
            "RETAINWISE_MAX_RECEIVE_COUNT": str(MAX_RECEIVE_COUNT),
            "RETAINWISE_MLFLOW_ARTIFACT_ROOT": storage.models.s3_url_for_object(
                MODELS_PREFIX.rstrip("/")
            ),
            "AWS_DEFAULT_REGION": self.region,
            "PREFECT_API_URL": release.prefect_api_url,
        }
        # every container connects as the rows-only app user; only the migrate flow task gets the
        # owner's secret (prefect.yaml), through an execution role of its own
        self.secrets = {
            "RETAINWISE_DATABASE_SECRET": ecs.Secret.from_secrets_manager(database.app_login),
            "PREFECT_API_KEY": ecs.Secret.from_secrets_manager(self.prefect_api_key),
        }
        # the API creates no flow run, so it holds no Prefect key; it signs customers in with a
        # database login of its own (the only one, with migrate's, that may touch api_keys)
        webhook_key = ecs.Secret.from_secrets_manager(self.webhook_key)
        self.api_secrets = {
            "RETAINWISE_DATABASE_SECRET": ecs.Secret.from_secrets_manager(database.api_login),
            "RETAINWISE_SESSION_SECRET": ecs.Secret.from_secrets_manager(self.session_secret),
            "RETAINWISE_WEBHOOK_KEY": webhook_key,  # `webhook set` encrypts the new secret
        }
        # the deliverer talks to the database and customers' URLs only: no Prefect key
        self.webhook_secrets = {
            "RETAINWISE_DATABASE_SECRET": self.secrets["RETAINWISE_DATABASE_SECRET"],
            "RETAINWISE_WEBHOOK_KEY": webhook_key,
        }
        self.services = Services(
            self,
            "Services",
            release=release,
            vpc=network.vpc,
            roles=self.roles,
            environment=self.container_environment,
            secrets=self.secrets,
            api_secrets=self.api_secrets,
            webhook_secrets=self.webhook_secrets,
            alarms=uploads.alarms,
            queue=uploads.queue,
            database=database.instance,
            migrate_secrets=[database.secret, database.api_login],
            access_logs=storage.access_logs,
        )
        self.network, self.storage, self.queue, self.database = network, storage, uploads, database

        # what `prefect deploy` fills prefect.yaml's `{{ $NAME }}` with (the deploy workflow reads
        # this output); RETAINWISE_IMAGE comes from the build, AWS_DEFAULT_REGION from the workflow
        self.prefect_yaml_environment = self._prefect_yaml_environment()
        CfnOutput(
            self,
            OUTPUT_KEY,
            value=self.to_json_string(self.prefect_yaml_environment),
            description="prefect.yaml's variables as JSON, read by the deploy workflow",
        )
        accept_findings(self)

    def _prefect_yaml_environment(self) -> dict[str, str]:
        services, roles, private = self.services, self.roles, self.network.vpc.private_subnets
        return {
            "RETAINWISE_ECS_CLUSTER": services.cluster.cluster_name,
            "RETAINWISE_ECS_EXECUTION_ROLE_ARN": services.flow_execution_role.role_arn,
            "RETAINWISE_MIGRATE_EXECUTION_ROLE_ARN": services.migrate_execution_role.role_arn,
            "RETAINWISE_SCORING_ROLE_ARN": roles.scoring.role_arn,
            "RETAINWISE_TRAINING_ROLE_ARN": roles.training.role_arn,
            "RETAINWISE_MONITOR_ROLE_ARN": roles.monitor.role_arn,
            "RETAINWISE_MIGRATE_ROLE_ARN": roles.migrate.role_arn,
            "RETAINWISE_DATABASE_SECRET_ARN": self.database.secret.secret_arn,  # migrate only
            "RETAINWISE_APP_DATABASE_SECRET_ARN": self.database.app_login.secret_arn,
            "RETAINWISE_API_DATABASE_SECRET_ARN": self.database.api_login.secret_arn,  # migrate
            "RETAINWISE_PREFECT_API_KEY_SECRET_ARN": self.prefect_api_key.secret_arn,
            "RETAINWISE_VPC_ID": self.network.vpc.vpc_id,
            "RETAINWISE_SUBNET_A": private[0].subnet_id,
            "RETAINWISE_SUBNET_B": private[1].subnet_id,
            "RETAINWISE_SECURITY_GROUP": services.flow_tasks_security_group.security_group_id,
            "RETAINWISE_LOG_GROUP": services.flow_logs.log_group_name,
            **{
                name: value
                for name, value in self.container_environment.items()
                if name.startswith("RETAINWISE_") and name not in NOT_IN_PREFECT_YAML
            },
        }
