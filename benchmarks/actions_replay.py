"""The actions list's own work at 1M rows, replayed on one thread: steadier than the paired
scoring runs of benchmarks/reasons.py on a shared machine, and a digest of what it made.

`python benchmarks/actions_replay.py [--rows 1000000] [--repeat 3] [--previous] [--profile F]`
scores the rows once through `streaming.score_stream` (the compiled Telco champion, default
chunks and threads) with a tap that only records each chunk (results, validated rows, the
scorer's kept rows), then replays the upload's ContactList over the recorded chunks `--repeat`
times on this thread: `prepare` and `add` per chunk in file order, then `write_to`. Prints one
JSON line: CPU seconds per step (medians), and sha256 digests of the actions CSV and of every
explanation handed to the History (ids, base, contributions, the explained rows), so two
checkouts' outputs can be compared byte for byte. `--previous`: a History whose previous upload
scored every other customer (the reindex and risk_change paths); `--profile F`: a cProfile of
the last replay (CPU clock) in F.
"""

from __future__ import annotations

import argparse
import cProfile
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.reasons import BLOCK, champion, csv_data  # noqa: E402


class Recording:
    """A tap that keeps every chunk as `prepare` would receive it, and does nothing else."""

    def __init__(self):
        self.chunks = []

    def prepare(self, results, upload, scored=None):
        return (results, upload, scored)

    def add(self, results, upload, prepared=None) -> None:
        self.chunks.append(prepared)


class Digesting:
    """A History that digests what it is handed (previous scores given, explanations hashed)."""

    def __init__(self, previous, features):
        self._previous, self.features = previous, features
        self.kept = []

    def previous(self):
        return self._previous

    def earlier(self, ids):
        """No customer was explained before (the previous upload's scores only)."""
        from models.changes import Earlier

        return Earlier.none([str(i) for i in ids], self.features)

    def scored(self, results) -> None:
        pass

    def explained(self, ids, explanation, X) -> None:
        self.kept.append((ids, explanation, X))  # digested after the replay (not timed)

    def digested(self) -> tuple[str, int]:
        """sha256 of every explanation in order, and the rows explained."""
        digest, rows = hashlib.sha256(), 0
        for ids, explanation, X in self.kept:
            rows += len(X)
            digest.update(json.dumps([str(i) for i in ids]).encode())
            digest.update(np.ascontiguousarray(explanation.base).tobytes())
            digest.update(np.ascontiguousarray(explanation.contributions).tobytes())
            digest.update(np.ascontiguousarray(explanation.margin).tobytes())  # layout-sensitive
            digest.update(json.dumps(explanation.features).encode())
            digest.update(X.to_csv().encode())
        return digest.hexdigest(), rows


def previous_table(chunks, rng):
    """A previous upload of every other customer: a third of them at the same probability."""
    import pyarrow as pa

    ids = np.concatenate([c[0]["customer_id"].astype(str).to_numpy() for c in chunks])[::2]
    now = np.concatenate([c[0]["churn_probability"].to_numpy() for c in chunks])[::2]
    probability = np.where(np.arange(len(ids)) % 3 == 0, now, rng.random(len(ids)))
    return pa.table({"customer_id": ids, "probability": probability})


def replay(trained, policy, chunks, previous, profile: str | None):
    from retainwise.uploads.contacts import ContactList

    history = Digesting(previous, trained.profile.feature_names)
    cpu = dict.fromkeys(("prepare", "add", "write_to"), 0.0)
    out = io.BytesIO()
    profiler = cProfile.Profile(time.process_time) if profile else None
    if profiler:
        profiler.enable()
    with ContactList(trained, policy, history) as contacts:
        for results, upload, scored in chunks:
            started = time.process_time()
            prepared = contacts.prepare(results, upload, scored)
            cpu["prepare"] += time.process_time() - started
            started = time.process_time()
            contacts.add(results, upload, prepared)
            cpu["add"] += time.process_time() - started
        started = time.process_time()
        contacts.write_to(out)
        cpu["write_to"] += time.process_time() - started
    if profiler:
        profiler.disable()
        profiler.dump_stats(profile)
    return cpu, out.getvalue(), history


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--previous", action="store_true")
    parser.add_argument("--profile")
    args = parser.parse_args()
    from retainwise.uploads.policy import ScoringPolicy
    from retainwise.uploads.streaming import score_stream

    policy = ScoringPolicy(max_rejected_share=0.5)
    load = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory() as directory:
        trained = champion(Path(directory))
        data = csv_data(args.rows)
        blocks = [data[i : i + BLOCK] for i in range(0, len(data), BLOCK)]
        recording = Recording()
        score_stream(iter(blocks), trained, policy, io.BytesIO(), io.BytesIO(), recording)
        del data, blocks
        chunks = recording.chunks
        previous = previous_table(chunks, np.random.default_rng(7)) if args.previous else None
        replay(trained, policy, chunks[:1], previous, None)  # warm: the tree tables, imports
        runs = []
        for n in range(args.repeat):
            last = n == args.repeat - 1
            run = replay(trained, policy, chunks, previous, args.profile if last else None)
            runs.append(run if last else (run[0], run[1], None))
    cpu = {step: round(float(np.median([r[0][step] for r in runs])), 3) for step in runs[0][0]}
    csv = runs[-1][1]
    explanations, explained_rows = runs[-1][2].digested()
    print(
        json.dumps(
            {
                "figure": "actions_replay",
                "rows": args.rows,
                "chunks": len(chunks),
                "repeat": args.repeat,
                "previous": args.previous,
                "cpu": cpu,
                "cpu_total": round(sum(cpu.values()), 3),
                "runs_total": [round(sum(r[0].values()), 3) for r in runs],
                "csv_sha256": hashlib.sha256(csv).hexdigest(),
                "csv_bytes": len(csv),
                "csv_same_each_run": all(r[1] == csv for r in runs),
                "explanations_sha256": explanations,
                "explained_rows": explained_rows,
                "load_average": load,
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
