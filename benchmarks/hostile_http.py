"""Hostile HTTP against a running API: what each request gets, and the API's peak RSS under the
sign-in flood and the outcomes join (issue 20).

Starts moto in this process and the API (`retainwise api`, uvicorn) as a child on loopback, on a
fresh home (SQLite), with an account capped at 4 active uploads; a thread samples the API's RSS
every 20 ms. Then, each a real request: an unauthenticated 600 MB chunked sign-in form; a
chunked upload with a lying Content-Length; 10 uploads in flight against the cap of 4; a 2-row
outcomes file against a 7k-row upload and against a `--rows` one (results files written as
scoring writes them); `?offset=` of 23 digits; sign-out then the old cookie; and
`RETAINWISE_ENV=production retainwise api` without each secret. One JSON line last.

    python benchmarks/hostile_http.py [--rows 2000000] [--flood-mb 600]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import threading
import time
from contextlib import contextmanager

from common import REPO, free_port, fresh_home  # noqa: E402  (puts the repo on sys.path)
from upload_memory import api_backends, sample_rss, wait_up  # noqa: E402

from tests.rawhttp import FORM_FIELD, MB, completed_upload, flood, head, held_uploads  # noqa: E402

FLOOD_GROWTH_LIMIT_MB = 100
PRODUCTION = {
    "RETAINWISE_ENV": "production",
    "RETAINWISE_DATABASE_URL": "postgresql+psycopg://u@127.0.0.1:1/retainwise",
    "RETAINWISE_MLFLOW_TRACKING_URI": "postgresql+psycopg://u@127.0.0.1:1/mlflow",
    "RETAINWISE_SESSION_SECRET": "s" * 32,
    "RETAINWISE_SESSION_HTTPS_ONLY": "true",
}


@contextmanager
def peak_rss(pid: int):
    """Yields [baseline MB, peak MB] of `pid`, the peak filled in when the block ends."""
    import psutil

    baseline = psutil.Process(pid).memory_info().rss
    stop, peak = threading.Event(), [baseline]
    sampler = threading.Thread(target=sample_rss, args=(pid, stop, peak))
    sampler.start()
    figures = [round(baseline / MB, 1), 0.0]
    try:
        yield figures
    finally:
        stop.set()
        sampler.join()
        figures[1] = round(peak[0] / MB, 1)


def sign_in_flood(url: str, pid: int, megabytes: int) -> dict:
    request = head(
        "POST /app/signin HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n"
        "Content-Type: application/x-www-form-urlencoded\n"
    )
    with peak_rss(pid) as rss:
        status, sent = flood(url, request, blocks=megabytes, block=FORM_FIELD)
    return {"status": status, "sent_mb": round(sent / MB, 1), "rss_mb": rss}


def outcomes_join(url: str, pid: int, key: str, upload: str) -> dict:
    import httpx

    with peak_rss(pid) as rss:
        started = time.perf_counter()
        answer = httpx.post(
            f"{url}/uploads/{upload}/outcomes",
            content=b"customer_id,churned\nc7,1\nc1999,no\n",
            headers={"Authorization": f"Bearer {key}", "Content-Type": "text/csv"},
            timeout=600,
        )
        wall = time.perf_counter() - started
    return {
        "status": answer.status_code,
        "matched": answer.json().get("matched"),
        "wall_s": round(wall, 2),
        "rss_mb": rss,
    }


def sign_out_then_replay(url: str, key: str) -> dict:
    import httpx

    def csrf(client: httpx.Client, page: str) -> str:
        return re.search(r'name="csrf" value="([^"]+)"', client.get(page).text).group(1)

    with httpx.Client(base_url=url) as browser:
        browser.post("/app/signin", data={"api_key": key, "csrf": csrf(browser, "/app/signin")})
        before = browser.get("/app").status_code
        kept = dict(browser.cookies)
        browser.post("/app/signout", data={"csrf": csrf(browser, "/app")})
    with httpx.Client(base_url=url, cookies=kept) as replay:
        after = replay.get("/app")
    return {"before": before, "replayed": after.status_code, "to": after.headers.get("location")}


def production_start(home) -> dict:
    """Exit code and the named variable of `retainwise api` without each production setting."""
    found = {}
    for missing in sorted(set(PRODUCTION) - {"RETAINWISE_ENV"}):
        env = {k: v for k, v in os.environ.items() if not k.startswith("RETAINWISE_")}
        env.update({**PRODUCTION, "RETAINWISE_HOME": str(home)})
        env.pop(missing)
        done = subprocess.run(
            [sys.executable, "-m", "retainwise.entrypoints.cli", "api", "--port", str(free_port())],
            env=env,
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
        found[missing] = {"exit": done.returncode, "named": missing in done.stderr}
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--flood-mb", type=int, default=600)
    args = parser.parse_args()

    import httpx

    from retainwise.adapters.resources import Resources

    home, api_port = fresh_home("hostile-http"), free_port()
    moto, env, settings, key = api_backends(home, RETAINWISE_MAX_ACTIVE_UPLOADS="4")
    resources = Resources(settings)
    small, large = (completed_upload(resources, "bench", n) for n in (7_000, args.rows))

    api = subprocess.Popen(
        [sys.executable, "-m", "retainwise.entrypoints.cli", "api", "--port", str(api_port)],
        env=env,
        cwd=REPO,
    )
    result: dict = {}
    try:
        url = f"http://127.0.0.1:{api_port}"
        wait_up(f"{url}/openapi.json")
        bearer = {"Authorization": f"Bearer {key}"}
        httpx.get(f"{url}/uploads", headers=bearer)  # warm: imports, first DB call
        result["signin_flood"] = sign_in_flood(url, api.pid, args.flood_mb)
        lying = head(
            f"POST /uploads HTTP/1.1\nHost: t\nAuthorization: Bearer {key}\n"
            "Content-Length: 5\nTransfer-Encoding: chunked\n"
        )
        result["lying_length_status"] = flood(url, lying, blocks=30, block=b"x" * MB)[0]
        body = b"customer_id,tenure\n" + b"".join(b"c%d,1\n" % i for i in range(1000))
        statuses = held_uploads(url, key, 10, body)
        result["ten_uploads_cap_4"] = {str(s): statuses.count(s) for s in sorted(set(statuses))}
        result["outcomes_7k"] = outcomes_join(url, api.pid, key, small)
        result[f"outcomes_{args.rows}"] = outcomes_join(url, api.pid, key, large)
        huge = httpx.get(f"{url}/uploads?offset=99999999999999999999999", headers=bearer)
        result["huge_offset_status"] = huge.status_code
        result["sign_out_then_cookie"] = sign_out_then_replay(url, key)
    finally:
        api.terminate()
        api.wait(20)
        resources.engine.dispose()
        moto.stop()
    result["production_without"] = production_start(home)
    flood_rss = result["signin_flood"]["rss_mb"]
    result["signin_flood_growth_mb"] = round(flood_rss[1] - flood_rss[0], 1)
    result["within_target"] = result["signin_flood_growth_mb"] < FLOOD_GROWTH_LIMIT_MB
    print(json.dumps(result))


if __name__ == "__main__":
    main()
