"""A warm flow runner: import once, then execute each flow run of the served deployments in-process.

Prefect's `serve` starts a fresh interpreter per flow run, which costs ~10 s of imports plus the
model load before the first row is read. Here a parent imports the flows, registers their
deployments and forks `processes` children; the idle child holding the poll turn polls the Prefect
API for scheduled runs of those deployments when the server's events say one was scheduled (and
every few seconds in case an event was missed), claims one by proposing Pending (the server lets
exactly one proposer win, so a run executes once) and runs it through Prefect's own flow engine,
so states, task runs, logs and
artifacts look exactly as under `serve`. Loaded models and the Great Expectations context stay
cached in the child between runs. A child that dies mid-run has its run marked Crashed and is
replaced.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import fcntl
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict
from uuid import UUID

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from prefect.client.schemas.filters import DeploymentFilter, FlowRunFilter
    from prefect.client.schemas.sorting import FlowRunSort

    from retainwise.config.settings import Settings

log = logging.getLogger("retainwise.runtime.worker")
POLL_SECONDS = 0.2  # without a live event subscription; and the one re-check after a wake
FALLBACK_POLL_SECONDS = 5.0  # with one: a missed event delays a run by at most this
RECONNECT_SECONDS = 5.0  # between subscriptions, once Prefect's own reconnects have given up
POLL_LIMIT = 20  # a child takes one run per poll; more would only be read and dropped
HEARTBEAT_SECONDS = 10


@dataclass(frozen=True)
class Served:
    """The deployments this runner executes, by id, where children note their current run, and
    the runner's settings (read once in the parent; each child builds its Resources from them)."""

    flows: dict[UUID, Any]
    state_dir: Path
    settings: Settings


def register(deployments: list[tuple[Any, Any]]) -> dict[UUID, Any]:
    """Create or update each (flow, RunnerDeployment) pair; no work pool: this runner runs them."""
    return {
        deployment.apply(): without_result_storage_reads(flow) for flow, deployment in deployments
    }


def without_result_storage_reads(flow):
    """The flow with its result storage and persistence stated, so a run never asks the server.

    A flow that states neither makes Prefect read the server's default result storage
    (`GET /admin/storage`) each time it builds a run's result store or picks the persistence
    default: 3 reads per score-upload run (2 per run of a flow without `flow_run_name`). Prefect
    caches the storage it builds, not the read. Stating them on the flow (Prefect's public
    `with_options`) skips the read and keeps today's behaviour: results are not persisted, and the
    storage is the local default Prefect would fall back to. Our flows keep what they produce in
    S3 and the database, never in Prefect results, so a server-side default result storage an
    operator might set is deliberately not used by the warm runs. A flow that states either keeps
    its own choice.
    """
    if flow.result_storage is not None or flow.persist_result is not None:
        return flow
    from prefect.settings import get_current_settings

    # a Path, not a LocalFileSystem block: Prefect accepts an unsaved block only as a Path
    storage = Path(get_current_settings().results.local_storage_path)
    return flow.with_options(persist_result=False, result_storage=storage)


def claim(client, flow_run) -> bool:
    """Scheduled -> Pending; the server aborts the proposal for every claimant but the first."""
    from prefect.exceptions import Abort
    from prefect.states import Pending
    from prefect.utilities.engine import propose_state_sync

    try:
        return propose_state_sync(client, Pending(), flow_run_id=flow_run.id).is_pending()
    except Abort:
        return False


def execute(flow, flow_run) -> None:
    """Run one claimed flow run in this process; the engine records its final state."""
    from prefect.flow_engine import run_flow

    try:
        run_flow(as_named(flow, flow_run), flow_run=flow_run)
    except BaseException as exc:  # the engine has already recorded Failed/Crashed
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        log.info("flow run %s ended with %s", flow_run.id, type(exc).__name__)


_UNNAMED: dict[int, tuple[Any, Any]] = {}  # id(flow) -> (flow, its copy without the name)


def as_named(flow, flow_run):
    """The flow to run `flow_run` with: without its `flow_run_name` when the run already has the
    name it would give (the trigger names each run as it creates it), so the engine does not
    rename the run to the name it has (a PATCH per run). A run named otherwise (e.g. one started
    by hand from the UI, with a generated name) is renamed as before."""
    template = flow.flow_run_name
    if not isinstance(template, str):
        return flow
    try:
        name = template.format(**(flow_run.parameters or {}))
    except (KeyError, IndexError, ValueError):  # Prefect's own rename will say what is wrong
        return flow
    if flow_run.name != name:
        return flow
    kept = _UNNAMED.get(id(flow))
    if kept is None or kept[0] is not flow:  # (an id can be reused once its flow is gone)
        unnamed = flow.with_options()
        unnamed.flow_run_name = None  # with_options keeps a name given as None
        kept = _UNNAMED[id(flow)] = (flow, unnamed)
    return kept[1]


def next_runs(client, served: Served, heartbeat: bool = False) -> list[Any]:
    """Scheduled runs of the served deployments that are due, oldest first (see `poll`)."""
    return poll(client, served, heartbeat).due


@dataclass(frozen=True)
class Polled:
    """A poll's answer: the due runs, oldest first, and when the next one not yet due is
    (a Unix time; None if none is due within the poll's lookahead)."""

    due: list[Any]
    next_due_at: float | None = None


def poll(client, served: Served, heartbeat: bool = False, lookahead: float = 0.0) -> Polled:
    """Scheduled runs of the served deployments due now or within `lookahead` seconds.

    Prefect's runner endpoint (`get_scheduled_flow_runs`) also marks the deployments ready: a
    write on the server's SQLite on every poll, five a second per idle child, and each such write
    made a concurrent flow run creation fail with 503. So polls are plain reads, and the runner
    endpoint is used only as a `heartbeat` every HEARTBEAT_SECONDS, to keep the deployments
    Ready in the UI (the server marks them Not Ready after 60 s without one).

    The lookahead lets a child that waits for events wake when a run scheduled for later (a
    cron run, a retry) becomes due, with no extra call: the server's events say only that a run
    was scheduled, not for when.
    """
    now = datetime.now(UTC)
    before = now + timedelta(seconds=lookahead)
    if heartbeat:
        runs = client.get_scheduled_flow_runs_for_deployments(
            deployment_ids=list(served.flows), scheduled_before=before
        )
    else:
        runs = client.read_flow_runs(**due_runs_filter(list(served.flows), before))
    runs = sorted(runs, key=lambda run: run.next_scheduled_start_time or EPOCH)
    due = [run for run in runs if (run.next_scheduled_start_time or EPOCH) <= now]
    later = [run.next_scheduled_start_time for run in runs[len(due) :]]
    return Polled(due, later[0].timestamp() if later else None)


EPOCH = datetime.min.replace(tzinfo=UTC)


class DueRunsQuery(TypedDict):
    """read_flow_runs' keyword arguments."""

    deployment_filter: DeploymentFilter
    flow_run_filter: FlowRunFilter
    sort: FlowRunSort
    limit: int


def due_runs_filter(deployment_ids: list[UUID], now: datetime) -> DueRunsQuery:
    """The runner endpoint's query as `read_flow_runs` filters: Scheduled, due by `now`,
    these deployments'."""
    from prefect.client.schemas import filters, sorting
    from prefect.client.schemas.objects import StateType

    return {
        "deployment_filter": filters.DeploymentFilter(
            id=filters.DeploymentFilterId(any_=deployment_ids)
        ),
        "flow_run_filter": filters.FlowRunFilter(
            state=filters.FlowRunFilterState(
                type=filters.FlowRunFilterStateType(any_=[StateType.SCHEDULED])
            ),
            # pydantic validates the datetime into Prefect's DateTime
            next_scheduled_start_time=filters.FlowRunFilterNextScheduledStartTime(
                before_=now  # type: ignore[arg-type]
            ),
        ),
        "sort": sorting.FlowRunSort.NEXT_SCHEDULED_START_TIME_ASC,
        "limit": POLL_LIMIT,
    }


STOP_REPORT_SECONDS = 20  # ECS sends SIGKILL 30 s after SIGTERM


def tell_why_if_still_alive() -> None:
    """After SIGTERM: if this process still runs STOP_REPORT_SECONDS later, write every thread's
    stack to stderr (the service log), so a stop that hangs says where before SIGKILL comes."""
    faulthandler.dump_traceback_later(STOP_REPORT_SECONDS, exit=False)


class StopRequested(BaseException):
    """SIGTERM or SIGINT reached an idle child: it has nothing to finish, so it stops at once.

    A BaseException, like KeyboardInterrupt, so the polling loop's `except Exception` (which
    retries a failed API call) cannot swallow it.
    """


class ChildStop:
    """A child's SIGTERM/SIGINT handler. Idle (polling, waiting or warming up), it stops at once,
    even inside an API call that the server is slow to answer (retries included, that can take
    longer than ECS's stop timeout); holding a claimed run, it only sets `event`, and the loop
    ends when the run does.

    `wake` is what an idle child holding the poll turn waits on between polls: set by a new
    run's event (`NewRuns`) and by a stop."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.wake = threading.Event()
        self.holding_run = False

    def set(self) -> None:
        """Ask the loop to stop (after the run it holds, if any), waking it if it waits."""
        self.event.set()
        self.wake.set()

    def __call__(self, *_: Any) -> None:
        self.set()
        tell_why_if_still_alive()
        if not self.holding_run:
            raise StopRequested

    @contextlib.contextmanager
    def holding(self):
        self.holding_run = True
        try:
            yield
        finally:
            self.holding_run = False

    def install(self) -> None:
        signal.signal(signal.SIGTERM, self)
        signal.signal(signal.SIGINT, self)


class PollTurn:
    """Whose turn it is to poll: one idle child of a runner at a time.

    Each idle child polled every POLL_SECONDS, so a runner of N children asked N times over for
    the same runs (an HTTP call and the server's query, and pydantic parsing of the answer, each
    time). Now an idle child takes the turn (an exclusive `flock` on a file in the state dir),
    polls until it claims a run, and hands the turn on before it runs it: the next idle child
    polls at once, so a burst is shared as before, at the same pick-up latency. The kernel
    releases the lock when its holder exits or dies, so a killed child never keeps the turn.
    """

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # a signal (SIGTERM while idle) interrupts the wait
            yield
        finally:
            os.close(fd)  # releases the lock


class Heartbeat:
    """When this child's next poll should be the heartbeat (HEARTBEAT_SECONDS apart)."""

    def __init__(self) -> None:
        self.next_at = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self.next_at

    def beaten(self) -> None:
        self.next_at = time.monotonic() + HEARTBEAT_SECONDS


def new_runs_filter(deployment_ids: list[UUID]):
    """The server's events of a served deployment's flow run entering a Scheduled-type state
    (Scheduled, Late, AwaitingRetry, ...): a run this runner may now have to claim."""
    from prefect.events.filters import (
        EventAnyResourceFilter,
        EventFilter,
        EventNameFilter,
        EventResourceFilter,
    )
    from prefect.events.schemas.events import ResourceSpecification

    return EventFilter(
        event=EventNameFilter(prefix=["prefect.flow-run."]),
        resource=EventResourceFilter(
            labels=ResourceSpecification({"prefect.state-type": ["SCHEDULED"]})
        ),
        # the flow run's deployment is a related resource; the server applies `any_resource`
        # to the live stream (its `related` filter only to the backfill)
        any_resource=EventAnyResourceFilter(
            id=[f"prefect.deployment.{deployment_id}" for deployment_id in deployment_ids]
        ),
    )


def prefect_subscriber(event_filter):
    """Prefect's own events subscriber (a websocket to `/api/events/out`; it reconnects itself,
    replaying the last minute's matching events, so a short drop loses nothing)."""
    from prefect.events.clients import get_events_subscriber

    return get_events_subscriber(filter=event_filter, reconnect_on_clean_close=True)


class NewRuns:
    """Sets `wake` whenever the Prefect server says one of these deployments' flow runs was
    scheduled, so the child holding the poll turn polls then instead of every POLL_SECONDS.

    A thread with its own event loop, subscribed for the child's life (one websocket per child:
    a connection per turn would cost a handshake and the server's backfill query per run).
    `connected` is set while a subscription is open; the waiting child polls every
    POLL_SECONDS without one, as before, and every FALLBACK_POLL_SECONDS with one. The events
    only wake: which runs exist, and who gets one, stay the poll's and the server's Pending
    claim's, so a duplicate, late or missed event never runs anything twice or loses a run.
    """

    def __init__(
        self,
        deployment_ids: list[UUID],
        wake: threading.Event,
        subscribe: Callable[[Any], Any] = prefect_subscriber,
    ) -> None:
        self.deployment_ids = deployment_ids
        self.wake = wake
        self.subscribe = subscribe
        self.connected = threading.Event()
        self._closing = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> NewRuns:
        from prefect.settings import PREFECT_API_URL

        if PREFECT_API_URL.value():  # (no server to listen to otherwise: poll as before)
            self._thread = threading.Thread(target=self._run, name="new-runs", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self._closing.set()
        loop, task = self._loop, self._task
        if loop is not None and task is not None:
            with contextlib.suppress(RuntimeError):  # the loop has already ended
                loop.call_soon_threadsafe(task.cancel)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        with contextlib.suppress(asyncio.CancelledError):  # closed with the child
            asyncio.run(self._listen())

    async def _listen(self) -> None:
        self._loop, self._task = asyncio.get_running_loop(), asyncio.current_task()
        event_filter = new_runs_filter(self.deployment_ids)
        while not self._closing.is_set():
            try:
                async with self.subscribe(event_filter) as events:
                    self.connected.set()
                    self.wake.set()  # a run scheduled while not subscribed: poll once now
                    async for _ in events:
                        self.wake.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "no Prefect events (%s: %s); polling every %s s until subscribed again",
                    type(exc).__name__,
                    exc,
                    POLL_SECONDS,
                )
            finally:
                self.connected.clear()
            await asyncio.sleep(RECONNECT_SECONDS)


def child_loop(
    served: Served,
    stop: ChildStop,
    fallback_seconds: float = FALLBACK_POLL_SECONDS,
    subscribe: Callable[[Any], Any] = prefect_subscriber,
) -> None:
    """Take the turn to poll, poll until a run is claimed, hand the turn on, execute the run;
    until asked to stop. One run at a time per child.

    One API client for the child's life: the polls and every run's engine share it (Prefect's
    engine takes the client of an open SyncClientContext), where each run opened its own (an
    SSL context and a connection per run). One events subscription for its life (`NewRuns`).
    """
    from prefect.context import SyncClientContext

    marker = served.state_dir / f"{os.getpid()}.run"
    turn, heartbeat = PollTurn(served.state_dir / "poll.turn"), Heartbeat()
    with (
        SyncClientContext.get_or_create() as client_context,
        NewRuns(list(served.flows), stop.wake, subscribe) as new_runs,
    ):
        client = client_context.client
        while not stop.event.is_set():
            with turn.held():
                flow_run = claim_next(client, served, stop, heartbeat, new_runs, fallback_seconds)
            if flow_run is None:
                continue
            try:  # stop.holding_run is set: a SIGTERM now waits for the run to end
                marker.write_text(str(flow_run.id))
                execute(served.flows[flow_run.deployment_id], flow_run)
                marker.unlink(missing_ok=True)
            finally:
                stop.holding_run = False


def claim_next(
    client,
    served: Served,
    stop: ChildStop,
    heartbeat: Heartbeat,
    new_runs: NewRuns,
    fallback_seconds: float = FALLBACK_POLL_SECONDS,
) -> Any:
    """Poll until a due run is claimed (returned with `stop.holding_run` set, so a SIGTERM lets
    it finish); None once asked to stop.

    Between polls it waits for `stop.wake`: a new run's event, or FALLBACK_POLL_SECONDS (a
    missed event), or until the earliest run scheduled for later is due, whichever comes first;
    POLL_SECONDS while not subscribed. A wake whose poll finds nothing polls once more
    POLL_SECONDS later: the server sends a state's event before its transaction commits, so the
    first poll may, rarely, not see the run yet.
    """
    woken = rechecking = False
    while not stop.event.is_set():
        stop.wake.clear()  # before the poll: an event from now on wakes the wait below
        beat = heartbeat.due()
        try:
            polled = poll(client, served, beat, lookahead=fallback_seconds)
        except Exception:
            log.exception("polling the Prefect API failed; retrying")
            stop.event.wait(2)
            continue
        if beat:
            heartbeat.beaten()
        for flow_run in polled.due:
            stop.holding_run = True
            if not stop.event.is_set() and claim(client, flow_run):
                return flow_run
            stop.holding_run = False
        if stop.event.is_set():
            break
        timeout = fallback_seconds if new_runs.connected.is_set() else POLL_SECONDS
        rechecking = woken and not rechecking and not polled.due and polled.next_due_at is None
        if rechecking:
            timeout = POLL_SECONDS
        if polled.next_due_at is not None:
            timeout = min(timeout, max(polled.next_due_at - time.time(), 0.0))
        woken = stop.wake.wait(timeout)
    return None


def warm_up(settings: Settings) -> None:
    """Pay the one-off costs before the first run: GX context, the default model if it exists."""
    from retainwise.adapters import mlflow_registry as registry
    from retainwise.uploads.validation import _batch_definition

    _batch_definition()
    try:
        registry.load_champion(settings.default_model, settings)
    except Exception as exc:  # no champion yet: the first run loads it
        log.info("no model preloaded: %s", exc)


def without_flow_heartbeats():
    """Prefect settings for this child's runs: no flow run heartbeat thread.

    The engine joins that thread at the end of every run, and it sleeps in 1 s steps, so each run
    took 0-1 s (0.47 s profiled) longer than its work. Heartbeats let Prefect notice a run whose
    process vanished; here the parent marks a dead child's run Crashed (`mark_crashed`) and the
    reaper requeues a stale upload, so they add nothing but that wait.
    """
    from prefect.settings import temporary_settings

    return temporary_settings(updates={"flows.heartbeat_frequency": None})


@contextlib.contextmanager
def without_suspension_observer():
    """This child's runs without Prefect's flow-run suspension observer.

    For every run of a deployment, Prefect 3.9's engine starts a thread with its own event loop
    and API client that subscribes to the run's `Suspended` events (an events/out websocket and a
    read of the run) and waits for the subscription before the flow body starts; no setting
    turns it off. Our flows never suspend (nothing calls `suspend_flow_run`, and the served
    deployments have no pause or suspend in them), so the observer only costs each run that
    time. The engine still registers each run's suspension request, so an in-process request
    would still be honoured; only a suspension asked from outside (the UI, the API) is not
    noticed until the run ends.
    """
    from unittest import mock

    from prefect import flow_engine

    with mock.patch.object(
        flow_engine, "observe_flow_run_suspension", lambda *_, **__: contextlib.nullcontext()
    ):
        yield


def run_child(served: Served) -> None:
    """The child's life: one Resources for every run it executes, closed when it stops."""
    from retainwise.adapters.resources import Resources, use_for_process
    from tasks.background import in_background

    stop = ChildStop()
    stop.install()
    try:
        with use_for_process(Resources(served.settings)) as resources:
            try:
                warm_up(resources.settings)
            except Exception:
                log.exception("warm-up failed; runs will load what they need")
            # work after COMPLETED on a background thread, waited for before the child exits
            with without_flow_heartbeats(), without_suspension_observer(), in_background():
                child_loop(served, stop)
    except StopRequested:
        log.info("worker %s stopping: asked to while idle", os.getpid())


def fork_child(served: Served) -> int:
    pid = os.fork()
    if pid == 0:  # the child never returns into the parent's code
        code = 0
        try:
            run_child(served)
        except BaseException:
            log.exception("worker child failed")
            code = 1
        finally:
            os._exit(code)
    return pid


def mark_crashed(served: Served, pid: int) -> None:
    """The run a dead child was executing can never finish: say so in Prefect."""
    marker = served.state_dir / f"{pid}.run"
    if not marker.exists():
        return
    from prefect.client.orchestration import get_client
    from prefect.states import Crashed

    flow_run_id = marker.read_text().strip()
    marker.unlink(missing_ok=True)
    try:
        with get_client(sync_client=True) as client:
            client.set_flow_run_state(
                flow_run_id,
                Crashed(message=f"the worker process {pid} running it exited"),
                force=True,
            )
        log.warning("flow run %s marked Crashed: worker %s exited", flow_run_id, pid)
    except Exception:
        log.exception("could not mark flow run %s Crashed", flow_run_id)


def serve_warm(
    deployments: list[tuple[Any, Any]],
    processes: int,
    state_dir: Path,
    settings: Settings,
    reporter: Any = None,
) -> None:
    """Register the deployments, fork the children, replace any that die, stop on SIGTERM.

    `reporter` (runtime.scaling_reporter), if given, starts after the first fork; a replacement
    child is forked while it is paused, so no report is in flight at the fork.
    """
    state_dir.mkdir(parents=True, exist_ok=True)
    served = Served(register(deployments), state_dir, settings)
    if threading.active_count() > 1:  # forking with live threads could copy a held lock
        log.warning("threads alive before fork: %s", [t.name for t in threading.enumerate()])
    stopping = threading.Event()
    children = {fork_child(served) for _ in range(processes)}
    paused = reporter.start().paused if reporter is not None else contextlib.nullcontext

    def stop(*_: Any) -> None:
        stopping.set()
        tell_why_if_still_alive()
        if reporter is not None:
            reporter.stop.set()
        for child in children:
            _signal(child, signal.SIGTERM)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        children.discard(pid)
        mark_crashed(served, pid)
        if not stopping.is_set():
            log.warning("worker %s exited (status %s); starting a new one", pid, status)
            time.sleep(1)
            with paused():
                children.add(fork_child(served))


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass
