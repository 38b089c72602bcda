"""Start a deployment's flow run and follow it to a final state, as CI needs for migrations.

Every non-final state is normal (Scheduled, Late, Pending, InfrastructurePending while ECS
provisions, Running, AwaitingRetry): it is printed with the elapsed time, never treated as an
error. Only Completed succeeds; Failed, Crashed and Cancelled fail with the run's last log lines;
running out of time fails with a message saying so (the run is left alone: a half-cancelled
migration is worse than a slow one).

Prefect's own `prefect.flow_runs.wait_for_flow_run` was considered: it waits on the events
websocket and, with log_states, logs only each state's type (`State(type=...)`), so it cannot say
a state's own name (Late, InfrastructurePending), its message ("ECS task is provisioning", the
exit code) or the elapsed time, which is what CI's log needs. Hence this small read loop.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

EXIT_COMPLETED, EXIT_FAILED, EXIT_TIMEOUT = 0, 1, 2


@dataclass
class Outcome:
    exit_code: int
    state: str
    flow_run_id: str
    lines: list[str] = field(default_factory=list)


def start_run(deployment_name: str, parameters: dict[str, Any] | None = None) -> str:
    from prefect.deployments import run_deployment

    run = run_deployment(deployment_name, parameters=parameters or {}, timeout=0, as_subflow=False)
    return str(run.id)  # type: ignore[union-attr]  # sync_compatible: a FlowRun from sync code


def follow(
    flow_run_id: str,
    timeout: float,
    say: Callable[[str], None] = print,
    poll_seconds: float = 2.0,
    log_lines: int = 20,
) -> Outcome:
    """Poll the run, saying each new state and the time since start; return how it ended."""
    from prefect.client.orchestration import get_client

    started = time.monotonic()
    last = None
    with get_client(sync_client=True) as client:
        while True:
            state = client.read_flow_run(UUID(flow_run_id)).state
            assert state is not None  # Prefect gives a created run its first state at once
            elapsed = time.monotonic() - started
            label = (
                f"{state.type.value} ({state.name})"
                if (state.name or "").upper() != state.type.value
                else state.type.value
            )
            if label != last:
                say(f"[{elapsed:6.1f}s] {label}" + (f": {state.message}" if state.message else ""))
                last = label
            if state.is_final():
                return _ending(client, flow_run_id, state, log_lines)
            if elapsed > timeout:
                say(
                    f"timed out after {timeout:.0f} s with flow run {flow_run_id} still "
                    f"{state.name}; it was not cancelled: check it in the Prefect UI (is a "
                    f"worker polling the work pool?) before running again"
                )
                return Outcome(EXIT_TIMEOUT, state.type.value, flow_run_id)
            time.sleep(poll_seconds)


def last_log_lines(client, flow_run_id: str, count: int) -> list[str]:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.client.schemas.sorting import LogSort

    logs = client.read_logs(
        log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[UUID(flow_run_id)])),
        limit=count,
        sort=LogSort.TIMESTAMP_DESC,
    )
    return [f"{log.timestamp:%H:%M:%S} {log.name}: {log.message}" for log in reversed(logs)]


def final_log_lines(client, flow_run_id: str, count: int, wait_seconds: float = 15) -> list[str]:
    """The last lines once the engine's closing line has arrived: a run ships its logs in batches
    after its state, so the final state can be read before the lines that explain it."""
    from tenacity import RetryError, retry, retry_if_result, stop_after_delay, wait_fixed

    @retry(
        retry=retry_if_result(lambda lines: not any("Finished in state" in line for line in lines)),
        stop=stop_after_delay(wait_seconds),
        wait=wait_fixed(0.5),
    )
    def read() -> list[str]:
        return last_log_lines(client, flow_run_id, count)

    try:
        return read()
    except RetryError as exc:  # a crashed run may never log its end: show what did arrive
        return exc.last_attempt.result()


def _ending(client, flow_run_id: str, state, log_lines: int) -> Outcome:
    if state.is_completed():
        return Outcome(EXIT_COMPLETED, state.type.value, flow_run_id)
    return Outcome(
        EXIT_FAILED, state.type.value, flow_run_id, final_log_lines(client, flow_run_id, log_lines)
    )
