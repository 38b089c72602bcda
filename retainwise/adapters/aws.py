"""S3 and SQS: one code path for moto on loopback and real AWS, chosen by AWS_ENDPOINT_URL."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, BinaryIO, TypedDict

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config

from retainwise.config.settings import Settings

if TYPE_CHECKING:
    import numpy as np

# boto3's default (10 parts of 8 MB in flight) alone would take 80 MB of a 1 GB budget
UPLOAD_CONFIG = TransferConfig(max_concurrency=3, multipart_chunksize=8 * 2**20)
READ_BLOCK = 4 * 2**20
# how long a received message stays hidden; the trigger gives up on a busy Prefect API well before
# (Settings.trigger_create_timeout), so a message is never handled twice at the same time
VISIBILITY_TIMEOUT_SECONDS = 30


def retry_config(settings: Settings) -> Config:
    """The one retry policy of every client: botocore's standard mode (throttling, 5xx and
    connection errors, with backoff and a retry quota) up to Settings.aws_max_attempts requests."""
    return Config(
        retries={"mode": "standard", "max_attempts": settings.aws_max_attempts},
        connect_timeout=5,
        read_timeout=30,
    )


def client(service: str, settings: Settings) -> Any:
    return boto3.client(
        service,
        region_name=settings.aws_region,
        endpoint_url=settings.aws_endpoint_url,
        config=retry_config(settings),
    )


@dataclass(frozen=True)
class UploadMessage:
    """What an upload message says; `attempt` is set when the reaper sends it again."""

    prediction_id: str
    account: str | None = None
    model: str | None = None
    attempt: int | None = None

    def to_json(self) -> str:
        body: dict[str, str | int | None] = {
            "prediction_id": self.prediction_id,
            "account": self.account,
            "model": self.model,
        }
        if self.attempt is not None:
            body["attempt"] = self.attempt
        return json.dumps(body)

    @classmethod
    def from_json(cls, body: str) -> UploadMessage | None:
        """The message, or None if it is not one (left for the DLQ): only the prediction id is
        required, the rest is read where it has the right type."""
        try:
            payload = json.loads(body)
        except json.JSONDecodeError:
            return None
        if not isinstance(payload, dict) or not isinstance(payload.get("prediction_id"), str):
            return None
        account, model, attempt = (payload.get(k) for k in ("account", "model", "attempt"))
        return cls(
            payload["prediction_id"],
            account if isinstance(account, str) else None,
            model if isinstance(model, str) else None,
            attempt if isinstance(attempt, int) else None,
        )


@dataclass(frozen=True)
class QueueMessage:
    """A received SQS message: what the trigger and the DLQ tools read of it."""

    message_id: str
    receipt_handle: str
    body: str
    receive_count: int = 0
    sent_timestamp: str | None = None

    @classmethod
    def from_sqs(cls, raw: dict[str, Any]) -> QueueMessage:
        """From one entry of receive_message's `Messages` (the JSON edge)."""
        attributes = raw.get("Attributes", {})
        return cls(
            message_id=raw["MessageId"],
            receipt_handle=raw["ReceiptHandle"],
            body=raw.get("Body", ""),
            receive_count=int(attributes.get("ApproximateReceiveCount", 0)),
            sent_timestamp=attributes.get("SentTimestamp"),
        )

    def upload(self) -> UploadMessage | None:
        return UploadMessage.from_json(self.body)

    @property
    def prediction_id(self) -> str | None:
        upload = self.upload()
        return upload.prediction_id if upload else None


@dataclass(frozen=True)
class DeadLetter:
    """What `retainwise dlq list` shows of a message in the DLQ."""

    message_id: str
    prediction_id: str | None  # None when the body is no upload message
    receive_count: int
    sent_timestamp: str | None
    body: str  # its first 500 characters

    @classmethod
    def of(cls, message: QueueMessage) -> DeadLetter:
        return cls(
            message.message_id,
            message.prediction_id,
            message.receive_count,
            message.sent_timestamp,
            message.body[:500],
        )

    def to_json(self) -> dict[str, str | int | None]:
        return {
            "message_id": self.message_id,
            "prediction_id": self.prediction_id,
            "receive_count": self.receive_count,
            "sent_timestamp": self.sent_timestamp,
            "body": self.body,
        }


class CompletedPart(TypedDict):
    """One part of a multipart upload as complete_multipart_upload takes it (S3's JSON)."""

    PartNumber: int
    ETag: str


@dataclass(frozen=True)
class Queue:
    """The upload queue: SQS client plus the URLs it needs, resolved once."""

    sqs: Any
    url: str
    dead_letter_url: str

    def send(self, prediction_id: str, account: str, model: str, attempt: int | None = None) -> str:
        """Queue an upload for scoring; returns the SQS message id."""
        body = UploadMessage(prediction_id, account, model, attempt).to_json()
        return str(self.sqs.send_message(QueueUrl=self.url, MessageBody=body)["MessageId"])

    def receive(self, wait_seconds: int = 1, max_messages: int = 10) -> list[QueueMessage]:
        response = self.sqs.receive_message(
            QueueUrl=self.url,
            WaitTimeSeconds=wait_seconds,
            MaxNumberOfMessages=max_messages,
            MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
        )
        return [QueueMessage.from_sqs(m) for m in response.get("Messages", [])]

    def delete(self, receipt_handle: str) -> None:
        self.sqs.delete_message(QueueUrl=self.url, ReceiptHandle=receipt_handle)


def open_queue(settings: Settings, sqs: Any | None = None) -> Queue:
    sqs = sqs or client("sqs", settings)
    url = sqs.get_queue_url(QueueName=settings.queue_name)["QueueUrl"]
    dlq = sqs.get_queue_url(QueueName=settings.dead_letter_queue_name)["QueueUrl"]
    return Queue(sqs=sqs, url=url, dead_letter_url=dlq)


def ensure_resources(settings: Settings) -> Queue:
    """Create the bucket, the queue and its dead-letter queue if absent (local stack and tests)."""
    s3 = client("s3", settings)
    existing = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
    if settings.bucket not in existing:
        s3.create_bucket(Bucket=settings.bucket)
    sqs = client("sqs", settings)
    dlq_url = sqs.create_queue(QueueName=settings.dead_letter_queue_name)["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    redrive = json.dumps(
        {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(settings.max_receive_count)}
    )
    sqs.create_queue(
        QueueName=settings.queue_name,
        Attributes={"RedrivePolicy": redrive, "VisibilityTimeout": str(VISIBILITY_TIMEOUT_SECONDS)},
    )
    return open_queue(settings, sqs)


def put_bytes(s3: Any, bucket: str, key: str, body: bytes, content_type: str = "text/csv") -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def put_objects(s3: Any, bucket: str, objects: list[tuple[str, bytes, str]]) -> None:
    """Several (key, body, content type) objects sent at once: each put is a round trip, and
    the bodies are in memory already. Raises the first failure once every put has ended."""
    if len(objects) < 2:
        for key, body, content_type in objects:
            put_bytes(s3, bucket, key, body, content_type)
        return
    with ThreadPoolExecutor(len(objects), thread_name_prefix="s3-put") as pool:
        puts = [
            pool.submit(put_bytes, s3, bucket, key, body, content_type)
            for key, body, content_type in objects
        ]
    for put in puts:
        put.result()


def get_bytes(s3: Any, bucket: str, key: str) -> bytes:
    body: bytes = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    return body


def object_size(s3: Any, bucket: str, key: str) -> int:
    return int(s3.head_object(Bucket=bucket, Key=key)["ContentLength"])


def object_exists(s3: Any, bucket: str, key: str) -> bool:
    from botocore.exceptions import ClientError

    try:
        s3.head_object(Bucket=bucket, Key=key)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
            return False
        raise
    return True


def head_bytes(s3: Any, bucket: str, key: str, size: int = 4096) -> bytes:
    head: bytes = s3.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{size - 1}")["Body"].read()
    return head


def iter_blocks(s3: Any, bucket: str, key: str) -> Iterator[bytes]:
    """The object as blocks of READ_BLOCK bytes; the connection is closed even if the reader
    stops."""
    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        yield from body.iter_chunks(READ_BLOCK)
    finally:
        body.close()


@dataclass(frozen=True)
class S3Object:
    """An uploaded object as a scoring source (retainwise.uploads.scoring.Source)."""

    s3: Any
    bucket: str
    key: str

    def size(self) -> int:
        return object_size(self.s3, self.bucket, self.key)

    def head(self, size: int = 4096) -> bytes:
        return head_bytes(self.s3, self.bucket, self.key, size)

    def blocks(self) -> Iterator[bytes]:
        return iter_blocks(self.s3, self.bucket, self.key)

    def read(self) -> bytes:
        return get_bytes(self.s3, self.bucket, self.key)


def csv_column(s3: Any, bucket: str, key: str, column: str) -> np.ndarray:
    """One float column of a CSV object, parsed by Arrow as the object streams in: a 10M-row
    results file is ~250 MB of text, its probabilities 80 MB of float64."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        reader = pa_csv.open_csv(
            body,
            read_options=pa_csv.ReadOptions(block_size=READ_BLOCK, use_threads=False),
            convert_options=pa_csv.ConvertOptions(
                include_columns=[column], column_types={column: pa.float64()}
            ),
            memory_pool=pa.system_memory_pool(),
        )  # returned to the OS, not kept in a pool
        parts = [batch.column(0).to_numpy(zero_copy_only=False) for batch in reader]
    finally:
        body.close()
    return np.concatenate(parts) if parts else np.empty(0)


def upload_file(
    s3: Any, bucket: str, key: str, handle: BinaryIO, content_type: str = "text/csv"
) -> None:
    """A file of any size, as a multipart upload with a few parts in flight (bounded memory)."""
    handle.seek(0)
    s3.upload_fileobj(
        handle, bucket, key, ExtraArgs={"ContentType": content_type}, Config=UPLOAD_CONFIG
    )


def _take_dead_letters(queue: Queue, max_messages: int) -> list[QueueMessage]:
    """Receive the whole DLQ (hidden while we look), each message once with its latest handle."""
    taken: dict[str, QueueMessage] = {}
    empty_receives = 0
    while len(taken) < max_messages and empty_receives < 2:
        batch = [
            QueueMessage.from_sqs(m)
            for m in queue.sqs.receive_message(
                QueueUrl=queue.dead_letter_url,
                MaxNumberOfMessages=10,
                WaitTimeSeconds=0,
                VisibilityTimeout=60,
                MessageSystemAttributeNames=["ApproximateReceiveCount", "SentTimestamp"],
            ).get("Messages", [])
        ]
        fresh = [m for m in batch if m.message_id not in taken]
        empty_receives = 0 if fresh else empty_receives + 1
        taken.update({m.message_id: m for m in batch})
    return list(taken.values())


def _release(queue: Queue, messages: list[QueueMessage]) -> None:
    """Looked at, not taken: visible again in the DLQ right away."""
    for m in messages:
        queue.sqs.change_message_visibility(
            QueueUrl=queue.dead_letter_url, ReceiptHandle=m.receipt_handle, VisibilityTimeout=0
        )


def list_dead_letters(queue: Queue, max_messages: int = 100) -> list[DeadLetter]:
    """What sits in the DLQ: message id, prediction id (if parseable), receives, body."""
    messages = _take_dead_letters(queue, max_messages)
    _release(queue, messages)
    return [DeadLetter.of(m) for m in messages]


def redrive_dead_letters(
    queue: Queue, ids: set[str] | None = None, max_messages: int = 1000
) -> list[str]:
    """Move DLQ messages (all, or those whose message or prediction id is in `ids`) back.

    Sent to the upload queue before it is deleted from the DLQ, so a crash duplicates, never loses.
    """
    messages = _take_dead_letters(queue, max_messages)
    chosen = [m for m in messages if ids is None or {m.message_id, m.prediction_id} & ids]
    _release(queue, [m for m in messages if m not in chosen])
    for m in chosen:
        queue.sqs.send_message(QueueUrl=queue.url, MessageBody=m.body)
        queue.sqs.delete_message(QueueUrl=queue.dead_letter_url, ReceiptHandle=m.receipt_handle)
    return [m.message_id for m in chosen]


class MultipartWriter:
    """One S3 object written part by part as the bytes arrive (an HTTP body, or results as
    chunks are scored), so nothing holds the whole file.

    Up to `parts_in_flight` parts are sent at once in threads while the caller makes the next
    one, so the bytes held stay under (parts_in_flight + 1) x PART_BYTES. `write` cuts parts
    itself (file-like); `write_part` sends one as given. As a context manager it completes the
    object on success and `abort`s it (drops the parts) on an exception.
    """

    PART_BYTES = UPLOAD_CONFIG.multipart_chunksize  # S3 needs >= 5 MB for every part but the last

    def __init__(
        self,
        s3: Any,
        bucket: str,
        key: str,
        content_type: str = "application/octet-stream",
        parts_in_flight: int = 2,
    ) -> None:
        self.s3, self.bucket, self.key = s3, bucket, key
        self.upload_id = s3.create_multipart_upload(
            Bucket=bucket, Key=key, ContentType=content_type
        )["UploadId"]
        self.parts: list[CompletedPart] = []
        self.parts_in_flight = max(1, parts_in_flight)
        self._sending: deque[Future[CompletedPart]] = deque()
        self._pool = (
            ThreadPoolExecutor(self.parts_in_flight, thread_name_prefix="s3-part")
            if self.parts_in_flight > 1
            else None
        )
        self._buffer = bytearray()
        self._numbered = 0
        self.closed = False

    def write(self, data: bytes) -> int:
        """Buffer `data`; each PART_BYTES gathered goes out as a part."""
        self._buffer += data
        if len(self._buffer) >= self.PART_BYTES:
            part, self._buffer = bytes(self._buffer), bytearray()
            self.write_part(part)
        return len(data)

    def write_part(self, data: bytes) -> None:
        """Send one part; returns once it is under way, or, with parts_in_flight parts already
        on the wire, once the oldest has arrived."""
        self._numbered += 1
        if self._pool is None:
            self.parts.append(self._upload(self._numbered, data))
            return
        while len(self._sending) >= self.parts_in_flight:
            self.parts.append(self._sending.popleft().result())
        self._sending.append(self._pool.submit(self._upload, self._numbered, data))

    def _upload(self, number: int, data: bytes) -> CompletedPart:
        etag = self.s3.upload_part(
            Bucket=self.bucket, Key=self.key, UploadId=self.upload_id, PartNumber=number, Body=data
        )["ETag"]
        return {"PartNumber": number, "ETag": etag}

    def _drain(self) -> None:
        try:
            while self._sending:
                self.parts.append(self._sending.popleft().result())
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)

    def complete(self) -> None:
        """Send what is buffered as the last part and join the parts; on failure, `abort`."""
        try:
            if self._buffer or not self._numbered:  # S3 refuses an upload of no parts
                part, self._buffer = bytes(self._buffer), bytearray()
                self.write_part(part)
            self._drain()
            self.s3.complete_multipart_upload(
                Bucket=self.bucket,
                Key=self.key,
                UploadId=self.upload_id,
                MultipartUpload={"Parts": sorted(self.parts, key=lambda p: p["PartNumber"])},
            )
        except BaseException:
            self.abort()
            raise
        self.closed = True

    def abort(self) -> None:
        if self.closed:
            return
        self.closed, self._buffer = True, bytearray()
        try:
            self._drain()
        except Exception:  # noqa: BLE001  the parts are dropped below whatever became of them
            pass
        self.s3.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=self.upload_id)

    def __enter__(self) -> MultipartWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if kind is not None:
            self.abort()
        elif not self.closed:
            self.complete()
