"""S3 writes against moto in server mode: multipart objects with parts in flight, puts at once."""

from __future__ import annotations

import boto3
import pytest

from retainwise.adapters import aws

MIB = 2**20


@pytest.fixture
def s3(moto_endpoint):
    client = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    client.create_bucket(Bucket="writes")
    return client


def body(s3, key: str) -> bytes:
    return s3.get_object(Bucket="writes", Key=key)["Body"].read()


def open_uploads(s3) -> list:
    return s3.list_multipart_uploads(Bucket="writes").get("Uploads", [])


@pytest.mark.parametrize("parts_in_flight", [1, 2, 3])
def test_written_bytes_arrive_whole_and_in_order_with_parts_in_flight(s3, parts_in_flight):
    pieces = [bytes([65 + i % 26]) * (MIB + i) for i in range(17)]  # 17 MiB in uneven writes
    with aws.MultipartWriter(
        s3, "writes", "many.csv", "text/csv", parts_in_flight=parts_in_flight
    ) as writer:
        writer.PART_BYTES = 5 * MIB  # S3's smallest part, so the object has several
        for piece in pieces:
            writer.write(piece)
    assert len(writer.parts) == 4
    assert [p["PartNumber"] for p in writer.parts] == [1, 2, 3, 4]
    assert body(s3, "many.csv") == b"".join(pieces)
    assert s3.head_object(Bucket="writes", Key="many.csv")["ContentType"] == "text/csv"
    assert not open_uploads(s3)


def test_nothing_written_is_an_empty_object(s3):
    with aws.MultipartWriter(s3, "writes", "empty.csv") as writer:
        pass
    assert writer.closed and body(s3, "empty.csv") == b""


def test_an_error_while_writing_drops_the_parts_and_leaves_no_object(s3):
    with pytest.raises(RuntimeError):
        with aws.MultipartWriter(s3, "writes", "broken.csv") as writer:
            writer.PART_BYTES = 5 * MIB
            writer.write(b"x" * (6 * MIB))
            raise RuntimeError("scoring failed")
    assert not open_uploads(s3)
    assert not aws.object_exists(s3, "writes", "broken.csv")


def test_an_aborted_writer_is_not_completed_on_exit(s3):
    with aws.MultipartWriter(s3, "writes", "failed-upload.csv") as writer:
        writer.write(b"customer_id,churn_probability\n")
        writer.abort()
    assert not aws.object_exists(s3, "writes", "failed-upload.csv")
    assert not open_uploads(s3)


def test_put_objects_puts_each_with_its_content_type(s3):
    objects = [
        (f"report-{i}", f"body {i}".encode(), kind)
        for i, kind in enumerate(["text/csv", "application/json", "text/html"])
    ]
    aws.put_objects(s3, "writes", objects)
    for key, data, kind in objects:
        assert body(s3, key) == data
        assert s3.head_object(Bucket="writes", Key=key)["ContentType"] == kind


def test_put_objects_raises_a_failed_put_after_the_others_ran(s3):
    with pytest.raises(s3.exceptions.NoSuchBucket):
        aws.put_objects(s3, "no-such-bucket", [("a", b"1", "text/csv"), ("b", b"2", "text/csv")])


def test_a_csv_column_is_read_as_floats_while_the_object_streams(s3):
    lines = ["customer_id,churn_probability,churn_risk"] + [
        f"c{i},{i / 300_000:.6f},LOW" for i in range(300_000)
    ]  # ~7 MB: several read blocks
    aws.put_bytes(s3, "writes", "results.csv", ("\n".join(lines) + "\n").encode())
    column = aws.csv_column(s3, "writes", "results.csv", "churn_probability")
    assert column.dtype == "float64" and len(column) == 300_000
    assert column[12345] == float(f"{12345 / 300_000:.6f}")
    aws.put_bytes(s3, "writes", "header-only.csv", b"customer_id,churn_probability\n")
    assert len(aws.csv_column(s3, "writes", "header-only.csv", "churn_probability")) == 0


def test_an_upload_message_body_is_pinned_byte_for_byte():
    assert aws.UploadMessage("p-1", "acme", "churn").to_json() == (
        '{"prediction_id": "p-1", "account": "acme", "model": "churn"}'
    )
    assert aws.UploadMessage("p-1", "acme", "churn", attempt=2).to_json() == (
        '{"prediction_id": "p-1", "account": "acme", "model": "churn", "attempt": 2}'
    )


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '{"prediction_id": "p-1", "account": "acme", "model": "churn", "attempt": 2}',
            aws.UploadMessage("p-1", "acme", "churn", 2),
        ),
        ('{"prediction_id": "p-1"}', aws.UploadMessage("p-1")),  # only the id is required
        ('{"prediction_id": "p-1", "account": 7}', aws.UploadMessage("p-1")),  # wrong type: unread
        ("{not json", None),
        ('["p-1"]', None),
        ('{"prediction_id": 1}', None),
    ],
)
def test_an_upload_message_is_read_from_any_body(body, expected):
    assert aws.UploadMessage.from_json(body) == expected


def test_a_received_message_and_its_dead_letter_line():
    raw = {
        "MessageId": "m-1",
        "ReceiptHandle": "h-1",
        "Body": '{"prediction_id": "p-1"}' + " " * 600,
        "Attributes": {"ApproximateReceiveCount": "3", "SentTimestamp": "1700000000000"},
    }
    message = aws.QueueMessage.from_sqs(raw)
    assert (message.receive_count, message.prediction_id) == (3, "p-1")
    line = aws.DeadLetter.of(message).to_json()
    assert list(line) == ["message_id", "prediction_id", "receive_count", "sent_timestamp", "body"]
    assert line["sent_timestamp"] == "1700000000000" and line["body"] == raw["Body"][:500]
    bare = aws.QueueMessage.from_sqs({"MessageId": "m-2", "ReceiptHandle": "h-2", "Body": "x"})
    assert aws.DeadLetter.of(bare).to_json() == {
        "message_id": "m-2",
        "prediction_id": None,
        "receive_count": 0,
        "sent_timestamp": None,
        "body": "x",
    }
