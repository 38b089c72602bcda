"""The Prefect API as the rest of the code needs it: the state of flow runs it holds."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def prefect_run_states(flow_run_ids: Iterable[str]) -> dict[str, str]:
    """State type (RUNNING, CRASHED, ...) of each flow run the Prefect API knows, by id."""
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    ids = []
    for value in flow_run_ids:
        try:
            ids.append(UUID(value))
        except ValueError:
            continue
    if not ids:
        return {}
    with get_client(sync_client=True) as client:
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ids)))
    return {str(run.id): run.state.type.value for run in runs if run.state}


def cancel_flow_run(flow_run_id: str, message: str) -> str | None:
    """Ask Prefect to cancel a run, as the UI's Cancel does; returns the state type it ended in.

    Cancelling tells the run's worker (ECS, `serve`) to stop its process; a run with nothing
    left to stop is moved to Cancelled by the server (at once if it never started, else after
    its cancelling timeout). A run already in a final state is left as it is.
    """
    from uuid import UUID

    from prefect.client.orchestration import get_client
    from prefect.client.schemas import OrchestrationResult
    from prefect.states import Cancelling

    with get_client(sync_client=True) as client:
        result: OrchestrationResult[Any] = client.set_flow_run_state(
            UUID(flow_run_id), Cancelling(message=message)
        )
    return result.state.type.value if result.state else None
