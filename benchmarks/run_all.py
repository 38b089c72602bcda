"""`make bench`: throughput at 100k, 400k (whole-file path) and 1M rows (chunked path), the
latency benchmark, then one table: each target, the measured figure, met or missed.

    python benchmarks/run_all.py [--rows 100000,400000,1000000] [--repeats 5] [--uploads 50]
                                 [--memory-rows 10000000]

Each benchmark runs as its own process (it starts and stops its own servers); their JSON lines
are kept under benchmarks/out/ and the table (markdown, for benchmarks/README.md) compares them
with the targets of issue 14.
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
    "ratio_vs_naive": 4.0,
    "ratio_vs_expert": 3.0,
    "validation_share": 0.15,
    "rss_10m_mb": 700,
    "cpu_per_run_s": 0.3,
    "burst_p95_s": 10.0,
    "one_p50_s": 0.5,
    "reasons_share_1m": 0.30,
    "customers_p95_ms": 200,
}


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
        key = f"ratio_vs_{anchor}"
        if key in result:
            out.append(
                (
                    f"{rows:,} rows: throughput vs the {anchor} script",
                    f"{result[key]:.2f}x (CPU s ratio {result[f'cpu_ratio_vs_{anchor}']:.2f}x)",
                    f">= {TARGETS[key]:.1f}x",
                    _met(result[key] >= TARGETS[key]),
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


def latency_rows(latency: dict) -> list[tuple[str, str, str, str]]:
    out = []
    for label, key in (
        ("1k-row uploads one by one", "one_by_one"),
        ("50 1k-row uploads at once", "at_once"),
    ):
        part = latency.get(key) or {}
        total = part.get("total")
        if not total:
            out.append((label, "not run or failed: " + json.dumps(latency)[:80], "", "missed"))
            continue
        cpu = part.get("cpu_per_run_s") or {}
        measured = f"p50 {total['p50']} s, p95 {total['p95']} s, max {total['max']} s"
        if key == "one_by_one":
            out.append(
                (
                    f"{label}: upload -> COMPLETED",
                    measured,
                    f"p50 <= {TARGETS['one_p50_s']} s",
                    _met(total["p50"] <= TARGETS["one_p50_s"]),
                )
            )
        else:
            out.append(
                (
                    f"{label}: upload -> COMPLETED",
                    measured,
                    f"p95 <= {TARGETS['burst_p95_s']:.0f} s",
                    _met(total["p95"] <= TARGETS["burst_p95_s"]),
                )
            )
        if cpu:
            summed = cpu.get("worker+server+trigger", float("nan"))
            out.append(
                (
                    f"{label}: CPU per run, worker + Prefect server + trigger",
                    f"{summed:.3f} s ({', '.join(f'{k} {v:.3f}' for k, v in cpu.items())})",
                    f"<= {TARGETS['cpu_per_run_s']} s",
                    _met(summed <= TARGETS["cpu_per_run_s"]) if key == "at_once" else "",
                )
            )
    return out


def reasons_rows(result: dict) -> list[tuple[str, str, str, str]]:
    """Issue 19: the share reasons add to the scoring path, and /customers read latency."""
    rows = []
    for name, figure in sorted(result.items()):
        if name.startswith("reasons_share_"):
            share = figure["extra_share_wall"]
            goal = TARGETS["reasons_share_1m"]
            rows.append(
                (
                    f"reasons and actions list at {figure['rows']} rows: extra scoring time",
                    f"{share:.0%} wall ({figure['extra_share_cpu']:.0%} CPU), "
                    f"{figure['explained_rows']} rows explained",
                    f"<= {goal:.0%} at 1M rows",
                    _met(share <= goal) if figure["rows"] >= 1_000_000 else "",
                )
            )
    if "customers_read_p95" in result:
        p95 = result["customers_read_p95"]["p95_ms"]
        goal = TARGETS["customers_p95_ms"]
        rows.append(
            ("/customers read p95 (adapter)", f"{p95} ms", f"<= {goal} ms", _met(p95 <= goal))
        )
    return rows or [("reasons", "failed: " + json.dumps(result)[:100], "", "missed")]


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
    results = {"throughput": throughput, "memory": memory, "latency": latency, "reasons": reasons}
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(results, indent=2))
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, text=True, capture_output=True
    ).stdout.strip()
    rows = [row for result in throughput for row in throughput_rows(result)]
    rows += memory_rows(memory) + latency_rows(latency)
    rows += reasons_rows(reasons) if reasons else []
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, commit {commit}\n")
    print(table(rows) + "\n")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
