"""Where RetainWise keeps things: the VPC, the buckets, the upload queue and the database."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_rds as rds
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from retainwise.adapters import aws

# the keys a job may touch, per bucket; roles are granted on these prefixes only
UPLOADS_PREFIX = "uploads/"
RESULTS_PREFIX = "results/"
MODELS_PREFIX = "mlartifacts/"


class Network(Construct):
    """Two AZs: public subnets for the ALB and NAT, private ones for tasks, isolated for RDS."""

    def __init__(self, scope: Construct, id: str) -> None:
        super().__init__(scope, id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=1,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC),
                ec2.SubnetConfiguration(
                    name="tasks", subnet_type=ec2.SubnetType.PRIVATE_WITH_EGRESS
                ),
                ec2.SubnetConfiguration(
                    name="database", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED
                ),
            ],
            flow_logs={"rejected": ec2.FlowLogOptions(traffic_type=ec2.FlowLogTrafficType.REJECT)},
        )


class Storage(Construct):
    """The uploads bucket (uploads/ in, results/ out), the models bucket (MLflow artifacts),
    logs."""

    def __init__(self, scope: Construct, id: str, *, retention_days: int) -> None:
        super().__init__(scope, id)
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            removal_policy=RemovalPolicy.RETAIN,
            lifecycle_rules=[s3.LifecycleRule(id="expire-logs", expiration=Duration.days(90))],
        )
        self.uploads = self._bucket(
            "Uploads",
            "uploads",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-uploads",
                    prefix=UPLOADS_PREFIX,
                    expiration=Duration.days(retention_days),
                ),
                s3.LifecycleRule(
                    id="expire-results",
                    prefix=RESULTS_PREFIX,
                    expiration=Duration.days(retention_days),
                ),
                s3.LifecycleRule(
                    id="abort-multipart", abort_incomplete_multipart_upload_after=Duration.days(1)
                ),
            ],
        )
        # models are kept: a rollback needs the old champion's artifacts
        self.models = self._bucket(
            "Models",
            "models",
            versioned=True,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-old-versions", noncurrent_version_expiration=Duration.days(90)
                ),
            ],
        )

    def _bucket(self, id: str, log_prefix: str, **options) -> s3.Bucket:
        return s3.Bucket(
            self,
            id,
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix=f"{log_prefix}/",
            removal_policy=RemovalPolicy.RETAIN,
            **options,
        )


class UploadQueue(Construct):
    """The upload queue; after `max_receive_count` receives a message moves to the DLQ, which
    alarms."""

    def __init__(self, scope: Construct, id: str, *, max_receive_count: int) -> None:
        super().__init__(scope, id)
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            queue_name="retainwise-uploads-dlq",
            retention_period=Duration.days(14),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.queue = sqs.Queue(
            self,
            "Uploads",
            queue_name="retainwise-uploads",
            # the value the code and the local stack use; above the trigger's create timeout
            visibility_timeout=Duration.seconds(aws.VISIBILITY_TIMEOUT_SECONDS),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letters, max_receive_count=max_receive_count
            ),
        )
        self.alarms = sns.Topic(
            self,
            "Alarms",
            enforce_ssl=True,
            master_key=kms.Alias.from_alias_name(self, "SnsKey", "alias/aws/sns"),
        )
        self.dead_letter_alarm = cloudwatch.Alarm(
            self,
            "DeadLettersWaiting",
            alarm_description="An upload could not be processed and is in the dead-letter queue: "
            "`retainwise dlq list`, fix, then `retainwise dlq redrive`.",
            metric=self.dead_letters.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            threshold=0,
            evaluation_periods=1,
            comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        self.dead_letter_alarm.add_alarm_action(cloudwatch_actions.SnsAction(self.alarms))


DATABASE_NAME = "retainwise"
OWNER_USER = "retainwise"  # the master user: owns the tables; only `migrate` logs in with it
APP_USER = "retainwise_app"  # every other job: rows (DML), no DDL; `migrate` creates the role
# the API: rows in every table; the app user may only read accounts and never api_keys
API_USER = "retainwise_api"


class Database(Construct):
    """RDS PostgreSQL in the isolated subnets; two generated secrets are the only ways in: the
    owner's (migrate) and the app user's (every other job)."""

    def __init__(self, scope: Construct, id: str, *, vpc: ec2.IVpc) -> None:
        super().__init__(scope, id)
        self.instance = rds.DatabaseInstance(
            self,
            "Postgres",
            engine=rds.DatabaseInstanceEngine.postgres(version=rds.PostgresEngineVersion.VER_16),
            instance_type=ec2.InstanceType.of(ec2.InstanceClass.T4G, ec2.InstanceSize.MEDIUM),
            vpc=vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PRIVATE_ISOLATED),
            credentials=rds.Credentials.from_generated_secret(OWNER_USER),
            database_name=DATABASE_NAME,
            allocated_storage=50,
            max_allocated_storage=500,
            storage_encrypted=True,
            multi_az=True,
            deletion_protection=True,
            backup_retention=Duration.days(14),
            removal_policy=RemovalPolicy.SNAPSHOT,
            cloudwatch_logs_exports=["postgresql"],
            auto_minor_version_upgrade=True,
            publicly_accessible=False,
        )
        self.secret = self.instance.secret
        # CloudFormation cannot run SQL: `migrate` creates this role (and sets its password) from
        # the secret; attaching it adds the instance's host and port, as in the owner's secret
        self.app_secret = rds.DatabaseSecret(
            self, "AppUser", username=APP_USER, dbname=DATABASE_NAME
        )
        self.app_login = self.app_secret.attach(self.instance)
        self.api_secret = rds.DatabaseSecret(
            self, "ApiUser", username=API_USER, dbname=DATABASE_NAME
        )
        self.api_login = self.api_secret.attach(self.instance)
