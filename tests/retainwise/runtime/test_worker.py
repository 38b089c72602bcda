"""The warm runner against a real Prefect API: one claimant per flow run, runs recorded as usual."""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import os
import signal
import threading
from datetime import UTC

import pytest
from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from retainwise.config.settings import Settings
from retainwise.runtime import worker
from tests.helpers import wait_for

pytestmark = pytest.mark.usefixtures("prefect_api")


@task(name="double", cache_policy=NO_CACHE)
def double(value: int) -> int:
    return 2 * value


@flow(name="worker-test-echo")
def echo(value: int) -> int:
    return double(value)


@pytest.fixture
def served(tmp_path):
    return worker.Served(
        worker.register([(echo, echo.to_deployment(name="echo"))]), tmp_path, Settings()
    )


def test_a_run_is_claimed_once_and_runs_in_process_with_its_task_runs(served):
    (deployment_id,) = served.flows
    with get_client(sync_client=True) as client:
        created = client.create_flow_run_from_deployment(deployment_id, parameters={"value": 21})
        (scheduled,) = worker.next_runs(client, served)
        assert scheduled.id == created.id
        assert worker.claim(client, scheduled) is True
        assert worker.claim(client, scheduled) is False  # a second worker is turned away
        worker.execute(echo, scheduled)
        finished = client.read_flow_run(created.id)
        # task runs reach the server as events, recorded a moment after the run returns
        task_runs = wait_for(
            lambda: client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[created.id]))
            ),
            30,
            "the run's task runs to be recorded",
        )
        assert worker.next_runs(client, served) == []
    assert finished.state.is_completed()
    assert [run.name.split("-")[0] for run in task_runs] == ["double"]


def test_two_polling_loops_run_each_flow_run_exactly_once(served):
    (deployment_id,) = served.flows
    with get_client(sync_client=True) as client:
        ids = [
            client.create_flow_run_from_deployment(deployment_id, parameters={"value": i}).id
            for i in range(6)
        ]
    stop = worker.ChildStop()  # two threads' loops share it; only the event is used here
    loops = [threading.Thread(target=worker.child_loop, args=(served, stop)) for _ in range(2)]
    for loop in loops:
        loop.start()
    try:
        with get_client(sync_client=True) as client:
            for _ in range(300):
                runs = [client.read_flow_run(i) for i in ids]
                if all(run.state.is_final() for run in runs):
                    break
                stop.event.wait(0.2)
    finally:
        stop.set()  # wakes a loop waiting for a new run's event
        for loop in loops:
            loop.join(timeout=30)
    assert all(run.state.is_completed() for run in runs)
    assert all(run.run_count == 1 for run in runs)


def test_a_poll_reads_only_due_scheduled_runs_and_the_heartbeat_poll_finds_the_same(served):
    from datetime import datetime, timedelta

    from prefect.states import Cancelled, Scheduled

    (deployment_id,) = served.flows
    with get_client(sync_client=True) as client:
        later = datetime.now(UTC) + timedelta(hours=1)
        future = client.create_flow_run_from_deployment(
            deployment_id, parameters={"value": 1}, state=Scheduled(scheduled_time=later)
        )
        due = [
            client.create_flow_run_from_deployment(deployment_id, parameters={"value": i}).id
            for i in range(3)
        ]
        taken = worker.next_runs(client, served)[0]
        assert worker.claim(client, taken)  # Pending now: no longer offered
        polled = [run.id for run in worker.next_runs(client, served)]
        beat = [run.id for run in worker.next_runs(client, served, heartbeat=True)]
        try:  # the server marks the deployment ready in a background task
            status = wait_for(
                lambda: (client.read_deployment(deployment_id).status.value == "READY") and "READY",
                10,
                "READY",
                poll=0.1,
            )
        except AssertionError:
            status = client.read_deployment(deployment_id).status.value
        for left in [future.id, *due[1:]]:  # not for the next test's worker to find
            client.set_flow_run_state(left, Cancelled(), force=True)
    assert taken.id == due[0]
    assert polled == beat == due[1:]  # oldest first, the future run left alone
    assert status == "READY"  # the heartbeat poll keeps the deployment Ready in the UI


@pytest.mark.parametrize("in_child", [False, True])
def test_a_child_runs_flows_without_the_heartbeat_thread(served, monkeypatch, in_child):
    from prefect.flow_engine import BaseFlowRunEngine
    from prefect.settings import temporary_settings

    beats = []
    monkeypatch.setattr(
        BaseFlowRunEngine,
        "_emit_flow_run_heartbeat",
        lambda engine, *args: beats.append(engine.flow_run.id),
    )
    (deployment_id,) = served.flows
    with get_client(sync_client=True) as client:
        created = client.create_flow_run_from_deployment(deployment_id, parameters={"value": 2})
        [scheduled] = [run for run in worker.next_runs(client, served) if run.id == created.id]
        assert worker.claim(client, scheduled)
    # Prefect's default (180 s) for the control case: the test session turns heartbeats off
    prefect_default = temporary_settings(updates={"flows.heartbeat_frequency": 180})
    with worker.without_flow_heartbeats() if in_child else prefect_default:
        worker.execute(echo, scheduled)
    # Prefect's engine beats once as a run starts; a warm child's runs do not beat at all
    assert beats == ([] if in_child else [created.id])


@pytest.mark.parametrize("in_child", [False, True])
def test_a_child_runs_flows_without_the_suspension_observer(served, monkeypatch, in_child):
    from contextlib import nullcontext

    from prefect import flow_engine

    observed = []
    monkeypatch.setattr(  # stands for Prefect's observer (a websocket and a thread per run)
        flow_engine,
        "observe_flow_run_suspension",
        lambda flow_run_id, *_: observed.append(flow_run_id) or nullcontext(),
    )
    (deployment_id,) = served.flows
    with get_client(sync_client=True) as client:
        created = client.create_flow_run_from_deployment(deployment_id, parameters={"value": 2})
        [scheduled] = [run for run in worker.next_runs(client, served) if run.id == created.id]
        assert worker.claim(client, scheduled)
    with worker.without_suspension_observer() if in_child else nullcontext():
        worker.execute(echo, scheduled)
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(created.id).state.is_completed()
    assert observed == ([] if in_child else [created.id])


def test_a_childs_polls_and_runs_share_one_api_client(served, monkeypatch):
    from prefect.client.orchestration import SyncPrefectClient

    built, init = [], SyncPrefectClient.__init__
    monkeypatch.setattr(
        SyncPrefectClient, "__init__", lambda self, *a, **k: built.append(1) or init(self, *a, **k)
    )
    (deployment_id,) = served.flows
    with get_client(sync_client=True) as client:
        for value in (1, 2):
            client.create_flow_run_from_deployment(deployment_id, parameters={"value": value})
    built.clear()
    stop, ran, execute = worker.ChildStop(), [], worker.execute

    def execute_then_stop_after_two(flow_, flow_run):
        execute(flow_, flow_run)
        ran.append(flow_run.id)
        if len(ran) == 2:
            stop.set()

    monkeypatch.setattr(worker, "execute", execute_then_stop_after_two)
    worker.child_loop(served, stop)
    assert len(ran) == 2
    assert len(built) == 1  # one for the child, where each run's engine opened its own


@flow(name="worker-test-named", flow_run_name="named-{value}")
def named(value: int) -> int:
    return double(value)


def storage_reads_of_a_run(flow_, served_, monkeypatch) -> int:
    """Runs `flow_` as the warm worker does, counting the client's reads of /admin/storage."""
    from prefect.client.orchestration import SyncPrefectClient

    reads, read = [], SyncPrefectClient.read_server_default_result_storage
    monkeypatch.setattr(
        SyncPrefectClient,
        "read_server_default_result_storage",
        lambda self: reads.append(1) or read(self),
    )
    (deployment_id,) = served_.flows
    with get_client(sync_client=True) as client:
        run = client.create_flow_run_from_deployment(deployment_id, parameters={"value": 2})
        worker.execute(flow_, run)
        assert client.read_flow_run(run.id).state.is_completed()
    return len(reads)


def test_warm_runs_never_read_the_servers_default_result_storage(tmp_path, monkeypatch):
    served_ = worker.Served(
        worker.register([(named, named.to_deployment(name="named"))]), tmp_path, Settings()
    )
    (warm,) = served_.flows.values()
    assert warm.persist_result is False and warm.flow_run_name == "named-{value}"
    assert storage_reads_of_a_run(named, served_, monkeypatch) == 3  # Prefect's own, per run
    monkeypatch.undo()
    assert storage_reads_of_a_run(warm, served_, monkeypatch) == 0


def test_a_flow_that_states_its_persistence_keeps_it():
    persisted = echo.with_options(persist_result=True)
    assert worker.without_result_storage_reads(persisted) is persisted


def test_sigterm_stops_an_idle_child_at_once_even_inside_a_slow_call():
    """The CI failure: a child waiting on a slow API call outlived the 30 s stop timeout."""
    stop = worker.ChildStop()
    previous = signal.getsignal(signal.SIGTERM)
    stop.install()
    try:
        threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM)).start()
        with pytest.raises(worker.StopRequested):
            threading.Event().wait(10)  # stands for an API call the server is slow to answer
    finally:
        faulthandler.cancel_dump_traceback_later()  # the stop's watchdog, armed by the handler
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert stop.event.is_set()


def test_sigterm_lets_a_child_holding_a_run_finish_it():
    stop = worker.ChildStop()
    previous = signal.getsignal(signal.SIGTERM)
    stop.install()
    try:
        with stop.holding():
            os.kill(os.getpid(), signal.SIGTERM)  # handled here, raising nothing
            finished = True
    finally:
        faulthandler.cancel_dump_traceback_later()  # the stop's watchdog, armed by the handler
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, signal.default_int_handler)
    assert finished and stop.event.is_set()


SEEN_RESOURCES = []


@flow(name="worker-test-resources")
def note_resources() -> None:
    from retainwise.adapters.resources import Resources

    SEEN_RESOURCES.append(Resources.of_process())


def test_a_childs_runs_share_its_resources_and_they_close_when_it_stops(tmp_path):
    """What run_child sets up: every run it executes uses one Resources (one pool), closed after."""
    from retainwise.adapters.resources import Resources, use_for_process

    served_ = worker.Served(
        worker.register([(note_resources, note_resources.to_deployment(name="resources"))]),
        tmp_path,
        Settings(home=tmp_path),
    )
    (deployment_id,) = served_.flows
    mine = Resources(Settings(home=tmp_path))
    SEEN_RESOURCES.clear()
    with use_for_process(mine), get_client(sync_client=True) as client:
        assert mine.engine is not None
        for _ in range(2):
            worker.execute(note_resources, client.create_flow_run_from_deployment(deployment_id))
    assert [seen is mine for seen in SEEN_RESOURCES] == [True, True]  # the same, not equal
    assert "engine" not in vars(mine)  # disposed when the child's block ended


def test_a_run_the_trigger_named_is_not_renamed_and_one_named_otherwise_is(tmp_path, monkeypatch):
    from prefect.client.orchestration import SyncPrefectClient

    served_ = worker.Served(
        worker.register([(named, named.to_deployment(name="named"))]), tmp_path, Settings()
    )
    (deployment_id,) = served_.flows
    (warm,) = served_.flows.values()
    renames, rename = [], SyncPrefectClient.set_flow_run_name
    monkeypatch.setattr(
        SyncPrefectClient,
        "set_flow_run_name",
        lambda self, flow_run_id, name: renames.append(name) or rename(self, flow_run_id, name),
    )
    with get_client(sync_client=True) as client:
        by_trigger = client.create_flow_run_from_deployment(
            deployment_id, parameters={"value": 3}, name="named-3"
        )
        by_hand = client.create_flow_run_from_deployment(deployment_id, parameters={"value": 4})
        for run in (by_trigger, by_hand):
            worker.execute(warm, run)
        finished = [client.read_flow_run(run.id) for run in (by_trigger, by_hand)]
    assert [run.state.is_completed() for run in finished] == [True, True]
    assert [run.name for run in finished] == ["named-3", "named-4"]
    assert renames == ["named-4"]  # only the run that did not have its name yet
    assert warm.flow_run_name == "named-{value}"  # the served flow itself keeps it


def test_one_child_at_a_time_has_the_turn_to_poll_and_a_dead_holder_gives_it_back(tmp_path):
    import fcntl

    path = tmp_path / "poll.turn"

    def free() -> bool:
        fd = os.open(path, os.O_RDWR | os.O_CREAT)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        finally:
            os.close(fd)

    with worker.PollTurn(path).held():
        taken = not free()
    pid = os.fork()
    if pid == 0:  # a child that dies holding the turn
        worker.PollTurn(path).held().__enter__()
        os._exit(0)
    os.waitpid(pid, 0)
    assert taken and free()


@flow(name="worker-test-wake")
def wake_echo(value: int) -> int:
    return value


class Waits(threading.Event):
    """A child's `stop.wake` that notes each wait (its timeout and whether it was woken) and
    each claim, in order, so a test sees why the child polled when it did."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple] = []

    def wait(self, timeout=None):
        self.log.append(("waiting", timeout))
        woken = super().wait(timeout)
        self.log.append(("woken" if woken else "timed out", timeout))
        return woken

    def waiting(self, timeout) -> bool:
        return bool(self.log) and self.log[-1] == ("waiting", timeout)


@contextlib.contextmanager
def child_waiting(tmp_path, monkeypatch, fallback: float, subscribe):
    """A child loop in a thread, serving a deployment of its own (no earlier run's events to
    replay), once it waits with its subscription open: (deployment id, the waits' log)."""
    served_ = worker.Served(
        worker.register([(wake_echo, wake_echo.to_deployment(name=f"wake-{tmp_path.name}"))]),
        tmp_path,
        Settings(),
    )
    stop, waits, claim = worker.ChildStop(), Waits(), worker.claim
    stop.wake = waits
    monkeypatch.setattr(
        worker,
        "claim",
        lambda client, flow_run: (
            waits.log.append(("claim", flow_run.id)) or claim(client, flow_run)
        ),
    )
    loop = threading.Thread(target=worker.child_loop, args=(served_, stop, fallback, subscribe))
    loop.start()
    try:
        wait_for(lambda: waits.waiting(fallback), 60, "the child to wait with its subscription")
        (deployment_id,) = served_.flows
        yield deployment_id, waits
    finally:
        stop.set()
        loop.join(timeout=30)
    assert not loop.is_alive()


def finished(flow_run_id):
    with get_client(sync_client=True) as client:
        state = client.read_flow_run(flow_run_id).state
    return state.is_final() and state


def test_a_run_scheduled_while_the_child_waits_is_picked_up_on_its_event(tmp_path, monkeypatch):
    fallback = 600  # far beyond the test's wait: only the run's event can wake the child
    with child_waiting(tmp_path, monkeypatch, fallback, worker.prefect_subscriber) as (
        deployment_id,
        waits,
    ):
        with get_client(sync_client=True) as client:
            run = client.create_flow_run_from_deployment(deployment_id, parameters={"value": 7})
        state = wait_for(lambda: finished(run.id), 60, "the run to finish")
        claimed_at = waits.log.index(("claim", run.id))
    assert state.is_completed()
    assert waits.log[claimed_at - 1] == ("woken", fallback)  # by the event, not a timeout


def test_a_missed_event_is_covered_by_the_fallback_poll(tmp_path, monkeypatch):
    @contextlib.asynccontextmanager
    async def deaf(_event_filter):  # subscribed, but no event ever comes (a lost event)
        async def nothing():
            await asyncio.Event().wait()
            yield

        yield nothing()

    fallback = 1.0
    with child_waiting(tmp_path, monkeypatch, fallback, deaf) as (deployment_id, waits):
        with get_client(sync_client=True) as client:
            run = client.create_flow_run_from_deployment(deployment_id, parameters={"value": 8})
        state = wait_for(lambda: finished(run.id), 60, "the run to finish")
        claimed_at = waits.log.index(("claim", run.id))
    assert state.is_completed()
    assert waits.log[claimed_at - 1] == ("timed out", fallback)  # the fallback poll found it


def test_a_run_scheduled_for_later_is_claimed_when_due_not_at_the_fallback(tmp_path, monkeypatch):
    from datetime import datetime, timedelta

    from prefect.states import Scheduled

    fallback = 600
    with child_waiting(tmp_path, monkeypatch, fallback, worker.prefect_subscriber) as (
        deployment_id,
        waits,
    ):
        with get_client(sync_client=True) as client:
            due_at = datetime.now(UTC) + timedelta(seconds=1)
            run = client.create_flow_run_from_deployment(
                deployment_id, parameters={"value": 9}, state=Scheduled(scheduled_time=due_at)
            )
        state = wait_for(lambda: finished(run.id), 60, "the run to finish")
        claimed_at = waits.log.index(("claim", run.id))
    assert state.is_completed()
    # woken by the event, the poll saw the run not yet due and waited until it was
    kind, timeout = waits.log[claimed_at - 1]
    assert kind == "timed out" and timeout <= 1.0
    assert ("woken", fallback) in waits.log[:claimed_at]


def test_a_dropped_subscription_is_opened_again_and_polls_fast_meanwhile(monkeypatch):
    monkeypatch.setattr(worker, "RECONNECT_SECONDS", 0)
    opened, wake = [], threading.Event()

    @contextlib.asynccontextmanager
    async def drops_once(_event_filter):
        opened.append(1)
        if len(opened) == 1:
            raise ConnectionError("the server went away")

        async def one_event():
            yield "an event"
            await asyncio.Event().wait()

        yield one_event()

    new_runs = worker.NewRuns([], wake, drops_once)
    with new_runs:
        wait_for(new_runs.connected.is_set, 30, "the second subscription")
        wait_for(wake.is_set, 30, "the event to wake the child")
    assert len(opened) == 2
    assert not new_runs.connected.is_set()  # closed with the child
