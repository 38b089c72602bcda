"""The local stack's Prefect server with every API call counted, per route, for the benchmarks.

    python -m benchmarks.prefect_calls --port P [...]   (the arguments of runtime.prefect_server)

Runs `retainwise.runtime.prefect_server` unchanged, its app wrapped in `CountingApp`: each HTTP
request is counted under its method and path with ids replaced by `{id}`, with the seconds it took
to answer; each message a client sends over a websocket (`/api/events/in`: Prefect 3's clients
send task run states and other events that way) counts as one call of `WS <path> <event name>`.
`GET /__calls` answers the counts so far as JSON and is not counted itself, nor is a request
carrying the header UNCOUNTED (`uncounted_client`: the benchmark's own reads). `calls(url)` reads
them and `diff` subtracts two readings.
"""

from __future__ import annotations

import json
import re
import sys
import time
import urllib.request
from collections import Counter
from typing import Any

UNCOUNTED = (
    "x-benchmark-uncounted"  # a request with this header is the benchmark's own, not a run's
)
ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?<=/)\d+(?=/|$)")
COUNTS_PATH = "/__calls"


def route(method: str, path: str) -> str:
    """`POST /api/flow_runs/{id}/set_state`: the route, whatever run it named."""
    return f"{method} {ID.sub('{id}', path)}"


def event_name(message: dict) -> str:
    """The event a client sent (`prefect.task-run.Running` -> `task-run.Running`), else ''."""
    try:
        name = json.loads(message.get("text") or message.get("bytes") or b"").get("event", "")
    except (ValueError, AttributeError):
        return ""
    return re.sub(r"^prefect\.", "", str(name))


class CountingApp:
    """ASGI middleware: calls and seconds per route, in the server's memory."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.calls: Counter[str] = Counter()
        self.seconds: Counter[str] = Counter()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] == COUNTS_PATH:
            await self._answer(send)
            return
        if scope["type"] == "websocket":
            await self.app(scope, self._counting_receive(scope, receive), send)
            return
        if scope["type"] != "http" or any(k == UNCOUNTED.encode() for k, _ in scope["headers"]):
            await self.app(scope, receive, send)
            return
        key, started = route(scope["method"], scope["path"]), time.perf_counter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.calls[key] += 1
            self.seconds[key] += time.perf_counter() - started

    def _counting_receive(self, scope: dict, receive: Any) -> Any:
        key = route("WS", scope["path"])

        async def counted() -> dict:
            message = await receive()
            if message["type"] == "websocket.receive":
                self.calls[f"{key} {event_name(message)}".rstrip()] += 1
            return message

        return counted

    async def _answer(self, send: Any) -> None:
        body = json.dumps(
            {
                "calls": dict(self.calls),
                "seconds": {k: round(v, 4) for k, v in self.seconds.items()},
            }
        ).encode()
        headers = [(b"content-type", b"application/json")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def uncounted_client():
    """A sync Prefect client whose calls the counting server leaves out."""
    from prefect.client.orchestration import get_client

    return get_client(sync_client=True, httpx_settings={"headers": {UNCOUNTED: "1"}})


def calls(api_url: str) -> dict[str, dict[str, float]]:
    """The counts so far from a server started by this module (`api_url` ends in /api)."""
    base = api_url.removesuffix("/").removesuffix("/api")
    with urllib.request.urlopen(base + COUNTS_PATH, timeout=10) as answer:
        return json.loads(answer.read())


def diff(after: dict, before: dict) -> dict[str, dict[str, float]]:
    """Calls and seconds per route between two readings of `calls`."""
    out: dict[str, dict[str, float]] = {}
    for part in ("calls", "seconds"):
        spent = Counter(after[part])
        spent.subtract(before[part])
        out[part] = {k: v for k, v in spent.items() if v > 0}
    return out


def per_run(spent: dict, runs: int) -> dict[str, Any]:
    """Calls per run, in total and per route (most first), with the server's seconds per run
    (wall, from request to answer; a websocket's messages have none)."""
    calls_by_route = sorted(spent["calls"].items(), key=lambda item: -item[1])
    return {
        "total": round(sum(spent["calls"].values()) / runs, 1),
        "server_s": round(sum(spent["seconds"].values()) / runs, 3),
        "by_route": {k: round(v / runs, 2) for k, v in calls_by_route},
        "server_s_by_route": {
            k: round(spent["seconds"].get(k, 0.0) / runs, 4) for k, _ in calls_by_route
        },
    }


def main() -> None:
    from prefect.server.api import server

    from retainwise.runtime import prefect_server

    create_app = server.create_app
    server.create_app = lambda *a, **kw: CountingApp(create_app(*a, **kw))
    prefect_server.main(sys.argv[1:])


if __name__ == "__main__":
    main()
