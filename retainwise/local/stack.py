"""The local stack on loopback: moto (S3 + SQS), a Prefect server, the API and web app, the flow
runner, the webhook deliverer, the SQS trigger.

`up` starts each as a detached process with its pid and log under $RETAINWISE_HOME; `down` stops
exactly the pids it recorded.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import dotenv
import tenacity

from retainwise.config.settings import Settings
from retainwise.local import aws_server


@dataclass(frozen=True)
class Service:
    name: str
    argv: list[str]
    health_url: str | None = None


def stack_environment(settings: Settings) -> dict[str, str]:
    """What every client of the local stack needs; written to stack.env for later CLI calls."""
    home = settings.home_dir
    return {
        "RETAINWISE_HOME": str(home),
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{settings.stack_aws_port}",
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": settings.aws_region,
        "PREFECT_API_URL": f"http://127.0.0.1:{settings.stack_prefect_port}/api",
        "PREFECT_HOME": str(home / "prefect"),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_RUNNER_POLL_FREQUENCY": "1",
        "PREFECT_LOGGING_LEVEL": "INFO",  # each run logs a line per stage for the UI
        **PER_RUN_SAVINGS,
    }


# Prefect settings that cut the server's work per flow run (benchmarks/README.md, issue 22)
PER_RUN_SAVINGS = {
    # the server checks no CSRF token, so clients need not fetch one: ~6 calls per run fewer
    # (each new client fetched one); both sides set, so they cannot disagree
    "PREFECT_SERVER_API_CSRF_PROTECTION_ENABLED": "false",
    "PREFECT_CLIENT_CSRF_SUPPORT_ENABLED": "false",
    # run logs sent every 5 s instead of 2: fewer POST /api/logs per run, lines reach the UI later
    "PREFECT_LOGGING_TO_API_BATCH_INTERVAL": "5",
    # server services the product never needs: no flow pauses (nothing calls pause_flow_run, so
    # no pause expires) and no Prefect workers (the warm runner polls the API; no worker
    # cleanup queue to reconcile). Their loops cost an idle server ~0.006 of its ~0.025 CPU s a
    # second. Kept: the scheduler (reap-stale's cron), late runs and the foreman (the UI's Late
    # runs and Not Ready deployments), the repossessor (account slots' leases), cancellation
    # clean-up, the event persister, task-run recorder and triggers (the UI, automations)
    "PREFECT_SERVER_SERVICES_PAUSE_EXPIRATIONS_ENABLED": "false",
    "PREFECT_SERVER_SERVICES_CLEANUP_RECONCILER_ENABLED": "false",
}


def app_url(settings: Settings) -> str:
    return f"http://127.0.0.1:{settings.stack_api_port}/app"


def services(settings: Settings) -> list[Service]:
    py = sys.executable
    prefect_db = (
        ["--database-url", settings.prefect_database_url] if settings.prefect_database_url else []
    )
    return [
        Service(
            "moto",
            [
                py,
                "-m",
                "retainwise.local.aws_server",
                "--host",
                "127.0.0.1",
                "--port",
                str(settings.stack_aws_port),
                "--data",
                str(settings.home_dir / "aws"),
            ],
            f"http://127.0.0.1:{settings.stack_aws_port}/moto-api/",
        ),
        Service(
            "prefect",
            [
                py,
                "-m",
                "retainwise.runtime.prefect_server",
                "--host",
                "127.0.0.1",
                "--port",
                str(settings.stack_prefect_port),
                *prefect_db,
            ],
            f"http://127.0.0.1:{settings.stack_prefect_port}/api/health",
        ),
        Service(
            "api",
            [py, "-m", "retainwise.entrypoints.cli", "api", "--port", str(settings.stack_api_port)],
            f"http://127.0.0.1:{settings.stack_api_port}/openapi.json",
        ),
        *runner_services(settings),
        Service("webhooks", [py, "-m", "retainwise.runtime.webhooks"]),  # docs/webhooks.md
        Service("trigger", [py, "-m", "retainwise.entrypoints.cli", "trigger"]),
    ]


def runner_services(settings: Settings) -> list[Service]:
    """RETAINWISE_RUNNERS warm runners as separate services, sharing the cores between them."""
    count = max(1, settings.runners)
    processes = str(max(1, min(os.cpu_count() or 2, 4) // count))
    argv = [sys.executable, "-m", "retainwise.runtime.serve", "--processes", processes]
    if count == 1:
        return [Service("runner", argv)]
    return [Service(f"runner-{i}", argv) for i in range(1, count + 1)]


def write_stack_env(settings: Settings, env: dict[str, str]) -> None:
    """stack.env, a dotenv file, so later CLI calls find the local endpoints."""
    path = settings.stack_env_file
    path.write_text("")
    for key, value in env.items():
        dotenv.set_key(path, key, value)


def on_stack(settings: Settings, env: dict[str, str]) -> Settings:
    """`settings` pointed at the stack's endpoints: what Settings() reads once `env` is set (of
    the stack's variables only these are settings; test_stack pins that)."""
    return settings.model_copy(
        update={
            "aws_endpoint_url": env["AWS_ENDPOINT_URL"],
            "aws_region": env["AWS_DEFAULT_REGION"],
        }
    )


def load_stack_env(settings: Settings) -> bool:
    """Let CLI calls after `stack up` find the local endpoints; real variables still win. True
    if the file was there (the caller reads its Settings again)."""
    return dotenv.load_dotenv(settings.stack_env_file, override=False)


def wait_healthy(url: str, timeout: float, process: subprocess.Popen, log: Path) -> None:
    """Until `url` answers (an HTTP error or a refused connection is tried again every 0.3 s)."""

    def answers() -> None:
        if process.poll() is not None:
            raise RuntimeError(f"{url} exited early; see {log}:\n{log.read_text()[-2000:]}")
        with urllib.request.urlopen(url, timeout=2):
            pass

    try:
        tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(OSError),
            stop=tenacity.stop_after_delay(timeout),
            wait=tenacity.wait_fixed(0.3),
        )(answers)
    except tenacity.RetryError:
        raise TimeoutError(f"{url} not healthy after {timeout:.0f} s; see {log}") from None


def start(service: Service, home: Path, env: dict[str, str]) -> subprocess.Popen:
    (home / "logs").mkdir(parents=True, exist_ok=True)
    (home / "pids").mkdir(parents=True, exist_ok=True)
    with open(home / "logs" / f"{service.name}.log", "ab") as out:
        process = subprocess.Popen(
            service.argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env={**os.environ, **env},
            start_new_session=True,
        )
    (home / "pids" / f"{service.name}.pid").write_text(str(process.pid))
    return process


def up(settings: Settings, timeout: float = 180) -> dict[str, str]:
    """Start moto and the Prefect server together (its start-up dominates), then the runner and
    the trigger, which need both; return once the runner has registered its deployments."""
    from retainwise.adapters import aws
    from retainwise.adapters import mlflow_registry as registry

    home = settings.home_dir
    env = stack_environment(settings)
    home.mkdir(parents=True, exist_ok=True)
    write_stack_env(settings, env)
    os.environ.update(env)
    running = status(settings)
    pending = [s for s in services(settings) if not running.get(s.name)]
    queues_kept = (home / "aws" / aws_server.QUEUES_FILE).exists()
    servers = {s.name: (s, start(s, home, env)) for s in pending if s.health_url}
    for name, (service, process) in servers.items():
        assert service.health_url  # only services with one are in `servers`
        wait_healthy(service.health_url, timeout, process, home / "logs" / f"{name}.log")
    live = on_stack(settings, env)
    aws.ensure_resources(live)
    if "moto" in servers and not queues_kept:
        restore_queue(live)
    registry.ensure_store(live)  # before the runner's warm workers open it together
    for service in pending:
        if not service.health_url:
            start(service, home, env)
    wait_for_deployment(settings.deployment_name, timeout, env["PREFECT_API_URL"])
    return env


def restore_queue(settings: Settings) -> int:
    """For a home whose queues were never kept (made before `queues.json`, or the file deleted):
    send every PENDING upload's message again, from the database, as the reaper does for a lost
    message. Never a second flow run: the trigger's idempotency key gives a duplicate message the
    same run, and the claim (`db.claim_prediction`) lets only one run score the upload."""
    import sqlalchemy as sa

    from retainwise.adapters.resources import Resources
    from tasks.reaper import resend_lost_messages

    env = Resources(settings)
    try:
        return len(resend_lost_messages(env, 0))
    except sa.exc.DBAPIError:  # not migrated yet: nothing can be queued
        return 0
    finally:
        env.engine.dispose()


def wait_for_deployment(name: str, timeout: float, api_url: str | None = None) -> None:
    """Until the runner has registered `name` on `api_url` (default: this process's Prefect
    API). Prefect reads its settings once per process, so a second `up` in one process must
    name its server: setting PREFECT_API_URL in os.environ would not reach the client."""
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL, temporary_settings

    updates = {PREFECT_API_URL: api_url} if api_url else {}
    with temporary_settings(updates=updates), get_client(sync_client=True) as client:
        try:
            tenacity.Retrying(
                stop=tenacity.stop_after_delay(timeout), wait=tenacity.wait_fixed(0.5)
            )(client.read_deployment_by_name, name)
        except tenacity.RetryError:
            raise TimeoutError(f"deployment {name} not registered after {timeout:.0f} s") from None


def status(settings: Settings) -> dict[str, bool]:
    return {s.name: _alive(_pid(settings.home_dir, s.name)) for s in services(settings)}


def down(settings: Settings) -> list[str]:
    stopped = []
    names = [s.name for s in reversed(services(settings))]  # trigger first, moto last
    recorded = sorted(p.stem for p in (settings.home_dir / "pids").glob("runner*.pid"))
    for name in names[:1] + [n for n in recorded if n not in names] + names[1:]:
        pid = _pid(settings.home_dir, name)  # runners started with another RETAINWISE_RUNNERS too
        if pid and _alive(pid):
            stop_group(pid)
            stopped.append(name)
        (settings.home_dir / "pids" / f"{name}.pid").unlink(missing_ok=True)
    settings.stack_env_file.unlink(missing_ok=True)
    return stopped


def _pid(home: Path, name: str) -> int | None:
    path = home / "pids" / f"{name}.pid"
    return int(path.read_text()) if path.exists() else None


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:  # reap it first if it is our own child, or a zombie would look alive
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_group(pid: int, grace: float = 10) -> bool:
    """SIGTERM a process group (a service and its children), SIGKILL it if the leader outlives
    `grace` s (0: at once). The one way the stack and the tests stop what they started.
    False when it took SIGKILL."""
    try:
        os.killpg(pid, signal.SIGTERM if grace > 0 else signal.SIGKILL)
    except ProcessLookupError:
        return True
    try:
        tenacity.Retrying(
            retry=tenacity.retry_if_result(bool),
            stop=tenacity.stop_after_delay(grace),
            wait=tenacity.wait_fixed(0.2),
        )(_alive, pid)
        return grace > 0
    except tenacity.RetryError:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return False
