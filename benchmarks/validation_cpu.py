"""Validation's CPU seconds per 1M rows and its share of the busy seconds, baseline vs this tree.

The baseline is retainwise/uploads/validation.py and streaming.py at `--baseline` (a git ref),
loaded from `git show` as modules, so both sides run in one process on the same parsed tables:

1. CPU seconds (time.process_time; and time.thread_time of the calling thread, the critical
   path when validation's second thread has a core) of `validate_upload` on the whole file read
   once, and on the file cut into the streamed path's 8 MiB chunks (`validate_piece` each, as
   `score_stream` validates them); sides alternate, medians of `--repeats`.
2. Every output compared between the sides: rejects (rows, reasons, cells), quality report,
   accepted frame (values, dtypes, category codes and categories), ids, category counts, source,
   failure. Any difference exits 1.
3. The streamed scoring path (`score_stream`, no S3 or Prefect) once per side: busy seconds per
   stage and validation's share of them, the figure `make bench` reports (target <= 15%; wall
   seconds, so inflated by other load), and validation's share of the path's CPU seconds
   (step 1's chunked CPU over the path's CPU, all threads), which load barely moves.
4. Files under 64 MiB (400k Telco rows): the whole-file path (`pipeline.score_file`) `--repeats`
   times per side, alternating; seconds per stage of the run with the median validation share.

The upload is benchmarks/data.py's Telco-schema table (`ensure(rows)`) with faults added so
every reject path runs: 1% unparseable tenure, 0.1% duplicate ids, 0.05% missing ids, 0.05%
out-of-range MonthlyCharges, 0.5% grouped or decimal-comma TotalCharges, 1% re-spelled
categories and 0.1% unseen ones; `--clean` takes the table as it is (what `make bench` scores).
Prints figures, then one JSON line last; exit status 1 if the outputs differ.

    .venv/bin/python benchmarks/validation_cpu.py [--rows 1000000] [--repeats 3] [--clean]
        [--baseline 8ee2d77] [--sklearn] [--chunk-mib 8]
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import io
import json
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from benchmarks.data import ID, TARGET, ensure, load_telco  # noqa: E402
from retainwise.uploads import streaming, validation  # noqa: E402
from retainwise.uploads.policy import ScoringPolicy  # noqa: E402
from retainwise.uploads.reading import read_upload  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MODULE = "retainwise/uploads/validation.py"
STREAMING = "retainwise/uploads/streaming.py"
TARGET_SHARE = 0.15
BLOCK = 4 << 20  # bytes per S3 read, as retainwise.adapters.aws.iter_blocks yields them


def blocks(data: bytes) -> list[bytes]:
    return [data[i : i + BLOCK] for i in range(0, len(data), BLOCK)]


def faulty_upload(rows: int) -> bytes:
    """The benchmark table with a fixed set of faults (seeded), as CSV bytes."""
    frame = pd.read_csv(ensure(rows), dtype=str, keep_default_na=False)
    rng = np.random.default_rng(14)

    def pick(share: float) -> np.ndarray:
        return rng.choice(rows, max(1, int(rows * share)), replace=False)

    frame.loc[pick(0.01), "tenure"] = "unknown"
    dupes = pick(0.001)
    frame.loc[dupes, ID] = frame[ID].iloc[(dupes + 7) % rows].to_numpy()
    frame.loc[pick(0.0005), ID] = ""
    frame.loc[pick(0.0005), "MonthlyCharges"] = "99999"
    grouped = pick(0.005)
    spellings = ["1,234.5", "2 345,75", "29,85", "n/a"]
    frame.loc[grouped, "TotalCharges"] = [spellings[i % 4] for i in range(len(grouped))]
    respelled = pick(0.01)
    frame.loc[respelled, "Partner"] = frame.loc[respelled, "Partner"].str.lower() + " "
    frame.loc[pick(0.01), "PaperlessBilling"] = "TRUE"
    frame.loc[pick(0.001), "Contract"] = "Four year"
    return frame.to_csv(index=False).encode()


def module_at(ref: str, path: str, name: str) -> types.ModuleType:
    """`path` as it was at `ref`, importable beside today's."""
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{ref}:{path}"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    module = types.ModuleType(f"{name}_{ref}")
    module.__file__ = f"{ref}:{path}"
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


def baseline_modules(ref: str) -> tuple[types.ModuleType, types.ModuleType]:
    """(validation, streaming) at `ref`, the old streaming calling the old validation (its
    duplicate-id check across chunks counts as validation in the streamed path's busy seconds)."""
    old_validation = module_at(ref, MODULE, "validation")
    old_streaming = module_at(ref, STREAMING, "streaming")
    for name in (
        "ValidatedUpload",
        "reject_rows",
        "row_numbers",
        "too_many_rejected",
        "validate_upload",
    ):
        setattr(old_streaming, name, getattr(old_validation, name))
    return old_validation, old_streaming


def trained_model(compiled: bool):
    """The champion as a warm worker holds it: Telco-trained, compiled trees when gcc is here."""
    from models.training import train

    trained = train(load_telco(), TARGET, ID)
    model = types.SimpleNamespace(
        name="benchmark",
        version="1",
        pipeline=trained.pipeline,
        profile=trained.profile,
        scorer=trained.pipeline,
    )
    if compiled:
        import tempfile

        from models.compiled import CompiledModel, compile_trees
        from models.features import prepare_features

        check = prepare_features(load_telco().head(500), trained.profile.features)
        library = compile_trees(trained.pipeline, Path(tempfile.mkdtemp(prefix="vcpu-")), check)
        if library is not None:
            model.scorer = CompiledModel(trained.pipeline, library)
    return model


def cpu_of(function, *args) -> tuple[float, float, float, object]:
    """(CPU seconds of this process, of this thread, wall seconds, result). This thread's CPU is
    validation's critical path when its second thread (the categories) has a core of its own."""
    cpu, thread, wall = time.process_time(), time.thread_time(), time.perf_counter()
    out = function(*args)
    return (
        time.process_time() - cpu,
        time.thread_time() - thread,
        time.perf_counter() - wall,
        out,
    )


def validate_chunks(stream, tables, profile) -> list:
    """The pieces validated as `stream`.score_stream does (row numbers, ids across pieces)."""
    seen, offset, out = stream.SeenIds(), 0, []
    for table in tables:
        upload = stream.validate_piece(table, profile, offset, seen)
        offset += upload.rows_total
        out.append(upload)
    return out


def differences(before, after) -> list[str]:
    """What differs between two ValidatedUploads (empty when nothing does)."""
    found = []
    for name, check in (
        ("accepted", pd.testing.assert_frame_equal),
        ("customer_ids", pd.testing.assert_series_equal),
        ("rejects", pd.testing.assert_frame_equal),
    ):
        try:
            check(getattr(before, name), getattr(after, name), check_exact=True)
        except AssertionError as exc:
            found.append(f"{name}: {str(exc)[:300]}")
    for name in categorical(before.accepted):
        if not np.array_equal(before.accepted[name].cat.codes, after.accepted[name].cat.codes):
            found.append(f"category codes of {name}")
    for name in ("rows_total", "failure", "quality", "source", "category_counts"):
        if fields(getattr(before, name)) != fields(getattr(after, name)):
            found.append(name)
    return found


def fields(value: object) -> object:
    """A dataclass as a dict: the baseline's classes are other classes, never == this tree's."""
    return dataclasses.asdict(value) if dataclasses.is_dataclass(value) else value  # type: ignore[arg-type]


def categorical(frame: pd.DataFrame) -> list[str]:
    return [n for n, t in frame.dtypes.items() if isinstance(t, pd.CategoricalDtype)]


def stream_seconds(stream, data: bytes, model, chunk_bytes: int) -> dict:
    """Busy seconds per stage of `stream`.score_stream on the file."""
    cpu = time.process_time()
    if "policy" in inspect.signature(stream.score_stream).parameters:
        args = (ScoringPolicy(chunk_bytes=chunk_bytes), io.BytesIO(), io.BytesIO())
    else:  # a baseline from before ScoringPolicy
        args = (0.5, io.BytesIO(), io.BytesIO(), chunk_bytes)
    _, totals = stream.score_stream(iter(blocks(data)), model, *args)
    seconds = {k: round(v, 2) for k, v in totals.seconds.items()}
    return {
        "busy_s": seconds,
        "cpu_s": round(time.process_time() - cpu, 2),
        "validation_share_of_busy": round(seconds["validating"] / sum(seconds.values()), 3),
    }


def whole_file_seconds(module, data: bytes, model) -> dict:
    """Seconds per stage of the whole-file path (`pipeline.score_file`, what uploads under the
    chunked threshold take) with `module`'s validator, and validation's share of its CPU."""
    from retainwise.uploads import pipeline
    from retainwise.uploads.reading import Limits

    saved, pipeline.validate_upload = pipeline.validate_upload, module.validate_upload
    try:
        cpu = time.process_time()
        scored = pipeline.score_file(data, model, ScoringPolicy(Limits(max_bytes=1 << 40)))
        cpu = time.process_time() - cpu
    finally:
        pipeline.validate_upload = saved
    seconds = {k: round(v, 2) for k, v in scored.seconds.items()}
    return {
        "busy_s": seconds,
        "cpu_s": round(cpu, 2),
        "validation_share_of_busy": round(seconds["validating"] / sum(seconds.values()), 3),
    }


def median_run(runs: list[dict]) -> dict:
    """The run with the median validation share (its own seconds, not a mix of runs)."""
    return sorted(runs, key=lambda r: r["validation_share_of_busy"])[len(runs) // 2]


def run(
    rows: int,
    repeats: int,
    ref: str,
    compiled: bool,
    clean: bool,
    chunk_bytes: int = ScoringPolicy.chunk_bytes,
) -> dict:
    data = ensure(rows).read_bytes() if clean else faulty_upload(rows)
    sides = {"baseline": baseline_modules(ref), "now": (validation, streaming)}
    model = trained_model(compiled)
    profile = model.profile
    whole = read_upload(data, 1 << 40)
    tables = [
        streaming.read_piece(piece, i == 0)
        for i, piece in enumerate(streaming.record_chunks(iter(blocks(data)), chunk_bytes))
    ]
    for module, _ in sides.values():  # GX's context and first-call imports are start-up
        module._batch_definition()
        module.validate_upload(tables[0], profile, 1.0)
    cpu = {side: {"whole": [], "chunked": []} for side in sides}
    wall = {side: {"whole": [], "chunked": []} for side in sides}
    main = {side: {"whole": [], "chunked": []} for side in sides}  # CPU of the calling thread
    outputs = {}
    for repeat in range(repeats):
        order = list(sides) if repeat % 2 == 0 else list(sides)[::-1]
        for side in order:
            module, streamer = sides[side]
            c, t, w, outputs[side, "whole"] = cpu_of(module.validate_upload, whole, profile, 0.5)
            cpu[side]["whole"].append(c)
            main[side]["whole"].append(t)
            wall[side]["whole"].append(w)
            c, t, w, outputs[side, "chunked"] = cpu_of(validate_chunks, streamer, tables, profile)
            cpu[side]["chunked"].append(c)
            main[side]["chunked"].append(t)
            wall[side]["chunked"].append(w)
    found = differences(outputs["baseline", "whole"], outputs["now", "whole"])
    for i, (b, a) in enumerate(
        zip(outputs["baseline", "chunked"], outputs["now", "chunked"], strict=True)
    ):
        found += [f"chunk {i}: {d}" for d in differences(b, a)]
    per_million = 1e6 / rows
    summary = {
        side: {
            kind: {
                "cpu_s_per_1m_rows": round(statistics.median(cpu[side][kind]) * per_million, 3),
                "main_thread_cpu_s_per_1m_rows": round(
                    statistics.median(main[side][kind]) * per_million, 3
                ),
                "wall_s": round(statistics.median(wall[side][kind]), 3),
            }
            for kind in ("whole", "chunked")
        }
        for side in sides
    }
    for kind in ("whole", "chunked"):
        b = summary["baseline"][kind]["cpu_s_per_1m_rows"]
        a = summary["now"][kind]["cpu_s_per_1m_rows"]
        print(
            f"validate_upload, {kind} ({rows:,} rows, {len(tables)} chunks): baseline {b:.2f} "
            f"CPU s per 1M rows, now {a:.2f} ({b / a:.2f}x less); of the calling thread "
            f"{summary['baseline'][kind]['main_thread_cpu_s_per_1m_rows']:.2f} and "
            f"{summary['now'][kind]['main_thread_cpu_s_per_1m_rows']:.2f}"
        )
    print(f"outputs identical: {not found}" + "".join(f"\n  differs: {d}" for d in found[:20]))
    stream = {}
    for side in sides:
        stream[side] = stream_seconds(sides[side][1], data, model, chunk_bytes)
        stream[side]["validation_share_of_cpu"] = round(  # robust on a shared machine
            statistics.median(cpu[side]["chunked"]) / stream[side]["cpu_s"], 3
        )
        print(
            f"streamed scoring path, {side}: busy seconds {stream[side]['busy_s']}, "
            f"validation {stream[side]['validation_share_of_busy']:.0%} of them "
            f"(target <= {TARGET_SHARE:.0%}); CPU {stream[side]['cpu_s']} s, of which "
            f"validation {stream[side]['validation_share_of_cpu']:.0%}"
        )
    whole_file = {}
    if len(data) <= 64 * 2**20:  # Settings.chunked_above_bytes: larger uploads are streamed
        runs = {side: [] for side in sides}
        for repeat in range(repeats):
            for side in list(sides) if repeat % 2 == 0 else list(sides)[::-1]:
                runs[side].append(whole_file_seconds(sides[side][0], data, model))
        for side in sides:
            whole_file[side] = median_run(runs[side])
            print(
                f"whole-file scoring path, {side}: seconds {whole_file[side]['busy_s']}, "
                f"validation {whole_file[side]['validation_share_of_busy']:.0%} of them; "
                f"CPU {whole_file[side]['cpu_s']} s"
            )
    return {
        "benchmark": "validation_cpu",
        "whole_file": whole_file,
        "rows": rows,
        "clean": clean,
        "bytes": len(data),
        "chunk_mib": round(chunk_bytes / 2**20, 1),
        "chunks": len(tables),
        "repeats": repeats,
        "baseline": ref,
        "scorer": "compiled" if hasattr(model, "scorer") else "scikit-learn",
        "rows_rejected": outputs["now", "whole"].rows_rejected,
        "cpu": summary,
        "stream": stream,
        "identical": not found,
        "differences": found[:20],
        "meets_target": stream["now"]["validation_share_of_busy"] <= TARGET_SHARE,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--baseline", default="8ee2d77", help="git ref of the baseline validator")
    parser.add_argument(
        "--sklearn",
        action="store_true",
        help="score with scikit-learn rather than the compiled trees",
    )
    parser.add_argument(
        "--clean", action="store_true", help="benchmarks/data.py's table without added faults"
    )
    parser.add_argument(
        "--chunk-mib",
        type=float,
        default=ScoringPolicy.chunk_bytes / 2**20,
        help="piece size of the streamed path (Settings.chunk_bytes)",
    )
    args = parser.parse_args(argv)
    summary = run(
        args.rows,
        args.repeats,
        args.baseline,
        not args.sklearn,
        args.clean,
        int(args.chunk_mib * 2**20),
    )
    print(json.dumps(summary))
    return 0 if summary["identical"] else 1


if __name__ == "__main__":
    sys.exit(main())
