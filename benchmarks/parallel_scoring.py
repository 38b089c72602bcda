"""Whole-file scoring on both cores: do the compiled trees release the GIL, and what would two
threads or two processes give on a 400k-row upload? A measurement only; the pipeline is unchanged.

    python benchmarks/parallel_scoring.py [--rows 400000] [--repeats 3]

Trains the Telco champion (compiled trees) in a private home, then, in this process:
- `gil`: a pure-Python loop counts in a thread while the trees predict the whole file (one
  tl2cgen thread); the count per second against the same loop beside a sleep says how much of
  the predict call held the GIL (1.0: none of it).
- `trees`: the trees alone on the encoded rows: one call with 1 and with 2 tl2cgen threads (what
  scoring uses now), and two halves in two Python threads, one predictor each.
- `whole_file`: `pipeline.score_file` (read, validate, score, CSV) on the file, one piece; the same
  on two halves (cut at a record boundary, header on each) in two threads, and in two warm
  processes (spawned, the model loaded and one small piece scored before the clock starts).
  Probabilities of the halves are compared with the one-piece run (max difference); the wall,
  CPU seconds and stage seconds are medians.
- `--halves-only --rows 100000,200000,400000`: the product's split (`halves.score_whole` with a
  warm spawned helper: cut, the second half in the helper, merge) against `halves.one_piece`,
  alternating, per size: wall, CPU of this process plus the helper's, busy seconds per stage,
  validation's share of them, and whether results and rejects are the same bytes.
The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import common  # noqa: E402
from benchmarks.data import ensure  # noqa: E402


def load_model():
    """The champion trained on Telco in a fresh home, as a warm worker holds it."""
    home = common.fresh_home("parallel-scoring")
    os.environ["RETAINWISE_HOME"] = str(home)
    import migrations
    from retainwise.adapters import mlflow_registry as registry
    from retainwise.config.settings import Settings

    settings = Settings()
    migrations.upgrade(settings.db_url)
    common.train_champion(settings)
    model = registry.load_champion(common.MODEL, settings)
    libraries = sorted(home.rglob("trees.so"))
    if model.compiled is None or not libraries:
        raise SystemExit("the champion has no compiled trees (no C compiler?)")
    return model, settings, libraries[-1]


def halves(data: bytes) -> list[bytes]:
    """The file as two pieces cut at the record boundary nearest the middle, header on both
    (the benchmark file has no quoted newlines)."""
    header_end = data.index(b"\n") + 1
    cut = data.index(b"\n", len(data) // 2) + 1
    return [data[:cut], data[:header_end] + data[cut:]]


def timed(call):
    """(result, wall s, CPU s of this process, all threads)."""
    wall, cpu = time.perf_counter(), common.cpu_seconds()
    result = call()
    return result, time.perf_counter() - wall, common.cpu_seconds() - cpu


def gil_share(predict, seconds_hint: float) -> float:
    """How fast a Python loop counts while `predict` runs, against beside a sleep of as long."""

    def count_while(busy) -> float:
        done, count = threading.Event(), [0]

        def loop() -> None:
            while not done.is_set():
                count[0] += 1

        thread = threading.Thread(target=loop)
        started = time.perf_counter()
        thread.start()
        busy()
        done.set()
        thread.join()
        return count[0] / (time.perf_counter() - started)

    beside_predict = count_while(predict)
    beside_sleep = count_while(lambda: time.sleep(seconds_hint))
    return round(beside_predict / beside_sleep, 3)


def trees(model, library: Path, data: bytes, limits, share: float) -> dict:
    """The trees alone: wall and CPU of one call vs two halves in two threads."""
    import tl2cgen

    from models.features import prepare_features
    from retainwise.uploads import pipeline

    table = pipeline.read_upload(data, limits=limits)
    upload = pipeline.validate_upload(table, model.profile, share)
    features = prepare_features(upload.accepted, model.profile.features)
    compiled = model.compiled
    encoded = np.ascontiguousarray(compiled.columns.transform(features), dtype=np.float64)
    one, two = (tl2cgen.Predictor(library, nthread=n) for n in (1, 2))
    pair = [tl2cgen.Predictor(library, nthread=1) for _ in range(2)]
    parts = np.array_split(encoded, 2)

    def predict(predictor, rows):
        return predictor.predict(tl2cgen.DMatrix(rows, missing=np.nan), pred_margin=True)

    out = {}
    for name, call in (
        ("one_call_1_thread", lambda: predict(one, encoded)),
        ("one_call_2_threads", lambda: predict(two, encoded)),
        (
            "two_halves_2_python_threads",
            lambda: list(ThreadPoolExecutor(2).map(predict, pair, parts)),
        ),
    ):
        _, wall, cpu = timed(call)
        out[name] = {"wall_s": round(wall, 3), "cpu_s": round(cpu, 3)}
    _, wall, _ = timed(lambda: predict(one, encoded))
    out["python_loop_speed_during_predict"] = gil_share(lambda: predict(one, encoded), wall)
    out["column_transform_s"] = round(timed(lambda: compiled.columns.transform(features))[2], 3)
    return out


def score_piece(model, data: bytes, limits, share: float) -> tuple[np.ndarray, dict, float]:
    """score_file on one piece in this process: (probabilities, stage seconds, CPU s)."""
    from retainwise.uploads import pipeline
    from retainwise.uploads.policy import ScoringPolicy

    policy = ScoringPolicy(limits, max_rejected_share=share)
    scored, _, cpu = timed(lambda: pipeline.score_file(data, model, policy))
    return scored.results["churn_probability"].to_numpy(), scored.seconds, cpu


def _child(conn, home: str, data: bytes) -> None:
    """A warm scoring process: load the model, say ready, score its piece on "go"."""
    os.environ["RETAINWISE_HOME"] = home
    from retainwise.adapters import mlflow_registry as registry
    from retainwise.config.settings import Settings
    from retainwise.uploads.reading import Limits

    settings = Settings()
    model = registry.load_champion(common.MODEL, settings)
    limits, share = Limits.from_settings(settings), settings.max_rejected_share
    score_piece(model, data[: data.index(b"\n", 10_000) + 1], limits, share)  # warm, like a worker
    conn.send("ready")
    conn.recv()
    conn.send(score_piece(model, data, limits, share))
    conn.close()


def in_processes(pieces: list[bytes]):
    """Each piece in its own warm process (spawned: forking after OpenMP and Arrow's threads ran
    in this process hangs the child); timed from "go" to the last answer. Their CPU is their
    own (sent back), not this process's."""
    context = multiprocessing.get_context("spawn")
    pipes, children = [], []
    for piece in pieces:
        parent, child = context.Pipe()
        process = context.Process(target=_child, args=(child, os.environ["RETAINWISE_HOME"], piece))
        process.start()
        pipes.append(parent)
        children.append(process)
    for pipe in pipes:
        pipe.recv()  # ready
    started = time.perf_counter()
    for pipe in pipes:
        pipe.send("go")
    answers = [pipe.recv() for pipe in pipes]
    wall = time.perf_counter() - started
    for process in children:
        process.join()
    return answers, wall


def whole_file(model, data: bytes, limits, share: float, repeats: int) -> dict:
    pieces = halves(data)
    runs: dict[str, list[dict]] = {"one_piece": [], "two_threads": [], "two_processes": []}
    reference = None
    for _ in range(repeats):
        (probabilities, stages, _), wall, cpu = timed(
            lambda: score_piece(model, data, limits, share)
        )
        reference = probabilities
        runs["one_piece"].append({"wall_s": wall, "cpu_s": cpu, "stages": stages})
        threaded, wall, cpu = timed(
            lambda: list(
                ThreadPoolExecutor(2).map(
                    lambda piece: score_piece(model, piece, limits, share), pieces
                )
            )
        )
        runs["two_threads"].append(
            {"wall_s": wall, "cpu_s": cpu, "diff": _diff(reference, threaded)}
        )
        forked, wall = in_processes(pieces)
        runs["two_processes"].append(
            {
                "wall_s": wall,
                "cpu_s": sum(answer[2] for answer in forked),
                "diff": _diff(reference, forked),
            }
        )
        common.log(json.dumps({k: v[-1] for k, v in runs.items()}, default=str))
    return {name: _medians(values) for name, values in runs.items()}


def _diff(reference: np.ndarray, answers) -> float:
    joined = np.concatenate([answer[0] for answer in answers])
    return float(np.max(np.abs(joined - reference)))


def _medians(values: list[dict]) -> dict:
    out = {key: round(common.median([v[key] for v in values]), 3) for key in ("wall_s", "cpu_s")}
    if "diff" in values[0]:
        out["max_probability_difference"] = max(v["diff"] for v in values)
    if "stages" in values[0]:
        out["stages_s"] = {
            k: round(common.median([v["stages"][k] for v in values]), 3)
            for k in values[0]["stages"]
        }
    return out


def helper_cpu() -> float:
    """CPU seconds so far of this process's children (the scoring helper)."""
    import psutil

    return sum(sum(c.cpu_times()[:2]) for c in psutil.Process().children(recursive=True))


def halves_against_one_piece(model, data: bytes, policy, repeats: int) -> dict:
    """The product's split against one piece, alternating; CPU includes the helper's."""
    from retainwise.uploads import halves

    helper = halves.Helper()
    try:
        if not helper.ready(model, data[: halves.WARM_BYTES], policy):
            helper.loading[(model.name, model.version)].result()
        runs: dict[str, list[dict]] = {"one_piece": [], "halves": []}
        same = True
        for _ in range(repeats):
            one, wall, cpu = timed(lambda: halves.one_piece(data, model, policy))
            runs["one_piece"].append({"wall_s": wall, "cpu_s": cpu, "stages": one.seconds})
            before = helper_cpu()
            two, wall, cpu = timed(lambda: halves.score_whole(data, model, policy, helper))
            cpu += helper_cpu() - before
            runs["halves"].append({"wall_s": wall, "cpu_s": cpu, "stages": two.seconds})
            same = (
                same
                and two.halves
                and (two.results_csv, two.rejects_csv)
                == (
                    one.results_csv,
                    one.rejects_csv,
                )
            )
            common.log(json.dumps({k: v[-1] for k, v in runs.items()}, default=str))
    finally:
        helper.close()
    out: dict = {name: _medians(values) for name, values in runs.items()}
    for name in out:
        stages = out[name]["stages_s"]
        out[name]["validation_share_of_busy"] = round(
            stages["validating"] / sum(stages.values()), 3
        )
    out["speedup"] = round(out["one_piece"]["wall_s"] / out["halves"]["wall_s"], 3)
    out["cpu_ratio"] = round(out["halves"]["cpu_s"] / out["one_piece"]["cpu_s"], 3)
    out["identical_files"] = same
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", default="400000", help="rows (comma-separated: each size)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--halves-only", action="store_true")
    args = parser.parse_args(argv)
    from retainwise.uploads.policy import ScoringPolicy
    from retainwise.uploads.reading import Limits

    model, settings, library = load_model()
    if args.halves_only:
        policy = replace(
            ScoringPolicy.from_settings(settings), split_above_bytes=0, split_max_load=1e9
        )
        sizes = {
            rows: halves_against_one_piece(model, ensure(rows).read_bytes(), policy, args.repeats)
            for rows in map(int, args.rows.split(","))
        }
        print(
            json.dumps(
                {
                    "benchmark": "parallel-scoring-halves",
                    "cores": os.cpu_count(),
                    "load_average": os.getloadavg(),
                    "sizes": sizes,
                }
            )
        )
        return
    args.rows = int(args.rows)
    data = ensure(args.rows).read_bytes()
    limits, share = Limits.from_settings(settings), settings.max_rejected_share
    result = {
        "benchmark": "parallel-scoring",
        "rows": args.rows,
        "cores": os.cpu_count(),
        "load_average": os.getloadavg()[0],
        "trees": trees(model, library, data, limits, share),
        "whole_file": whole_file(model, data, limits, share, args.repeats),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
