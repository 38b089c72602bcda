"""One task role per job, each allowed exactly what its job does and nothing else.

Database access is not IAM: a job reaches PostgreSQL only if its task definition injects a
database secret (through its execution role): the owner's for `migrate`, the rows-only app user's
for every other job. So every role here is about S3, SQS, ECS and CloudWatch.
"""

from __future__ import annotations

from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from deployments.cdk.data import MODELS_PREFIX, RESULTS_PREFIX, UPLOADS_PREFIX
from retainwise.adapters import scaling

TASKS = iam.ServicePrincipal("ecs-tasks.amazonaws.com")
# writes go through adapters.aws.MultipartWriter, which aborts what it cannot complete
MULTIPART_WRITE = ["s3:PutObject", "s3:AbortMultipartUpload"]


class JobRoles(Construct):
    """`scoring`, `runner`, `training`, `monitor`, `migrate`, `trigger`, `api`, `worker`,
    `webhooks` task roles (reap-stale runs in the runner, under its role)."""

    def __init__(
        self,
        scope: Construct,
        id: str,
        *,
        uploads: s3.IBucket,
        models: s3.IBucket,
        queue: sqs.IQueue,
        dead_letters: sqs.IQueue,
    ) -> None:
        super().__init__(scope, id)
        # every queue user opens both queues by name (retainwise.adapters.aws.open_queue)
        self._open_queues = iam.PolicyStatement(
            actions=["sqs:GetQueueUrl"], resources=[queue.queue_arn, dead_letters.queue_arn]
        )
        # scoring parses untrusted uploads: it reads uploads and models, writes results, no more
        self.scoring = self._role("Scoring", "score-upload-large (one Fargate task per file)")
        self._score(self.scoring, uploads, models)

        # the warm runner executes score-upload runs and the reaper's sweeps in-process: scoring's
        # grants, its waiting-runs metric, and sending a crashed upload's message again
        self.runner = self._role("Runner", "the warm runner (score-upload, reap-stale)")
        self._score(self.runner, uploads, models)
        self.runner.add_to_policy(
            iam.PolicyStatement(
                actions=["cloudwatch:PutMetricData"],
                resources=["*"],
                conditions={"StringEquals": {"cloudwatch:namespace": scaling.NAMESPACE}},
            )
        )
        queue.grant_send_messages(self.runner)
        self.runner.add_to_policy(self._open_queues)

        # training reads the labeled CSV it is given under uploads/ and writes model versions
        self.training = self._role("Training", "train-model")
        self._objects(self.training, ["s3:GetObject"], uploads, UPLOADS_PREFIX)
        self._read_models(self.training, models)
        self._objects(self.training, ["s3:PutObject"], models, MODELS_PREFIX)

        # monitor reads rows (metrics, drift, outcomes) from the database and each version's
        # profile from MLflow's artifact store; it reads no upload or result and writes no object
        self.monitor = self._role("Monitor", "monitor")
        self._read_models(self.monitor, models)

        # migrate only talks to PostgreSQL (alembic DDL): no AWS permission at all
        self.migrate = self._role("Migrate", "migrate (alembic upgrade)")

        # the trigger reads each message and deletes it once its flow run exists; it routes by the
        # object's size (HEAD, which IAM grants through s3:GetObject)
        self.trigger = self._role("Trigger", "the SQS trigger")
        self._objects(self.trigger, ["s3:GetObject"], uploads, UPLOADS_PREFIX)
        self.trigger.add_to_policy(
            iam.PolicyStatement(
                actions=[
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                ],
                resources=[queue.queue_arn],
            )
        )
        self.trigger.add_to_policy(self._open_queues)

        # the API/web app stores uploads (multipart: a refused or dropped upload is aborted),
        # queues them and serves results; its monitoring page reads each version's thresholds
        # from MLflow's artifacts (read-only)
        self.api = self._role("Api", "the API and web app")
        self._objects(self.api, MULTIPART_WRITE, uploads, UPLOADS_PREFIX)
        self._objects(self.api, ["s3:GetObject"], uploads, RESULTS_PREFIX)
        self._read_models(self.api, models)
        queue.grant_send_messages(self.api)
        self.api.add_to_policy(self._open_queues)

        # the prefect-aws worker starts flow tasks; PassRole is added per job role it may hand on
        self.worker = self._role("EcsWorker", "the prefect-aws ECS worker")

        # the webhook deliverer reads the outbox and POSTs to customers' URLs: the database and
        # the internet only, so no AWS permission at all (its secrets come through ECS)
        self.webhooks = self._role("Webhooks", "the webhook deliverer")

    def _role(self, id: str, job: str) -> iam.Role:
        return iam.Role(self, id, assumed_by=TASKS, description=f"RetainWise task role: {job}")

    @staticmethod
    def _objects(role: iam.IRole, actions: list[str], bucket: s3.IBucket, prefix: str) -> None:
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=actions, resources=[bucket.arn_for_objects(f"{prefix}*")])
        )

    @classmethod
    def _score(cls, role: iam.IRole, uploads: s3.IBucket, models: s3.IBucket) -> None:
        cls._objects(role, ["s3:GetObject"], uploads, UPLOADS_PREFIX)
        # the flow reads its results back to store the per-upload monitoring figures
        cls._objects(role, ["s3:GetObject", *MULTIPART_WRITE], uploads, RESULTS_PREFIX)
        cls._read_models(role, models)

    @classmethod
    def _read_models(cls, role: iam.IRole, models: s3.IBucket) -> None:
        """MLflow lists a version's artifacts before it downloads them."""
        cls._objects(role, ["s3:GetObject"], models, MODELS_PREFIX)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[models.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{MODELS_PREFIX}*"]}},
            )
        )

    def by_job(self) -> dict[str, iam.Role]:
        return {
            "scoring": self.scoring,
            "runner": self.runner,
            "training": self.training,
            "monitor": self.monitor,
            "migrate": self.migrate,
            "trigger": self.trigger,
            "api": self.api,
            "worker": self.worker,
            "webhooks": self.webhooks,
        }
