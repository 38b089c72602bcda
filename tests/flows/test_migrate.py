"""The migrate flow on this machine's PostgreSQL, configured as on ECS: it owns the app's and
MLflow's schemas and keeps the other jobs' rows-only login.

The server trusts local connections, so logging in as the app role checks no password here; what
is checked is what the role may do.
"""

from __future__ import annotations

import json
import uuid

import pytest
import sqlalchemy as sa
from mlflow import MlflowClient
from sqlalchemy.engine import make_url

from flows.migrate import migrate
from retainwise.adapters import db
from tests.conftest import POSTGRES_ADMIN_URL, throwaway_postgres
from tests.migrations.test_migrations import head_revision

pytestmark = pytest.mark.usefixtures("prefect_api")


def as_role(url: str, role: str) -> str:
    return (
        make_url(url).set(username=role, password="unchecked").render_as_string(hide_password=False)
    )


def drop(kind: str, name: str) -> None:
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                f'DROP {kind} IF EXISTS "{name}"' + (" WITH (FORCE)" if kind == "DATABASE" else "")
            )
        )
    admin.dispose()


@pytest.fixture
def on_postgres(monkeypatch, tmp_path):
    """The owner's URLs for the app's database and MLflow's (not created yet), and the app login."""
    role, mlflow_database = (f"rw_{kind}_{uuid.uuid4().hex[:10]}" for kind in ("app", "mlflow"))
    try:
        with throwaway_postgres("rw_migrate") as url:
            tracking = url.rsplit("/", 1)[0] + f"/{mlflow_database}"
            monkeypatch.setenv("RETAINWISE_HOME", str(tmp_path / "home"))
            monkeypatch.setenv("RETAINWISE_DATABASE_URL", url)
            monkeypatch.setenv("RETAINWISE_MLFLOW_TRACKING_URI", tracking)
            monkeypatch.setenv(
                "RETAINWISE_DATABASE_APP_SECRET",
                json.dumps({"username": role, "password": "from-the-app-secret"}),
            )
            try:
                yield {"db": url, "tracking": tracking, "role": role}
            finally:
                drop("DATABASE", mlflow_database)
    finally:
        drop("ROLE", role)


def denied(url: str, statement: str) -> str:
    engine = sa.create_engine(url)
    try:
        with pytest.raises(sa.exc.DBAPIError) as failure, engine.begin() as conn:
            conn.execute(sa.text(statement))
        return failure.value.orig.sqlstate
    finally:
        engine.dispose()


def test_migrate_twice_then_the_jobs_login_has_rows_but_no_ddl(on_postgres, tmp_path):
    assert migrate() == head_revision()
    assert migrate() == head_revision()  # a rerun: alembic, MLflow's upgrade and grants again

    role = on_postgres["role"]
    app = db.make_engine(as_role(on_postgres["db"], role))
    try:
        prediction_id = db.create_prediction(
            app, account="acme", model_name="churn", input_key="uploads/acme/a.csv"
        )
        assert db.get_prediction(app, prediction_id).account == "acme"
    finally:
        app.dispose()
    assert denied(as_role(on_postgres["db"], role), "CREATE TABLE intruder (id int)") == "42501"
    assert denied(as_role(on_postgres["db"], role), "DROP TABLE predictions") == "42501"

    # MLflow's store, created and upgraded by migrate, opens as the app role (no DDL needed)
    tracking = as_role(on_postgres["tracking"], role)
    client = MlflowClient(tracking_uri=tracking, registry_uri=tracking)
    experiment = client.create_experiment("rows-only", artifact_location=(tmp_path / "a").as_uri())
    assert client.get_experiment(experiment).name == "rows-only"
    assert denied(tracking, "DROP TABLE experiments") == "42501"
    assert denied(tracking, "CREATE TABLE intruder (id int)") == "42501"


def test_locally_on_sqlite_migrate_only_upgrades(monkeypatch, tmp_path):
    """The local stack's path (`retainwise migrate`, the demo): no roles, MLflow left to itself."""
    for name in (
        "RETAINWISE_DATABASE_URL",
        "RETAINWISE_MLFLOW_TRACKING_URI",
        "RETAINWISE_DATABASE_SECRET",
        "RETAINWISE_DATABASE_APP_SECRET",
        "RETAINWISE_ENV",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RETAINWISE_HOME", str(tmp_path / "home"))
    assert migrate() == head_revision()
    assert (tmp_path / "home" / "retainwise.db").exists()
    assert not (tmp_path / "home" / "mlflow.db").exists()  # created by MLflow on first use
