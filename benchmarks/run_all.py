"""`make bench`: the 1M-row throughput benchmark and the latency benchmark, then a short table.

    python benchmarks/run_all.py [--rows 1000000] [--repeats 3] [--uploads 50]

Each benchmark runs as its own process (it starts and stops its own servers); their JSON lines
are kept under benchmarks/out/ and the table compares them with the targets.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
TARGETS = {"throughput_ratio": 1.0, "p50_s": 5.0, "p95_s": 10.0}


def run(script: str, *args: str) -> dict:
    print(f"$ python benchmarks/{script} {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, str(HERE / script), *args], stdout=subprocess.PIPE,
                          stderr=sys.stderr, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": f"{script} exited with {done.returncode}"}
    return json.loads(lines[-1])


def table(throughput: dict, latency: dict) -> str:
    rows = [("benchmark", "measured", "target", "met")]
    ratio = throughput.get("throughput_ratio_b_over_a")
    if ratio is not None:
        naive, project = throughput["naive"], throughput["project"]
        rows += [
            (f"naive script, {throughput['rows']:,} rows",
             f"{naive['median_s']} s, {naive['rows_per_s']:,} rows/s, {naive['peak_rss_mb']} MB",
             "", ""),
            ("scoring path, same file",
             f"{project['median_s']} s, {project['rows_per_s']:,} rows/s, "
             f"{project['peak_rss_mb']} MB", "", ""),
            ("throughput scoring path / naive", f"{ratio:.2f}x", ">= 1.0x",
             _met(ratio >= TARGETS["throughput_ratio"])),
            ("scoring path time shares", ", ".join(
                f"{k} {v:.0%}" for k, v in project.get("share_of_wall", {}).items()), "", ""),
        ]
    else:
        rows.append(("throughput", json.dumps(throughput)[:80], "", ""))
    for label, key in (("one by one", "one_by_one"), ("50 at once", "at_once")):
        part = latency.get(key, {})
        total = part.get("total")
        if not total:
            rows.append((f"latency {label}", json.dumps(latency)[:80], "", ""))
            continue
        start = part.get("queue_to_flow_start", {})
        rows += [
            (f"upload -> COMPLETED, {label}",
             f"p50 {total['p50']} s, p95 {total['p95']} s, max {total['max']} s",
             "p50 <= 5 s, p95 <= 10 s",
             _met(total["p50"] <= TARGETS["p50_s"] and total["p95"] <= TARGETS["p95_s"])),
            (f"SQS send -> flow run start, {label}",
             f"p50 {start.get('p50')} s, p95 {start.get('p95')} s", "", ""),
        ]
    widths = [max(len(str(r[i])) for r in rows) for i in range(4)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _met(ok: bool) -> str:
    return "yes" if ok else "NO"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="1000000")
    parser.add_argument("--repeats", default="3")
    parser.add_argument("--uploads", default="50")
    args = parser.parse_args(argv)
    throughput = run("throughput.py", "--rows", args.rows, "--repeats", args.repeats)
    latency = run("latency.py", "--uploads", args.uploads)
    results = {"throughput": throughput, "latency": latency}
    out = HERE / "out"
    out.mkdir(exist_ok=True)
    (out / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json").write_text(json.dumps(results, indent=2))
    print("\n" + table(throughput, latency) + "\n")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
