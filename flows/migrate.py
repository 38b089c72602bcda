"""migrate: bring the databases to their newest schema and give the other jobs a login without DDL
rights. Safe to run any number of times."""

from __future__ import annotations

from prefect import flow, get_run_logger

import migrations
from retainwise.adapters import db_roles, mlflow_registry
from retainwise.adapters.db import make_engine
from retainwise.adapters.resources import Resources
from retainwise.config.settings import Settings


@flow(name="migrate")
def migrate(revision: str = "head") -> str | None:
    settings = Resources.of_process().settings
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    logger = get_run_logger()
    before = migrations.current_revision(settings.db_url)
    migrations.upgrade(settings.db_url, revision)
    after = migrations.current_revision(settings.db_url)
    logger.info("database at %s (was %s)", after, before)
    databases = [settings.db_url]
    if settings.tracking_uri.startswith("postgresql"):  # SQLite: MLflow creates it on first use
        if db_roles.ensure_database(settings.tracking_uri):
            logger.info("created MLflow's database")
        mlflow_registry.upgrade_store(settings.tracking_uri)
        logger.info("MLflow's tracking store is at its newest schema")
        databases.append(settings.tracking_uri)
    grant_app_login(settings, databases)
    return after


def grant_app_login(settings: Settings, databases: list[str]) -> None:
    """The jobs' role gets rows, not tables, in every PostgreSQL database; SQLite has no roles."""
    logger = get_run_logger()
    login = settings.app_login
    if login is None:
        logger.info("RETAINWISE_DATABASE_APP_SECRET is unset: no rows-only login to keep up")
        return
    # with a login of its own for the API, the jobs' role loses writes to accounts and api_keys
    api = settings.api_login
    logins = [(login, api is not None)] + ([(api, False)] if api else [])
    for (login, guarded), url in ((each, url) for each in logins for url in databases):
        engine = make_engine(url)
        try:
            granted = db_roles.grant_rows_only(engine, *login, guarded=guarded)
        finally:
            engine.dispose()
        where = engine.url.render_as_string(hide_password=True)
        logger.info(
            "%s: %s",
            where,
            f"{login[0]!r} may read and write rows, not change tables"
            if granted
            else "no database roles (SQLite); nothing to grant",
        )
