"""The hostile corpus at full size through score-upload on the local stack: outcome, wall time,
CPU seconds and the worker's peak RSS per file, then a normal upload on the same stack.

Each file is generated as a stream (tests/hostile.py, nothing written to disk), uploaded to moto,
and scored by a fresh worker process (so its peak RSS is that file's alone). Run:
`.venv/bin/python benchmarks/hostile.py` (about 5 minutes on 2 free cores; `--only NAME` for one).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common as bench  # noqa: E402
from benchmarks.throughput import start_backends, stop_backends  # noqa: E402

SAMPLE_ROWS = 200


def child_main(prediction_id: str) -> None:
    """A worker: one score-upload flow run, measured from inside."""
    from flows.score_upload import score_upload
    from retainwise.adapters import db
    from retainwise.adapters.resources import Resources

    env = Resources.from_env()
    started, cpu = time.perf_counter(), time.process_time()
    try:
        score_upload(prediction_id)
        crashed = None
    except Exception as exc:  # the flow re-raises what was not the file's fault
        crashed = f"{type(exc).__name__}: {exc}"[:200]
    row = db.get_prediction(env.engine, prediction_id)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(
        json.dumps(
            {
                "status": row.status.value,
                "error": row.error,
                "crashed": crashed,
                "rows_total": row.rows_total,
                "rows_scored": row.rows_scored,
                "wall_s": round(time.perf_counter() - started, 2),
                "cpu_s": round(time.process_time() - cpu, 2),
                "cpu_s_with_start": round(usage.ru_utime + usage.ru_stime, 2),
                "peak_rss_mb": round(peak_rss_kib() / 1024),
            }
        )
    )


def peak_rss_kib() -> int:
    """This process's own peak RSS: VmHWM starts afresh at exec, while ru_maxrss carries the
    forking parent's peak over (the harness, which generated the file)."""
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))


def run_worker(prediction_id: str, env: dict[str, str]) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", prediction_id],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"status": "WORKER DIED", "error": (done.stderr or done.stdout)[-400:]}
    return json.loads(lines[-1])


def harness(only: str | None) -> list[dict]:
    import migrations
    from models.training import train
    from retainwise.adapters import aws, db
    from retainwise.adapters import mlflow_registry as registry
    from retainwise.adapters.resources import Resources
    from retainwise.config.settings import Settings
    from retainwise.local.sample import synthetic_customers
    from tests.hostile import ChunkReader, Scale, corpus

    home = bench.fresh_home("hostile")
    pids: list[int] = []
    env = start_backends(home, pids)
    env = {**env, **Scale.REAL.environment(), "PREFECT_LOGGING_LEVEL": "ERROR"}
    os.environ.update(env)
    rows: list[dict] = []
    try:
        settings = Settings()
        migrations.upgrade(settings.db_url)
        trained = train(synthetic_customers(3000, seed=5).astype(str), "Churn", "customer_id")
        registry.promote(bench.MODEL, registry.register(trained, bench.MODEL, settings), settings)
        aws.ensure_resources(settings)
        resources = Resources(settings)
        sample = (
            synthetic_customers(SAMPLE_ROWS, seed=9, labeled=False).to_csv(index=False).encode()
        )
        cases = [c for c in corpus(sample, Scale.REAL) if not only or only in c.name]
        normal = type(cases[0])("normal upload afterwards", lambda: iter([sample]), "COMPLETED", "")
        for case in cases + [normal]:
            key = f"uploads/bench/hostile/{len(rows)}/input"
            started = time.perf_counter()
            reader = ChunkReader(case.chunks())
            resources.s3.upload_fileobj(reader, settings.bucket, key)
            size = resources.s3.head_object(Bucket=settings.bucket, Key=key)["ContentLength"]
            prepared = time.perf_counter() - started
            prediction_id = db.create_prediction(
                resources.engine, account="bench", model_name=bench.MODEL, input_key=key
            )
            outcome = run_worker(prediction_id, env)
            outcome.update(
                file=case.name,
                bytes=size,
                generate_upload_s=round(prepared, 1),
                expected=case.status,
                as_expected=outcome["status"] == case.status
                and case.message in (outcome.get("error") or ""),
            )
            bench.log(json.dumps(outcome))
            rows.append(outcome)
    finally:
        stop_backends(pids)
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        "| file | size | outcome | message | wall s | CPU s | peak RSS MB |",
        "|---|---:|---|---|---:|---:|---:|",
    ]
    for r in rows:
        message = (r.get("error") or "").split(";")[0][:90]
        lines.append(
            f"| {r['file']} | {r['bytes'] / 1e6:.1f} MB | {r['status']} | {message} | "
            f"{r.get('wall_s', '-')} | {r.get('cpu_s', '-')} | "
            f"{r.get('peak_rss_mb', '-')} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only the cases whose name contains this")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child_main(args.child)
        return
    rows = harness(args.only)
    print(table(rows))
    print(
        json.dumps(
            {
                "benchmark": "hostile",
                "files": rows,
                "all_as_expected": all(r["as_expected"] for r in rows),
                "max_peak_rss_mb": max(r.get("peak_rss_mb", 0) for r in rows),
            }
        )
    )


if __name__ == "__main__":
    main()
