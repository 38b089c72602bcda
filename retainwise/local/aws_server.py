"""The local stack's S3 and SQS: moto's server, with its S3 objects and its queues kept on disk.

moto keeps everything in memory, so `stack down` (or a reboot) lost every upload, result and
queued message while the database still pointed at them. Two kept pieces of moto bring them back,
both before the restarted server listens, so no client ever sees a half-restored store:

- S3: moto's own recorder appends each S3 write (PUT, POST, DELETE: objects and buckets) to
  `recording.jsonl`, and on start the recording is replayed into the fresh server. An S3 request
  replays exactly: the key and the bytes are in it (and a multipart upload's id is derived from
  the signed request, `pin_upload_ids`, so its replayed parts find their upload).
- SQS: SQS requests do not replay. A receipt handle is random, so a recorded DeleteMessage finds
  nothing to delete on replay; visibility timeouts and the redrive to the dead-letter queue
  depend on the clock at each receive; and the trigger's long poll every second would grow the
  recording forever. So after each SQS request that changed them, moto's own queue and message
  objects (`moto.sqs.models.Queue`, `Message`: id, body, receive count, first receive, sent
  time, visibility deadline, receipt handles) are written to `queues.json`, and on start they are
  put back into moto's backend. Messages in the queue and in the dead-letter queue keep their ids
  and receive counts; one in flight becomes visible when its visibility timeout runs out, as on
  AWS.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

WRITE_METHODS = {"PUT", "POST", "DELETE"}
QUEUES_FILE = "queues.json"
READ_ONLY_ACTIONS = ("Get", "List")  # SQS actions that change no queue: nothing to save
# what CreateQueue accepts back (the rest of `Queue.attributes` is computed: counts, ARN, times)
QUEUE_SETTINGS = (
    "DelaySeconds",
    "MaximumMessageSize",
    "MessageRetentionPeriod",
    "Policy",
    "ReceiveMessageWaitTimeSeconds",
    "RedrivePolicy",
    "VisibilityTimeout",
    "FifoQueue",
    "ContentBasedDeduplication",
    "DeduplicationScope",
    "FifoThroughputLimit",
    "KmsMasterKeyId",
    "KmsDataKeyReusePeriodSeconds",
    "SqsManagedSseEnabled",
)


def service_of(headers) -> str:
    """The AWS service a signed request is for, from its SigV4 credential scope."""
    authorization = headers.get("Authorization", "")
    scope = authorization.partition("Credential=")[2].split(",")[0].split("/")
    return scope[3] if len(scope) > 3 else ""


_upload_id = threading.local()  # the multipart upload id the current request's upload gets


def upload_id_of(request) -> str | None:
    """For CreateMultipartUpload, an upload id derived from the signed request itself (its
    signature, SDK invocation id and attempt), so a replay of the recording gets the same id."""
    if request.method != "POST" or "uploads" not in request.args:
        return None
    signed = "|".join(
        request.headers.get(h, "")
        for h in ("Authorization", "amz-sdk-invocation-id", "amz-sdk-request", "X-Amz-Date")
    )
    return hashlib.sha256(f"{signed}|{request.path}".encode()).hexdigest()


def pin_upload_ids() -> None:
    """moto draws multipart upload ids from os.urandom, so a replayed CreateMultipartUpload got a
    new id and the recorded UploadPart/Complete that followed failed (NoSuchUpload): every file
    the API or the web app streamed in was lost on restart. Use `upload_id_of` instead."""
    from moto.s3.models import FakeMultipart

    init = FakeMultipart.__init__

    def init_with_pinned_id(self, *args, **kwargs):
        init(self, *args, **kwargs)
        self.id = getattr(_upload_id, "value", None) or self.id

    FakeMultipart.__init__ = init_with_pinned_id  # type: ignore[method-assign]  # moto's hook


def keep_s3_writes_only() -> None:
    """Filter moto's recorder to S3 writes, one whole line at a time across server threads.

    The hook runs for every request (replayed ones too) on the thread that then handles it, so
    it is also where the upload id of a CreateMultipartUpload is pinned.
    """
    from moto.moto_api._internal.recorder.models import Recorder

    record = Recorder._record_request
    lock = threading.Lock()

    def record_s3_write(self, request, body=None):
        _upload_id.value = None
        if request.method in WRITE_METHODS and service_of(request.headers) == "s3":
            _upload_id.value = upload_id_of(request)
            with lock:
                record(self, request, body)

    Recorder._record_request = record_s3_write  # type: ignore[method-assign]  # moto's hook


def queue_state() -> dict:
    """Every queue in moto's SQS backends with its settings and its messages, as JSON values."""
    from moto.sqs.models import sqs_backends

    queues = []
    for account, regions in list(dict.items(sqs_backends)):
        for region, backend in list(dict.items(regions)):
            for queue in list(backend.queues.values()):
                attributes = queue.attributes
                queues.append(
                    {
                        "account": account,
                        "region": region,
                        "name": queue.name,
                        "settings": {
                            k: attributes[k]
                            for k in QUEUE_SETTINGS
                            if attributes.get(k) is not None
                        },
                        "tags": dict(queue.tags),
                        "messages": [dict(vars(m)) for m in list(queue._messages)],
                    }
                )
    return {"queues": queues}


def restore_queues(state: dict) -> int:
    """Put kept queues and their messages back into moto's SQS backends; returns the messages.

    Queues without a redrive policy come first: a queue's dead-letter queue must exist before it.
    """
    from moto.sqs.models import Message, sqs_backends

    count = 0
    for kept in sorted(state["queues"], key=lambda q: "RedrivePolicy" in q["settings"]):
        backend = sqs_backends[kept["account"]][kept["region"]]
        queue = backend.create_queue(kept["name"], tags=kept["tags"] or None, **kept["settings"])
        for fields in kept["messages"]:
            message = Message.__new__(Message)
            message.__dict__.update(fields)
            queue._messages.append(message)  # type: ignore[arg-type]  # __new__ says BaseModel
            count += 1
    return count


def _json_bytes(value):
    if isinstance(value, bytes):  # a Binary message attribute
        return {"__bytes__": base64.b64encode(value).decode("ascii")}
    raise TypeError(f"cannot keep {type(value).__name__}")


def _bytes_json(value: dict):
    return base64.b64decode(value["__bytes__"]) if set(value) == {"__bytes__"} else value


class QueueKeeper:
    """Writes `queue_state()` to a file whenever it changed (a new file, then a rename, so a
    crash leaves the old state or the new one); the trigger's empty polls write nothing."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.written = path.read_text() if path.exists() else None

    def load(self) -> int:
        if self.written is None:
            return 0
        return restore_queues(json.loads(self.written, object_hook=_bytes_json))

    def save(self) -> None:
        with self.lock:
            text = json.dumps(queue_state(), default=_json_bytes)
            if text != self.written:
                partial = self.path.with_suffix(".partial")
                partial.write_text(text)
                os.replace(partial, self.path)
                self.written = text

    def wrap(self, app):
        """The WSGI app, saving the queues after each SQS request and before its answer is sent:
        a message the client was told is sent (or deleted) is on disk by then."""

        def keeping_queues(environ, start_response):
            response = app(environ, start_response)
            action = environ.get("HTTP_X_AMZ_TARGET", "").rpartition(".")[2]
            if service_of(
                {"Authorization": environ.get("HTTP_AUTHORIZATION", "")}
            ) == "sqs" and not action.startswith(READ_ONLY_ACTIONS):
                self.save()
            return response

        return keeping_queues


def replay(app, recording: Path) -> int:
    """Send each recorded request to the app in order, as moto's replay does but without HTTP;
    one that fails is skipped with a line in the log rather than keeping the server down."""
    if not recording.exists():
        return 0
    from werkzeug.test import Client

    client = Client(app)
    count = 0
    with recording.open() as lines:
        for line in lines:
            entry = json.loads(line)
            body = entry.get("body") or b""
            if entry.get("body_encoded"):
                body = base64.b64decode(body)
            url = urlsplit(entry["url"])
            headers = {
                k: v
                for k, v in entry["headers"].items()
                if k.lower() not in {"transfer-encoding", "content-length"}
            }
            try:
                client.open(
                    url.path,
                    method=entry["method"],
                    query_string=url.query,
                    headers=headers,
                    data=body,
                )
            except Exception as exc:  # e.g. a part of an upload recorded before pin_upload_ids
                print(f"skipped recorded {entry['method']} {url.path}: {exc!r}", flush=True)
                continue
            count += 1
    return count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=4566)
    parser.add_argument("--data", type=Path, required=True, help="where the recording lives")
    args = parser.parse_args(argv)
    args.data.mkdir(parents=True, exist_ok=True)
    recording = args.data / "recording.jsonl"
    os.environ["MOTO_RECORDER_FILEPATH"] = str(recording)
    os.environ.setdefault("MOTO_PORT", str(args.port))
    keep_s3_writes_only()
    pin_upload_ids()
    from moto.moto_api import recorder
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    app = DomainDispatcherApplication(create_backend_app)
    keeper = QueueKeeper(args.data / QUEUES_FILE)
    print(f"restored {keeper.load()} queued messages from {keeper.path}", flush=True)
    recorder.stop_recording()
    print(f"replayed {replay(app, recording)} recorded S3 writes from {recording}", flush=True)
    recorder.start_recording()
    run_simple(
        args.host, args.port, keeper.wrap(app), threaded=True, request_handler=MotoRequestHandler
    )


if __name__ == "__main__":
    main()
