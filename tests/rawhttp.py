"""Requests written as bytes on a socket, for what an HTTP client library will not send: a chunked
flood, both framings at once, uploads held open together. Shared by the hostile-HTTP tests and
benchmarks/hostile_http.py."""

from __future__ import annotations

import select
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import pandas as pd

from retainwise.adapters import aws, db

MB = 2**20
FORM_FIELD = b"f=" + b"x" * (MB - 4) + b"&"  # one field just under Starlette's 1 MB part limit


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


def head(lines: str) -> bytes:
    """A request head from `\\n`-separated lines, ended by the blank line."""
    return lines.strip("\n").replace("\n", "\r\n").encode() + b"\r\n\r\n"


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0


def answer_of(sock: socket.socket, timeout: float = 30) -> bytes:
    """What the server sent, up to the end of its headers at least (0 status if nothing)."""
    sock.settimeout(timeout)
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer:
                break
    except (ConnectionResetError, TimeoutError):
        pass
    return answer


def flood(url: str, request_head: bytes, blocks: int, block: bytes) -> tuple[int, int]:
    """Send the head, then up to `blocks` chunks of `block`, stopping as soon as the server
    answers; returns its status and the body bytes sent by then."""
    sent, frame = 0, f"{len(block):x}\r\n".encode() + block + b"\r\n"
    with socket.create_connection(address(url), timeout=30) as sock:
        sock.sendall(request_head)
        for _ in range(blocks):
            if select.select([sock], [], [], 0)[0]:
                break
            try:
                sock.sendall(frame)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(block)
        else:
            sock.sendall(b"0\r\n\r\n")
        return status_of(answer_of(sock)), sent


def held_uploads(url: str, key: str, count: int, body: bytes) -> list[int]:
    """`count` raw uploads in flight together: each sends its head; those refused are answered
    before their body, the others wait for it, sent once every one has its head out."""
    request_head = head(
        f"POST /uploads HTTP/1.1\nHost: t\nAuthorization: Bearer {key}\n"
        f"Content-Type: text/csv\nContent-Length: {len(body)}\nConnection: close\n"
    )
    ready = threading.Barrier(count)

    def upload(_: int) -> int:
        with socket.create_connection(address(url), timeout=60) as sock:
            sock.sendall(request_head)
            answered = select.select([sock], [], [], 5)[0]
            ready.wait(60)
            if not answered:
                sock.sendall(body)
            return status_of(answer_of(sock, 60))

    with ThreadPoolExecutor(count) as pool:
        return sorted(pool.map(upload, range(count)))


def completed_upload(resources, account: str, rows: int) -> str:
    """A COMPLETED upload of `rows` scored customers, its results file in S3 as scoring writes
    it (`c0`, `c1`, ...), without running a model."""
    prediction_id = db.create_prediction(
        resources.engine, account=account, model_name="churn", input_key="uploads/x/input"
    )
    results = pd.DataFrame(
        {
            "customer_id": [f"c{i}" for i in range(rows)],
            "churn_probability": [i / rows for i in range(rows)],
            "churn_risk": ["LOW"] * rows,
            "predicted_churn": [0] * rows,
        }
    )
    key = f"results/{account}/{prediction_id}/results.csv"
    aws.put_bytes(
        resources.s3, resources.settings.bucket, key, results.to_csv(index=False).encode()
    )
    assert db.claim_prediction(resources.engine, prediction_id, "run")
    assert db.finish_prediction(
        resources.engine,
        prediction_id,
        "run",
        db.Status.COMPLETED,
        result_key=key,
        model_version="1",
        rows_total=rows,
        rows_scored=rows,
        rows_rejected=0,
    )
    return prediction_id
