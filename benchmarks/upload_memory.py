"""A large upload through the HTTP API keeps the API process's memory flat.

Starts moto (S3/SQS) in this process and the API (`retainwise api`, uvicorn) as a child on free
loopback ports, creates an account and key, writes a CSV of `--mb` megabytes, then POSTs it with
its Content-Length, streamed from disk. A thread samples the API process's RSS (psutil) every
20 ms. Prints one JSON line last: baseline and peak RSS of the API, their ratio, wall time and
the API's CPU seconds. Target: peak < 300 MB for 150 MB (the body is streamed to S3 in 8 MB parts).

    python benchmarks/upload_memory.py [--mb 150]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

from common import REPO, free_port, fresh_home  # noqa: E402  (puts the repo on sys.path)

TARGET_MB = 300


def write_csv(path, megabytes: int) -> int:
    """Synthetic customers, one block repeated (with fresh ids) to the size wanted."""
    from retainwise.local.sample import synthetic_customers

    block = synthetic_customers(20_000, seed=5, labeled=False)
    header, size, round_ = block.to_csv(index=False).split("\n", 1)[0] + "\n", 0, 0
    with open(path, "w") as out:
        out.write(header)
        while size < megabytes * 10**6:
            block["customer_id"] = [f"c{round_}-{i}" for i in range(len(block))]
            size += out.write(block.to_csv(index=False, header=False))
            round_ += 1
    return os.path.getsize(path)


def sample_rss(pid: int, stop: threading.Event, peak: list[int]) -> None:
    import psutil

    process = psutil.Process(pid)
    while not stop.is_set():
        peak[0] = max(peak[0], process.memory_info().rss)
        time.sleep(0.02)


def wait_up(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except OSError:
            time.sleep(0.3)
    raise TimeoutError(url)


def api_backends(home, **environment: str):
    """moto in this process on a free port, a migrated SQLite database under `home` and an
    account `bench`: (moto, the API child's environment, Settings, bench's API key)."""
    from moto.server import ThreadedMotoServer

    import migrations
    from retainwise.adapters import accounts, aws
    from retainwise.adapters.db import make_engine
    from retainwise.config.settings import Settings

    aws_port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=aws_port, verbose=False)
    moto.start()
    env = {
        **os.environ,
        "RETAINWISE_HOME": str(home),
        "AWS_ACCESS_KEY_ID": "bench",
        "AWS_SECRET_ACCESS_KEY": "bench",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{aws_port}",
        **environment,
    }
    os.environ.update({k: v for k, v in env.items() if k.startswith(("RETAINWISE_", "AWS_"))})
    settings = Settings()
    aws.ensure_resources(settings)
    migrations.upgrade(settings.db_url)
    engine = make_engine(settings.db_url)
    accounts.create_account(engine, "bench")
    key = accounts.create_key(engine, "bench")["api_key"]
    engine.dispose()
    return moto, env, settings, key


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mb", type=int, default=150)
    args = parser.parse_args()

    import httpx
    import psutil

    from retainwise.adapters import aws

    home, api_port = fresh_home("upload-memory"), free_port()
    moto, env, settings, key = api_backends(home)
    data = home / "upload.csv"
    size = write_csv(data, args.mb)

    api = subprocess.Popen(
        [sys.executable, "-m", "retainwise.entrypoints.cli", "api", "--port", str(api_port)],
        env=env,
        cwd=REPO,
    )
    try:
        url = f"http://127.0.0.1:{api_port}"
        wait_up(f"{url}/openapi.json")
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "text/csv"}
        with httpx.Client(timeout=600) as client:  # warm: imports, first S3 and DB calls
            client.post(f"{url}/uploads", content=b"customer_id\n1\n", headers=headers)
            baseline = psutil.Process(api.pid).memory_info().rss
            cpu_before = sum(psutil.Process(api.pid).cpu_times()[:2])
            stop, peak = threading.Event(), [baseline]
            sampler = threading.Thread(target=sample_rss, args=(api.pid, stop, peak))
            sampler.start()
            started = time.perf_counter()
            with open(data, "rb") as body:
                response = client.post(
                    f"{url}/uploads", content=body, headers={**headers, "Content-Length": str(size)}
                )
            wall = time.perf_counter() - started
            stop.set()
            sampler.join()
        cpu = sum(psutil.Process(api.pid).cpu_times()[:2]) - cpu_before
        assert response.status_code == 202, response.text
        stored = aws.object_size(
            aws.client("s3", settings),
            settings.bucket,
            f"uploads/bench/{response.json()['prediction_id']}/input",
        )
        assert stored == size, (stored, size)
    finally:
        api.terminate()
        api.wait(20)
        moto.stop()
    mb = 2**20
    result = {
        "upload_mb": round(size / 10**6, 1),
        "api_baseline_rss_mb": round(baseline / mb, 1),
        "api_peak_rss_mb": round(peak[0] / mb, 1),
        "peak_over_baseline": round(peak[0] / baseline, 2),
        "target_peak_mb": TARGET_MB,
        "within_target": peak[0] / mb < TARGET_MB,
        "wall_s": round(wall, 1),
        "api_cpu_s": round(cpu, 1),
        "throughput_mb_s": round(size / 10**6 / wall, 1),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
