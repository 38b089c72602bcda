"""Per-run reads of /admin/storage and CPU seconds of in-process flow runs, on a real Prefect API.

`python benchmarks/storage_reads.py before|after [RUNS]`: a flow of 5 task runs with a
`flow_run_name` (as score-upload has), run RUNS times in this process against a temporary Prefect
server; `after` runs it as the warm worker does (`worker.without_result_storage_reads`). Prints
the reads per run and their callers, this process's CPU seconds per run (user+sys), the server's
(psutil) and wall seconds, as one JSON line. `cost [READS]` times the read itself instead.
"""

import collections
import json
import sys
import time
import traceback

import psutil
from prefect import flow, task
from prefect.testing.utilities import prefect_test_harness

MODE = sys.argv[1] if len(sys.argv) > 1 else "before"
N = int(sys.argv[2]) if len(sys.argv) > 2 else 20


@task
def a(x):
    return x + 1


@task
def b(x):
    return x * 2


@flow(name="storage-probe", flow_run_name="probe-{x}")
def probe(x: int) -> int:
    return b(a(a(b(a(x)))))


def read_cost(n: int) -> None:
    """CPU (client, server) and wall milliseconds of one `GET /admin/storage`."""
    from prefect.client.orchestration import get_client

    with prefect_test_harness(server_startup_timeout=120):
        server = psutil.Process().children(recursive=True)
        with get_client(sync_client=True) as client:
            client.read_server_default_result_storage()
            s0 = sum(sum(p.cpu_times()[:2]) for p in server)
            c0, w0 = time.process_time(), time.perf_counter()
            for _ in range(n):
                client.read_server_default_result_storage()
            c1, w1 = time.process_time(), time.perf_counter()
            s1 = sum(sum(p.cpu_times()[:2]) for p in server)
    print(
        json.dumps(
            {
                "reads": n,
                "client_cpu_ms_per_read": round((c1 - c0) / n * 1000, 2),
                "server_cpu_ms_per_read": round((s1 - s0) / n * 1000, 2),
                "wall_ms_per_read": round((w1 - w0) / n * 1000, 2),
            }
        )
    )


def main():
    callers = collections.Counter()
    from prefect.client.orchestration import PrefectClient, SyncPrefectClient

    orig_s = SyncPrefectClient.read_server_default_result_storage
    orig_a = PrefectClient.read_server_default_result_storage

    def count_s(self):
        callers[" <- ".join(f"{f.name}" for f in traceback.extract_stack()[-6:-1])] += 1
        return orig_s(self)

    async def count_a(self):
        callers["async " + " <- ".join(f"{f.name}" for f in traceback.extract_stack()[-6:-1])] += 1
        return await orig_a(self)

    SyncPrefectClient.read_server_default_result_storage = count_s
    PrefectClient.read_server_default_result_storage = count_a
    with prefect_test_harness(server_startup_timeout=120):
        global probe
        if MODE == "after":
            from retainwise.runtime.worker import without_result_storage_reads

            probe = without_result_storage_reads(probe)
        server = [p for p in psutil.Process().children(recursive=True)]
        probe(0)  # warm
        callers.clear()
        t0, c0 = time.process_time(), time.perf_counter()
        s0 = sum(sum(p.cpu_times()[:2]) for p in server)
        for i in range(N):
            probe(i)
        cpu, wall = time.process_time() - t0, time.perf_counter() - c0
        s1 = sum(sum(p.cpu_times()[:2]) for p in server)
    print(
        json.dumps(
            {
                "mode": MODE,
                "runs": N,
                "client_cpu_per_run": round(cpu / N, 4),
                "server_cpu_per_run": round((s1 - s0) / N, 4),
                "wall_per_run": round(wall / N, 4),
                "storage_reads_per_run": sum(callers.values()) / N,
                "callers": dict(callers),
            }
        )
    )


if MODE == "cost":
    read_cost(N)
else:
    main()
