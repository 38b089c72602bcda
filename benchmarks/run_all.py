"""`make bench`: throughput at 100k, 400k (whole-file path) and 1M rows (chunked path), the
latency benchmark, the reasons' share, Parquet against the CSV of the same rows at the largest
row count, then one table: each target, the measured figure, met or missed.

    python benchmarks/run_all.py [--rows 100000,400000,1000000] [--repeats 5] [--uploads 50]
                                 [--memory-rows 10000000] [--skip-latency] [--skip-reasons]
                                 [--skip-parquet]

Each benchmark runs as its own process (it starts and stops its own servers); their JSON lines
are kept under benchmarks/out/ and the table (markdown, for benchmarks/README.md) compares them
with the targets of issue 22. Its time targets are for a machine where the naive script scores
100k rows in 0.85 s; they are scaled by `naive_100k_s` / 0.85 as measured in the same run (the
latency benchmark's, else the 100k throughput run's naive median), and the CPU target by the
naive script's CPU seconds / 0.85 (on an idle machine the two agree; on a loaded one only the
wall time counts waiting for a core).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = {
    "validation_share": 0.15,
    "rss_10m_mb": 700,
    "cpu_per_run_s": 0.3,  # seconds: scaled
    "burst_p95_s": 10.0,
    "one_p50_s": 0.35,
    "reasons_share_1m": 0.30,
    "customers_p95_ms": 200,
}
RATIO_TARGETS = {  # (rows, anchor) -> at least this many times the script's throughput
    (100_000, "naive"): 2.0,
    (400_000, "naive"): 3.0,
    (1_000_000, "naive"): 4.0,
    (1_000_000, "expert"): 3.0,
}
REFERENCE_NAIVE_100K_S = 0.85  # the machine the targets were set on


def run(script: str, *args: str) -> dict:
    print(f"$ python benchmarks/{script} {' '.join(args)}", flush=True)
    done = subprocess.run(
        [sys.executable, str(HERE / script), *args],
        stdout=subprocess.PIPE,
        stderr=sys.stderr,
        text=True,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"{script} exited with {done.returncode}"}
    return json.loads(lines[-1])


def throughput_rows(result: dict) -> list[tuple[str, str, str, str]]:
    rows = result.get("rows")
    if "ratio_vs_naive" not in result:
        return [
            (
                f"throughput at {rows or '?'} rows",
                "failed: " + json.dumps(result)[:100],
                "",
                "missed",
            )
        ]
    naive, expert, project = result["naive"], result.get("expert", {}), result["project"]
    sides = "; ".join(
        f"{name} {side['median_s']} s wall, {side['cpu_s']} CPU s, {side['peak_rss_mb']} MB"
        for name, side in (("naive", naive), ("expert", expert), ("project", project))
        if "median_s" in side
    )
    out = [
        (f"{rows:,} rows: naive / expert / project (median of {project['runs']})", sides, "", "")
    ]
    for anchor in ("naive", "expert"):
        key, goal = f"ratio_vs_{anchor}", RATIO_TARGETS.get((rows, anchor))
        if key in result:
            out.append(
                (
                    f"{rows:,} rows: throughput vs the {anchor} script",
                    f"{result[key]:.2f}x (CPU s ratio {result[f'cpu_ratio_vs_{anchor}']:.2f}x)",
                    f">= {goal:.1f}x" if goal else "",
                    _met(result[key] >= goal) if goal else "",
                )
            )
    share = project.get("validation_share_of_busy")
    if share is not None:
        out.append(
            (
                f"{rows:,} rows: validation share of busy seconds",
                f"{share:.0%} of {sum(project['busy_s'].values()):.2f} s ({project['busy_s']})",
                f"<= {TARGETS['validation_share']:.0%}",
                _met(share <= TARGETS["validation_share"]),
            )
        )
    return out


def memory_rows(result: dict | None) -> list[tuple[str, str, str, str]]:
    target = f"<= {TARGETS['rss_10m_mb']} MB"
    if result is None:
        return [
            (
                "10M rows: peak RSS of the scoring path",
                "not run (--memory-rows 10000000)",
                target,
                "not run",
            )
        ]
    project = result.get("project", {})
    if "peak_rss_mb" not in project:
        return [("10M rows: peak RSS", "failed: " + json.dumps(result)[:100], target, "missed")]
    return [
        (
            f"{result['rows']:,} rows: peak RSS of the scoring path",
            f"{project['peak_rss_mb']} MB ({project['median_s']} s)",
            target,
            _met(project["peak_rss_mb"] <= TARGETS["rss_10m_mb"]),
        )
    ]


def latency_rows(latency: dict, scale: dict) -> list[tuple[str, str, str, str]]:
    """Latency and CPU per run against the targets scaled to this machine (`machine_scale`)."""
    out = []
    one_p50, burst_p95 = (
        TARGETS["one_p50_s"] * scale["time"],
        TARGETS["burst_p95_s"] * scale["time"],
    )
    cpu_goal = TARGETS["cpu_per_run_s"] * scale["cpu"]
    for label, key in (
        ("1k-row uploads one by one", "one_by_one"),
        ("1k-row uploads at once", "at_once"),
    ):
        part = latency.get(key) or {}
        total = part.get("total")
        if not total:
            out.append((label, "not run or failed: " + json.dumps(latency)[:80], "", "missed"))
            continue
        measured = f"p50 {total['p50']} s, p95 {total['p95']} s, max {total['max']} s"
        if key == "one_by_one":
            goal, met = f"p50 <= {one_p50:.2f} s", total["p50"] <= one_p50
        else:
            goal, met = f"p95 <= {burst_p95:.1f} s", total["p95"] <= burst_p95
        out.append((f"{part['uploads']} {label}: upload -> COMPLETED", measured, goal, _met(met)))
        cpu = part.get("cpu_per_run_s") or {}
        if cpu:
            summed = cpu.get("worker+server+trigger", float("nan"))
            out.append(
                (
                    f"{label}: CPU per run, worker + Prefect server + trigger",
                    f"{summed:.3f} s ({', '.join(f'{k} {v:.3f}' for k, v in cpu.items())})",
                    f"<= {cpu_goal:.2f} s",
                    _met(summed <= cpu_goal) if key == "at_once" else "",
                )
            )
        calls = part.get("api_calls_per_run")
        if calls:
            top = ", ".join(f"{k} {v}" for k, v in list(calls["by_route"].items())[:4])
            out.append(
                (f"{label}: Prefect API calls per run", f"{calls['total']} ({top}, ...)", "", "")
            )
    return out


def reasons_rows(result: dict) -> list[tuple[str, str, str, str]]:
    """Issue 19: the share reasons add to the scoring path, and /customers read latency."""
    rows = []
    cost = result.get("reasons_cost_per_row")
    if cost:
        rows.append(
            (
                "exact reasons per explained row (tables + words)",
                f"{cost['us_per_row_cpu']} us CPU ({cost['us_per_row_wall']} us wall)",
                "",
                "",
            )
        )
    for name, figure in sorted(result.items()):
        if name.startswith("reasons_share_"):
            share = figure["extra_share_wall"]
            goal = TARGETS["reasons_share_1m"]
            rows.append(
                (
                    f"reasons and actions list at {figure['rows']} rows: extra scoring time",
                    f"{share:.0%} wall ({figure['extra_share_cpu']:.0%} CPU; the list's own "
                    f"{figure.get('actions_share_cpu', float('nan')):.0%}), "
                    f"{figure['explained_rows']} rows explained",
                    f"<= {goal:.0%} at 1M rows",
                    # wall is what the issue names; on a shared machine it swings with the
                    # load, so the list's own CPU share must be within the goal too
                    _met(share <= goal and figure.get("actions_share_cpu", 0.0) <= goal)
                    if figure["rows"] >= 1_000_000
                    else "",
                )
            )
    if "customers_read_p95" in result:
        p95 = result["customers_read_p95"]["p95_ms"]
        goal = TARGETS["customers_p95_ms"]
        rows.append(
            ("/customers read p95 (adapter)", f"{p95} ms", f"<= {goal} ms", _met(p95 <= goal))
        )
    return rows or [("reasons", "failed: " + json.dumps(result)[:100], "", "missed")]


def parquet_rows(result: dict) -> list[tuple[str, str, str, str]]:
    """Issue 21: Parquet uploads against the CSV of the same rows, whole-file path."""
    if "seconds" not in result:
        return [("Parquet throughput", "failed: " + json.dumps(result)[:100], "", "missed")]
    wall, cpu, speed = result["seconds"], result["cpu_seconds"], result["speed_vs_csv"]
    sizes = result["bytes"]
    measured = "; ".join(
        f"{name} {wall[name]} s wall, {cpu[name]} CPU s, {result['rows_per_second'][name]:,} "
        f"rows/s, {speed[name]:.2f}x CSV"
        for name in wall
    )
    return [
        (
            f"{result['rows']:,} rows as Parquet ({sizes['parquet'] / 1e6:.1f} MB) vs CSV "
            f"({sizes['csv'] / 1e6:.1f} MB)",
            measured,
            "identical probabilities",
            _met(result["identical_probabilities"]),
        )
    ]


def machine_scale(throughput: list[dict], latency: dict) -> dict[str, float | None]:
    """The naive script's 100k-row wall and CPU seconds here, and the factors targets scale by."""
    naive, cpu = latency.get("naive_100k_s"), latency.get("naive_100k_cpu_s")
    if naive is None:
        at_100k = [r for r in throughput if r.get("rows") == 100_000]
        side = at_100k[0].get("naive", {}) if at_100k else {}
        naive, cpu = side.get("median_s"), side.get("cpu_s")
    return {
        "naive_100k_s": naive,
        "naive_100k_cpu_s": cpu,
        "time": naive / REFERENCE_NAIVE_100K_S if naive else 1.0,
        "cpu": (cpu or naive or REFERENCE_NAIVE_100K_S) / REFERENCE_NAIVE_100K_S,
    }


def table(rows: list[tuple[str, str, str, str]]) -> str:
    lines = ["| target | measured | goal | met |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {c} | {d} |" for a, b, c, d in rows]
    return "\n".join(lines)


def _met(ok: bool) -> str:
    return "met" if ok else "missed"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="100000,400000,1000000")
    parser.add_argument("--repeats", default="5")
    parser.add_argument("--uploads", default="50")
    parser.add_argument("--memory-rows", default="", help="e.g. 10000000 (slow; 1 repeat)")
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-reasons", action="store_true")
    parser.add_argument("--skip-parquet", action="store_true")
    args = parser.parse_args(argv)
    throughput = [
        run("throughput.py", "--rows", rows, "--repeats", args.repeats)
        for rows in args.rows.split(",")
        if rows
    ]
    memory = (
        run("throughput.py", "--rows", args.memory_rows, "--repeats", "1", "--sides", "project")
        if args.memory_rows
        else None
    )
    latency = {} if args.skip_latency else run("latency.py", "--uploads", args.uploads)
    reasons = {} if args.skip_reasons else run("reasons.py", "--rows", *args.rows.split(","))
    most = str(max(int(r) for r in args.rows.split(",") if r))
    parquet = {} if args.skip_parquet else run("parquet_throughput.py", "--rows", most)
    results = {
        "throughput": throughput,
        "memory": memory,
        "latency": latency,
        "reasons": reasons,
        "parquet": parquet,
    }
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(results, indent=2))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, text=True, capture_output=True
    ).stdout.strip()
    rows = [row for result in throughput for row in throughput_rows(result)]
    scale = machine_scale(throughput, latency)
    rows += memory_rows(memory) + latency_rows(latency, scale)
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}")
    print(
        f"naive script on 100k rows here: {scale['naive_100k_s']} s, "
        f"{scale['naive_100k_cpu_s']} CPU s; time targets x {scale['time']:.2f}, "
        f"CPU target x {scale['cpu']:.2f}\n"
    )
    rows += reasons_rows(reasons) if reasons else []
    rows += parquet_rows(parquet) if parquet else []
    print(table(rows) + "\n")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
