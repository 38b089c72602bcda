"""The jobs' PostgreSQL login: rows (DML) in every table, never DDL. `migrate` keeps it in step.

`migrate` connects as the owner (the RDS master user), creates the tables, then calls
`grant_rows_only` on each database it owns. Two logins get rows: the API's, which signs customers
in, and the app role every other job (trigger, runners, flow tasks) connects as, which may read
`accounts` but not change it and cannot touch `api_keys` at all (`GUARDED`). SQLite has no
roles, so there this is a no-op.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

ROW_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
SEQUENCE_PRIVILEGES = "USAGE, SELECT"
SCHEMA = "public"  # where Alembic and MLflow create their tables (the default search_path)
# tables the jobs' role may not write: a scoring runner parses untrusted files
GUARDED = {"accounts": "SELECT", "api_keys": None}
IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")  # role and database names, quoted as they are


class RoleRefused(ValueError):
    """The configured app login cannot be a rows-only role (bad name, or the owner itself)."""


def scram_sha_256(password: str, salt: bytes | None = None, iterations: int = 4096) -> str:
    """PostgreSQL's stored form of a SCRAM-SHA-256 password, computed here as psql's \\password
    does, so the clear password never reaches the server or its statement log."""
    if not password.isascii() or not password.isprintable():
        # the server would SASLprep-normalise other characters first; RDS generates ASCII
        raise RoleRefused("the app user's password must be printable ASCII")
    salt = salt if salt is not None else os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    stored_key = hashlib.sha256(hmac.digest(salted, b"Client Key", "sha256")).digest()
    server_key = hmac.digest(salted, b"Server Key", "sha256")
    text = lambda raw: base64.b64encode(raw).decode()  # noqa: E731
    return f"SCRAM-SHA-256${iterations}:{text(salt)}${text(stored_key)}:{text(server_key)}"


def grant_rows_only(engine: Engine, username: str, password: str, guarded: bool = False) -> bool:
    """Create or update the login `username` and give it exactly row access in this database:
    its tables and sequences now and those later migrations create; with `guarded`, less on the
    GUARDED tables. False on SQLite."""
    if engine.dialect.name != "postgresql":
        return False
    if not IDENTIFIER.fullmatch(username):
        raise RoleRefused(f"the app user's name {username!r} is not a plain lower-case identifier")
    verifier = scram_sha_256(password)  # base64, digits and `$:=+/`: safe inside quotes
    role = f'"{username}"'
    with engine.begin() as conn:
        owner = conn.execute(sa.text("SELECT current_user")).scalar_one()
        found = conn.execute(
            sa.text("SELECT rolsuper FROM pg_roles WHERE rolname = :name"), {"name": username}
        ).first()
        if username == owner or (found is not None and found.rolsuper):
            raise RoleRefused(
                f"the app user {username!r} must not be the owner or a superuser: "
                "it would keep every DDL right"
            )
        # no NOSUPERUSER etc.: only a superuser may name those attributes, and CREATE ROLE's
        # defaults already deny them
        verb = "ALTER" if found else "CREATE"
        # straight to the driver: text() would read the verifier's `:` as bind parameters
        conn.exec_driver_sql(f"{verb} ROLE {role} WITH LOGIN PASSWORD '{verifier}'")
        database = conn.execute(sa.text("SELECT current_database()")).scalar_one()
        quoted = conn.dialect.identifier_preparer.quote_identifier(database)
        for statement in _rows_only(role, quoted):
            conn.exec_driver_sql(statement)
        if guarded:
            for statement in _guard(conn, role):
                conn.exec_driver_sql(statement)
    return True


def _guard(conn: sa.Connection, role: str) -> list[str]:
    """Take back what the GUARDED tables of this database (if it has them) allow beyond theirs."""
    statements = []
    for table, kept in GUARDED.items():
        if conn.execute(sa.text("SELECT to_regclass(:t)"), {"t": f"{SCHEMA}.{table}"}).scalar():
            statements.append(f"REVOKE ALL ON {SCHEMA}.{table} FROM {role}")
            if kept:
                statements.append(f"GRANT {kept} ON {SCHEMA}.{table} TO {role}")
    return statements


def _rows_only(role: str, database: str) -> list[str]:
    """Revoke whatever the role had here, then grant rows; default privileges cover later tables
    (created by the owner, the user running this)."""
    return [
        f"GRANT CONNECT ON DATABASE {database} TO {role}",
        # before PostgreSQL 15 every role could create tables in `public`; 15+ already denies it
        f"REVOKE CREATE ON SCHEMA {SCHEMA} FROM PUBLIC",
        f"REVOKE ALL ON SCHEMA {SCHEMA} FROM {role}",
        f"GRANT USAGE ON SCHEMA {SCHEMA} TO {role}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {SCHEMA} FROM {role}",
        f"GRANT {ROW_PRIVILEGES} ON ALL TABLES IN SCHEMA {SCHEMA} TO {role}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {SCHEMA} FROM {role}",
        f"GRANT {SEQUENCE_PRIVILEGES} ON ALL SEQUENCES IN SCHEMA {SCHEMA} TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {SCHEMA} REVOKE ALL ON TABLES FROM {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {SCHEMA} REVOKE ALL ON SEQUENCES FROM {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {SCHEMA} GRANT {ROW_PRIVILEGES} ON TABLES TO {role}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {SCHEMA} GRANT {SEQUENCE_PRIVILEGES} ON SEQUENCES "
        f"TO {role}",
    ]


def ensure_database(url: str) -> bool:
    """Create the database `url` names if its server lacks it (MLflow's, beside the app's); True
    if created. Connects to the server's `postgres` database, as `createdb` does."""
    target = make_url(url)
    if not target.drivername.startswith("postgresql"):
        return False
    if not IDENTIFIER.fullmatch(target.database or ""):
        raise ValueError(f"the database name {target.database!r} is not a plain identifier")
    engine = sa.create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            if conn.execute(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": target.database},
            ).first():
                return False
            conn.execute(sa.text(f'CREATE DATABASE "{target.database}"'))
            return True
    finally:
        engine.dispose()
