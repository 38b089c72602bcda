"""Issue 21's "done when", on a fresh local stack (moto, Prefect server, API, runner, webhook
deliverer, trigger), through the HTTP API as a customer would:

- a webhook set for the account receives a signed `upload.completed`; seconds from COMPLETED
  (the row's completed_at) to its arrival, the signature checked by the Standard Webhooks library
  and by the spec's algorithm written out;
- a Parquet upload of the same rows as a CSV upload scores to the same probabilities;
- `?format=parquet` on results and on the actions list answers Parquet; the account's carried
  columns come back after the scored ones, as text.

    python benchmarks/integrations_done.py [--rows 2000]

Uses its own RETAINWISE_HOME and free ports, and stops every process it started. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import io
import json
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402

FINAL = {"COMPLETED", "FAILED"}


class Receiver:
    """A webhook receiver on loopback: keeps each POST's arrival time, headers and body."""

    def __init__(self) -> None:
        self.got: list[tuple[float, dict[str, str], str]] = []
        got = self.got

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                got.append((time.time(), dict(self.headers), body.decode()))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/rw"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def event_for(self, prediction_id: str, timeout: float) -> tuple[float, dict[str, str], str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for arrived, headers, body in self.got:
                if json.loads(body)["data"].get("prediction_id") == prediction_id:
                    return arrived, headers, body
            time.sleep(0.05)
        raise TimeoutError(f"no event for {prediction_id} in {timeout} s")


def spec_signature_ok(secret: str, headers: dict[str, str], body: str) -> bool:
    """HMAC-SHA256 of `id.timestamp.body` with the base64-decoded secret, against each `v1,`."""
    lower = {k.lower(): v for k, v in headers.items()}
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{lower['webhook-id']}.{lower['webhook-timestamp']}.{body}".encode()
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    return any(
        hmac.compare_digest(expected, sig.split(",", 1)[1])
        for sig in lower["webhook-signature"].split()
    )


def upload_frames(rows: int):
    """The Telco-schema rows with the customer's own columns, as CSV and as Parquet bytes."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

    from benchmarks.data import ensure

    frame = pd.read_csv(ensure(10_000), dtype=str, keep_default_na=False).head(rows)
    frame["email"] = [f"c{i}@example.com" for i in range(rows)]
    frame["account_no"] = [f"{i:07d}" for i in range(rows)]
    out = io.BytesIO()
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), out, row_group_size=512)
    return frame.to_csv(index=False).encode(), out.getvalue()


def get(http, path: str):
    """A GET, waited out while the key's rate limit answers 429 (300 a minute)."""
    while (answer := http.get(path)).status_code == 429:
        time.sleep(float(answer.headers.get("retry-after", "1")))
    answer.raise_for_status()
    return answer


def wait_final(http, prediction_id: str, timeout: float) -> dict:
    """Polled once a second: the event's delay is measured from the row's completed_at."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        row = get(http, f"/uploads/{prediction_id}").json()
        if row["status"] in FINAL:
            return row
        time.sleep(1)
    raise TimeoutError(f"upload {prediction_id} not final in {timeout} s")


def check(api: str, engine, rows: int, timeout: float) -> dict:
    import httpx
    import pyarrow.parquet as pq
    from standardwebhooks.webhooks import Webhook

    from retainwise.adapters import accounts

    accounts.create_account(engine, "bench")
    accounts.set_columns(engine, "bench", carry_columns=("email", "account_no"))
    key = accounts.create_key(engine, "bench")["api_key"]
    receiver, (csv, parquet) = Receiver(), upload_frames(rows)
    http = httpx.Client(  # no kept-alive connection: the server may close an idle one as we send
        base_url=api,
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
        limits=httpx.Limits(max_keepalive_connections=0),
    )
    secret = http.put("/account/webhook", json={"url": receiver.url}).json()["secret"]
    ids, finals, events = {}, {}, {}
    for name, body in (("csv", csv), ("parquet", parquet)):
        sent = http.post("/uploads", content=body, headers={"x-filename": f"c.{name}"})
        sent.raise_for_status()
        ids[name] = sent.json()["prediction_id"]
        finals[name] = wait_final(http, ids[name], timeout)
        events[name] = receiver.event_for(ids[name], 60)
    arrived, headers, body = events["csv"]
    completed = datetime.fromisoformat(finals["csv"]["completed_at"]).astimezone(UTC)
    lower = {k.lower(): v for k, v in headers.items()}
    Webhook(secret).verify(body, lower)  # raises if the signature does not verify

    results = {
        name: pq.read_table(
            io.BytesIO(get(http, f"/uploads/{ids[name]}/results?format=parquet").content)
        )
        for name in ids
    }
    actions = get(http, f"/uploads/{ids['parquet']}/actions?format=parquet")
    receiver.server.shutdown()
    return {
        "statuses": {name: row["status"] for name, row in finals.items()},
        "event_type": json.loads(body)["type"],
        "seconds_completed_to_event": {
            name: round(events[name][0] - _stamp(finals[name]["completed_at"]), 2) for name in ids
        },
        "event_within_15_s": arrived - completed.timestamp() <= 15,
        "signature_verifies_library": True,
        "signature_verifies_spec_algorithm": spec_signature_ok(secret, headers, body),
        "same_probabilities_csv_parquet": results["csv"].column("churn_probability").to_pylist()
        == results["parquet"].column("churn_probability").to_pylist(),
        "results_parquet_columns": results["parquet"].column_names,
        "carried_ids_as_text": results["parquet"].column("account_no").to_pylist()[:2],
        "actions_parquet": {
            "content_type": actions.headers["content-type"],
            "rows": pq.read_table(io.BytesIO(actions.content)).num_rows,
        },
    }


def _stamp(iso: str) -> float:
    value = datetime.fromisoformat(iso)
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args(argv)
    common.side_by_side("integrations")
    import migrations
    from retainwise.adapters.resources import Resources
    from retainwise.config.settings import Settings
    from retainwise.local import stack

    settings = Settings()
    started, cpu_started = time.monotonic(), common.cpu_seconds()
    try:
        migrations.upgrade(settings.db_url)
        common.train_champion(settings)
        stack.up(settings, timeout=600)
        common.log(f"stack up after {time.monotonic() - started:.1f} s")
        api = f"http://127.0.0.1:{settings.stack_api_port}"
        summary = check(api, Resources.from_env().engine, args.rows, args.timeout)
    finally:
        stack.down(settings)
    summary.update(
        rows=args.rows,
        wall_s=round(time.monotonic() - started, 1),
        this_process_cpu_s=round(common.cpu_seconds() - cpu_started, 1),
    )
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
