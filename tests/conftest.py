"""Real local services, started once per session: moto in server mode, a Prefect API, PostgreSQL.

Each test gets its own RETAINWISE_HOME, bucket and queues, so tests never see each other's state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import shutil
import socket
import sys
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa

REPO = Path(__file__).resolve().parents[1]
# RETAINWISE_TEST_DATA, else ../shared beside the checkout (one level further up from a worktree)
SHARED_DATA = Path(
    os.environ.get("RETAINWISE_TEST_DATA")
    or next(
        (
            root / "shared" / "data"
            for root in (REPO.parent, REPO.parents[1])
            if (root / "shared" / "data").is_dir()
        ),
        REPO.parent / "shared" / "data",
    )
)
TELCO = SHARED_DATA / "telco_churn.csv"
POSTGRES_ADMIN_URL = os.environ.get(
    "RETAINWISE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's per-request access log


# a test is end-to-end (`e2e`) when it needs a running service (moto, a Prefect API, MLflow, the
# stack) or lives where every test drives processes; the rest are `unit` (`make test-fast`)
E2E_FIXTURES = {"moto_endpoint", "prefect_api", "mlflow_store", "stack_env", "resources"}
E2E_PATHS = (
    "tests/flows/",
    "tests/ui/",
    "tests/deployments/test_mocked_ecs.py",
    "tests/deployments/test_cdk.py",  # synthesises through jsii: a Node.js process
    "tests/retainwise/adapters/test_registry.py",  # a real MLflow store of its own
    "tests/retainwise/runtime/test_worker.py",
    "tests/retainwise/runtime/test_prefect_server.py",
    "tests/retainwise/entrypoints/test_migrate_deployment.py",
    "tests/test_fresh_clone.py",
)


# the longest single files start first (with `--no-loadscope-reorder`, `make test` hands files
# out in this order), so a worker is not left running one of them alone at the end
SLOW_FIRST = ("tests/test_fresh_clone.py", "tests/ui/")


def pytest_collection_modifyitems(config, items):
    items.sort(
        key=lambda item: not Path(item.fspath).relative_to(REPO).as_posix().startswith(SLOW_FIRST)
    )
    for item in items:
        path = Path(item.fspath).relative_to(REPO).as_posix()
        e2e = (
            item.get_closest_marker("e2e")
            or E2E_FIXTURES & set(item.fixturenames)
            or path.startswith(E2E_PATHS)
        )
        item.add_marker(pytest.mark.e2e if e2e else pytest.mark.unit)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def telco_path() -> Path:
    if not TELCO.exists():
        pytest.skip(f"the Telco data set is not at {TELCO} (../shared is absent)")
    return TELCO


@pytest.fixture(scope="session")
def telco_trained():
    """The Telco table as an upload reads it and the model `train` picks on it, trained once per
    session (per xdist worker) for the modules that only read them: each had trained its own."""
    from models.training import train
    from retainwise.uploads.reading import read_table

    frame = read_table(telco_path().read_bytes())
    return frame, train(frame, "Churn", "customerID")


@pytest.fixture(scope="session")
def moto_endpoint():
    """moto in server mode over HTTP, as the local stack runs it."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def no_prefect_service_outlives_its_test():
    """Prefect caches its background services (events, logs, concurrency-slot leases) per
    process, each bound to the API it first talked to. One left by a test on another Prefect
    server made a later test's flow fail to take its `account:` slot (ConnectError to the gone
    server, in CI). Drained after every test, a later use starts a fresh one."""
    yield
    if "prefect._internal.concurrency.services" in sys.modules:
        from prefect._internal.concurrency.services import _QueueServiceBase

        _QueueServiceBase.drain_all(timeout=30, at_exit=False)


@pytest.fixture(autouse=True)
def no_process_resources_outlive_their_test():
    """A flow run in the test process uses the process's Resources, built from the environment the
    test set; closed after every test, the next test's runs build theirs from its own."""
    yield
    if "retainwise.adapters.resources" in sys.modules:
        from retainwise.adapters.resources import forget_process_resources

        forget_process_resources()


@pytest.fixture(scope="session")
def prefect_api():
    """A real Prefect API server (a subprocess on loopback with a temporary database).

    Flow runs in the test process run as the warm runner's children do, without the flow-run
    heartbeat thread (worker.without_flow_heartbeats): the engine joins it at the end of every
    run and it sleeps in 1 s steps, so each run waited up to a second for nothing."""
    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        with temporary_settings(updates={"flows.heartbeat_frequency": None}):
            yield


@contextlib.contextmanager
def throwaway_postgres(prefix: str = "retainwise_test"):
    """A fresh database on the machine's PostgreSQL, dropped afterwards (skips if unreachable)."""
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    except sa.exc.OperationalError as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc.orig}")
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_server_url():
    """A throwaway database on the machine's PostgreSQL, dropped after the session."""
    with throwaway_postgres() as url:
        yield url


def _reset_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@dataclasses.dataclass(frozen=True)
class MigratedSchema:
    """What `migrated_engine` left a worker's PostgreSQL database at: the revision, and its
    tables in an order their rows can be deleted in (a table before those it references)."""

    revision: str
    deletion_order: tuple[str, ...]

    @classmethod
    def of(cls, conn: sa.Connection) -> MigratedSchema | None:
        order = sa.inspect(conn).get_sorted_table_and_fkc_names()
        if order[-1][1]:  # foreign keys in a cycle: no order deletes every row
            return None
        tables = [name for name, _ in reversed(order) if name not in (None, "alembic_version")]
        revision = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
        return cls(revision, tuple(tables))


# the schema `migrated_engine` left each worker's PostgreSQL database at (absent until it ran once)
MIGRATED_HEAD: dict[str, MigratedSchema] = {}
RESTART_SEQUENCES = sa.text(
    "SELECT setval(s.seqrelid::regclass, s.seqstart, false) FROM pg_sequence s"
    " JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
    " WHERE n.nspname = 'public'"
)


def _emptied_at_head(url: str) -> bool:
    """A database migrated to head by an earlier test, emptied of rows (every table but
    alembic_version, sequences back at their start): what a fresh migration gives, in ~25 ms
    instead of dropping and migrating again (~0.3-0.8 s a test) or TRUNCATE (~0.2 s: a new file
    for every table, synced at commit). False if the schema is anything else."""
    schema = MIGRATED_HEAD.get(url)
    if schema is None:
        return False
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            if tables != {"alembic_version", *schema.deletion_order}:
                return False
            versions = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalars()
            if list(versions) != [schema.revision]:
                return False
            for table in schema.deletion_order:
                conn.execute(sa.text(f'DELETE FROM "{table}"'))
            conn.execute(RESTART_SEQUENCES)
        return True
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def sqlite_at_head(tmp_path_factory) -> Path:
    """A SQLite database migrated to head once per worker, copied for each test that asks for
    `migrated_engine` (its upgrade then has nothing to do): ~60 ms of migrating a test."""
    import migrations

    path = tmp_path_factory.mktemp("sqlite-at-head") / "retainwise.db"
    migrations.upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """An empty database of each kind the product supports (for `migrated_engine`, one already
    migrated to head with no rows: a copy of SQLite's, PostgreSQL's emptied; the migration then
    has nothing to do)."""
    if request.param == "sqlite":
        path = tmp_path / "retainwise.db"
        if "migrated_engine" in request.fixturenames:
            shutil.copyfile(request.getfixturevalue("sqlite_at_head"), path)
        return f"sqlite:///{path}"
    url = request.getfixturevalue("postgres_server_url")
    if not ("migrated_engine" in request.fixturenames and _emptied_at_head(url)):
        _reset_postgres(url)
    return url


@pytest.fixture
def migrated_engine(database_url):
    import migrations
    from retainwise.adapters.db import make_engine

    migrations.upgrade(database_url)
    engine = make_engine(database_url)
    if engine.dialect.name == "postgresql" and database_url not in MIGRATED_HEAD:
        with engine.connect() as conn:  # head's schema: the same for every later test
            schema = MigratedSchema.of(conn)
        if schema is not None:
            MIGRATED_HEAD[database_url] = schema
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def mlflow_store(tmp_path_factory):
    """One MLflow store per session with a champion trained on a small synthetic table."""
    from models.training import train
    from retainwise.adapters import mlflow_registry as registry
    from retainwise.config.settings import Settings
    from retainwise.local.sample import synthetic_customers

    home = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{home / 'mlflow.db'}"
    settings = Settings(home=home, mlflow_tracking_uri=uri)
    trained = train(synthetic_customers(2000, seed=3).astype(str), "Churn", "customer_id")
    version = registry.register(trained, "churn", settings)
    registry.promote("churn", version, settings)
    return {"uri": uri, "home": home, "version": version}


@pytest.fixture
def stack_env(monkeypatch, tmp_path, moto_endpoint, mlflow_store):
    """Environment for one test: own home, SQLite database, bucket and queues on the moto server."""
    from retainwise.adapters import aws
    from retainwise.config.settings import Settings

    suffix = uuid.uuid4().hex[:8]
    values = {
        "RETAINWISE_HOME": str(tmp_path / "home"),
        "RETAINWISE_MLFLOW_TRACKING_URI": mlflow_store["uri"],
        "RETAINWISE_BUCKET": f"uploads-{suffix}",
        "RETAINWISE_QUEUE_NAME": f"uploads-{suffix}",
        "RETAINWISE_DEAD_LETTER_QUEUE_NAME": f"uploads-dlq-{suffix}",
        "AWS_ENDPOINT_URL": moto_endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("RETAINWISE_DATABASE_URL", raising=False)
    settings = Settings()
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    aws.ensure_resources(settings)
    import migrations

    migrations.upgrade(settings.db_url)
    return settings


@pytest.fixture
def resources(stack_env):
    from retainwise.adapters.resources import Resources

    env = Resources(stack_env)
    yield env
    env.engine.dispose()
