"""The local stack's S3 and SQS: moto's server, with S3 writes kept on disk by moto's recorder.

moto keeps everything in memory, so `stack down` (or a reboot) lost every upload and result while
the database still pointed at them. Here moto's own recorder appends each S3 write (PUT, POST,
DELETE: objects and buckets) to `recording.jsonl` under the stack's home, and on start the
recording is replayed into the fresh server, in-process and before it listens, so no client ever
sees a half-restored store. Reads and SQS calls (the trigger polls every second) are not
recorded; queued messages are restored from the database instead (`stack.restore_queue`).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import threading
from pathlib import Path
from urllib.parse import urlsplit

WRITE_METHODS = {"PUT", "POST", "DELETE"}


def service_of(headers) -> str:
    """The AWS service a signed request is for, from its SigV4 credential scope."""
    authorization = headers.get("Authorization", "")
    scope = authorization.partition("Credential=")[2].split(",")[0].split("/")
    return scope[3] if len(scope) > 3 else ""


def keep_s3_writes_only() -> None:
    """Filter moto's recorder to S3 writes, one whole line at a time across server threads."""
    from moto.moto_api._internal.recorder.models import Recorder

    record = Recorder._record_request
    lock = threading.Lock()

    def record_s3_write(self, request, body=None):
        if request.method in WRITE_METHODS and service_of(request.headers) == "s3":
            with lock:
                record(self, request, body)

    Recorder._record_request = record_s3_write


def replay(app, recording: Path) -> int:
    """Send each recorded request to the app in order, as moto's replay does but without HTTP."""
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
            headers = {k: v for k, v in entry["headers"].items()
                       if k.lower() not in {"transfer-encoding", "content-length"}}
            client.open(url.path, method=entry["method"], query_string=url.query,
                        headers=headers, data=body)
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
    from moto.moto_api import recorder
    from moto.server import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import run_simple

    app = DomainDispatcherApplication(create_backend_app)
    recorder.stop_recording()
    print(f"replayed {replay(app, recording)} recorded S3 writes from {recording}", flush=True)
    recorder.start_recording()
    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
