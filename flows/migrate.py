"""migrate: bring the database to the newest Alembic revision. Safe to run any number of times."""

from __future__ import annotations

from prefect import flow, get_run_logger

import migrations
from retainwise.config.settings import Settings


@flow(name="migrate")
def migrate(revision: str = "head") -> str | None:
    settings = Settings()
    settings.home_dir.mkdir(parents=True, exist_ok=True)
    logger = get_run_logger()
    before = migrations.current_revision(settings.db_url)
    migrations.upgrade(settings.db_url, revision)
    after = migrations.current_revision(settings.db_url)
    logger.info("database at %s (was %s)", after, before)
    return after
