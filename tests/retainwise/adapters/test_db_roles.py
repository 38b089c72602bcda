"""The jobs' rows-only role on this machine's real PostgreSQL.

The server trusts local connections, so logging in as the role does not check its password here;
these tests check what matters, the privileges, and check the stored password against the hash the
server itself computes.
"""

from __future__ import annotations

import base64
import uuid

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

import migrations
from retainwise.adapters import db, db_roles
from tests.conftest import POSTGRES_ADMIN_URL, throwaway_postgres

PASSWORD = "Gen3rated-by-RDS.without+quotes"
TABLE_DENIED = "42501"  # insufficient_privilege (also "must be owner of table")


def admin_engine() -> sa.Engine:
    return sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")


@pytest.fixture
def app_role():
    """A role name of this test's own (roles are server-wide), dropped after its databases."""
    name = f"rw_app_{uuid.uuid4().hex[:10]}"
    yield name
    engine = admin_engine()
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP ROLE IF EXISTS "{name}"'))
    engine.dispose()


@pytest.fixture
def owned_database(app_role):
    with throwaway_postgres("rw_roles") as url:
        yield url


@pytest.fixture
def owner(owned_database):
    engine = db.make_engine(owned_database)
    yield engine
    engine.dispose()


@pytest.fixture
def as_app(owned_database, app_role):
    """The database as the app role sees it (trust auth: the password is not checked here)."""
    engine = db.make_engine(
        make_url(owned_database)
        .set(username=app_role, password="unchecked")
        .render_as_string(hide_password=False)
    )
    yield engine
    engine.dispose()


def refused(engine: sa.Engine, statement: str) -> str:
    """The SQLSTATE the server answers `statement` with, as the given login."""
    with pytest.raises(sa.exc.DBAPIError) as failure, engine.begin() as conn:
        conn.execute(sa.text(statement))
    return failure.value.orig.sqlstate


def test_the_app_role_reads_and_writes_rows_but_cannot_create_alter_or_drop_tables(
    owned_database, owner, as_app, app_role
):
    migrations.upgrade(owned_database)
    assert db_roles.grant_rows_only(owner, app_role, PASSWORD) is True

    prediction_id = db.create_prediction(
        as_app, account="acme", model_name="churn", input_key="uploads/acme/x.csv"
    )
    assert db.get_prediction(as_app, prediction_id).status == "PENDING"
    with as_app.begin() as conn:
        conn.execute(
            sa.text("UPDATE predictions SET status = 'FAILED' WHERE id = :id"),
            {"id": prediction_id},
        )
        conn.execute(sa.text("DELETE FROM predictions WHERE id = :id"), {"id": prediction_id})
    assert db.get_prediction(as_app, prediction_id) is None

    assert refused(as_app, "CREATE TABLE intruder (id int)") == TABLE_DENIED
    assert refused(as_app, "DROP TABLE predictions") == TABLE_DENIED
    assert refused(as_app, "ALTER TABLE predictions ADD COLUMN extra int") == TABLE_DENIED
    assert refused(as_app, "TRUNCATE predictions") == TABLE_DENIED
    assert refused(as_app, "CREATE SCHEMA elsewhere") == TABLE_DENIED
    assert sa.inspect(owner).has_table("predictions")


def granted(engine: sa.Engine, role: str) -> set[tuple[str, str]]:
    with engine.connect() as conn:
        return {
            tuple(row)
            for row in conn.execute(
                sa.text(
                    "SELECT table_name, privilege_type FROM information_schema.role_table_grants "
                    "WHERE grantee = :role"
                ),
                {"role": role},
            )
        }


def test_granting_again_is_safe_and_leaves_exactly_row_privileges(owned_database, owner, app_role):
    migrations.upgrade(owned_database)
    db_roles.grant_rows_only(owner, app_role, PASSWORD)
    with owner.begin() as conn:  # something granted by hand earlier is taken back
        conn.execute(sa.text(f'GRANT TRUNCATE, REFERENCES ON predictions TO "{app_role}"'))
    db_roles.grant_rows_only(owner, app_role, PASSWORD)
    migrations.upgrade(owned_database)  # the migrate flow's rerun: alembic no-op, grants again
    db_roles.grant_rows_only(owner, app_role, "a-rotated-password")

    tables = set(sa.inspect(owner).get_table_names())
    assert {"predictions", "outcomes", "model_promotions", "alembic_version"} <= tables
    assert granted(owner, app_role) == {
        (table, privilege)
        for table in tables
        for privilege in ("SELECT", "INSERT", "UPDATE", "DELETE")
    }


def test_the_guarded_role_reads_accounts_and_never_writes_them_or_touches_api_keys(
    owned_database, owner, as_app, app_role
):
    """The jobs' login when the API has its own: a scoring runner cannot mint or read keys."""
    migrations.upgrade(owned_database)
    db_roles.grant_rows_only(owner, app_role, PASSWORD, guarded=True)
    with as_app.connect() as conn:
        conn.execute(sa.text("SELECT count(*) FROM accounts"))
    assert refused(as_app, "SELECT * FROM api_keys") == TABLE_DENIED
    assert refused(as_app, "INSERT INTO accounts (name) VALUES ('mallory')") == TABLE_DENIED
    assert refused(as_app, "UPDATE accounts SET name = 'x'") == TABLE_DENIED
    assert refused(as_app, "DELETE FROM api_keys") == TABLE_DENIED
    rows = granted(owner, app_role)
    assert ("accounts", "SELECT") in rows and not {t for t, _ in rows} & {"api_keys"}
    assert {("predictions", p) for p in ("SELECT", "INSERT", "UPDATE", "DELETE")} <= rows
    db_roles.grant_rows_only(owner, app_role, PASSWORD)  # unguarded again: rows everywhere
    assert ("api_keys", "INSERT") in granted(owner, app_role)


def test_tables_a_later_migration_adds_are_usable_without_granting_again(
    owned_database, owner, as_app, app_role
):
    migrations.upgrade(owned_database, "0007_index_by_account")
    db_roles.grant_rows_only(owner, app_role, PASSWORD)
    assert not sa.inspect(owner).has_table("outcomes")
    migrations.upgrade(owned_database)  # adds outcomes and upload_metrics; no grant after it
    with owner.begin() as conn:  # as a later migration would: a table with a sequence
        conn.execute(sa.text("CREATE TABLE later_notes (id serial PRIMARY KEY, note text)"))

    with as_app.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO outcomes (prediction_id, customer_id, account, churned, "
                "churn_probability, churn_risk, created_at) "
                "VALUES ('p1', 'c1', 'acme', 1, 0.9, 'HIGH', CURRENT_TIMESTAMP)"
            )
        )
        assert conn.execute(sa.text("SELECT churned FROM outcomes")).scalar_one() == 1
        new_id = conn.execute(
            sa.text("INSERT INTO later_notes (note) VALUES ('uses the sequence') RETURNING id")
        ).scalar_one()
    assert new_id == 1
    assert refused(as_app, "DROP TABLE later_notes") == TABLE_DENIED


def test_the_owner_or_a_superuser_is_refused_as_the_app_login(owner):
    with pytest.raises(db_roles.RoleRefused, match="owner or a superuser"):
        db_roles.grant_rows_only(owner, make_url(POSTGRES_ADMIN_URL).username, PASSWORD)
    with pytest.raises(db_roles.RoleRefused, match="identifier"):
        db_roles.grant_rows_only(owner, 'app"; DROP TABLE predictions; --', PASSWORD)


def test_the_stored_password_is_the_scram_verifier_the_server_computes(owner, app_role):
    """The server hashes a clear password itself; ours, with its salt, must give the same keys."""
    with owner.begin() as conn:
        conn.execute(sa.text("SET LOCAL password_encryption = 'scram-sha-256'"))
        conn.execute(sa.text(f"CREATE ROLE \"{app_role}\" LOGIN PASSWORD '{PASSWORD}'"))
    server_hashed = stored_password(owner, app_role)
    iterations, salt = server_hashed.split("$")[1].split(":")
    ours_with_its_salt = db_roles.scram_sha_256(PASSWORD, base64.b64decode(salt), int(iterations))
    assert ours_with_its_salt == server_hashed

    db_roles.grant_rows_only(owner, app_role, "another-password")  # ALTER ROLE: the hash we sent
    ours = stored_password(owner, app_role)
    assert ours.startswith("SCRAM-SHA-256$4096:") and ours != server_hashed
    with pytest.raises(db_roles.RoleRefused, match="ASCII"):
        db_roles.scram_sha_256("pässword")


def stored_password(engine: sa.Engine, role: str) -> str:
    with engine.connect() as conn:  # pg_authid is readable by superusers (the test's admin)
        return conn.execute(
            sa.text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"), {"r": role}
        ).scalar_one()


def test_sqlite_has_no_roles_so_granting_is_a_no_op(tmp_path):
    url = f"sqlite:///{tmp_path / 'retainwise.db'}"
    migrations.upgrade(url)
    engine = db.make_engine(url)
    assert db_roles.grant_rows_only(engine, "retainwise_app", PASSWORD) is False
    engine.dispose()
    assert db_roles.ensure_database(f"sqlite:///{tmp_path / 'mlflow.db'}") is False


def test_a_missing_database_is_created_once():
    name = f"rw_mlflow_{uuid.uuid4().hex[:10]}"
    url = POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        assert db_roles.ensure_database(url) is True
        assert db_roles.ensure_database(url) is False
    finally:
        engine = admin_engine()
        with engine.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        engine.dispose()
