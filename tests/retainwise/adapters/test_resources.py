"""One Resources per process: built once, shared by every use, its pool and clients closed."""

from __future__ import annotations

import sqlalchemy as sa

from retainwise.adapters import resources as module
from retainwise.adapters.resources import Resources, forget_process_resources, use_for_process
from retainwise.config.settings import Settings


def connections_to(url: str) -> int:
    """Sessions open on the database `url` names, seen from another connection (PostgreSQL)."""
    name = sa.make_url(url).database
    admin = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with admin.connect() as conn:
            return (
                conn.execute(
                    sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :name"),
                    {"name": name},
                ).scalar_one()
                - 1
            )  # this one
    finally:
        admin.dispose()


def pooled(resources: Resources) -> int:
    """Connections the engine holds after one query: idle in its pool."""
    with resources.engine.connect() as conn:
        conn.execute(sa.text("SELECT 1"))
    if resources.engine.dialect.name == "postgresql":
        return connections_to(resources.settings.db_url)
    return resources.engine.pool.checkedin()


def test_close_disposes_the_engine_and_leaving_the_block_closes(database_url, tmp_path):
    settings = Settings(home=tmp_path, database_url=database_url)
    with Resources(settings) as resources:
        engine = resources.engine
        assert pooled(resources) == 1
    assert "engine" not in vars(resources)  # the next use builds a new one
    if engine.dialect.name == "postgresql":
        assert connections_to(database_url) == 0
    else:
        assert engine.pool.checkedin() == 0


def test_close_closes_the_clients_that_were_built_and_only_those(tmp_path):
    resources = Resources(Settings(home=tmp_path, aws_endpoint_url="http://127.0.0.1:9"))
    s3 = resources.s3
    resources.close()
    assert "s3" not in vars(resources) and "queue" not in vars(resources)
    assert resources.s3 is not s3
    resources.close()  # twice is harmless


def test_the_process_has_one_until_it_is_forgotten(monkeypatch, tmp_path):
    monkeypatch.setenv("RETAINWISE_HOME", str(tmp_path))
    first = Resources.of_process()
    assert Resources.of_process() is first
    assert first.settings.home_dir == tmp_path
    assert first.engine is not None
    forget_process_resources()
    assert "engine" not in vars(first)  # closed
    assert Resources.of_process() is not first


def test_a_forked_child_builds_its_own_and_leaves_the_parents_open(monkeypatch, tmp_path):
    monkeypatch.setenv("RETAINWISE_HOME", str(tmp_path))
    parents = Resources.of_process()
    assert parents.engine is not None
    monkeypatch.setattr(module.os, "getpid", lambda: -1)  # as in a child after fork
    childs = Resources.of_process()
    forget_process_resources()
    assert childs is not parents and "engine" in vars(parents)  # the parent's pool untouched
    parents.close()


def test_a_runner_child_sets_its_own_and_it_is_closed_when_the_child_stops(tmp_path):
    mine = Resources(Settings(home=tmp_path))
    with use_for_process(mine):
        assert Resources.of_process() is mine
        assert mine.engine is not None
    assert "engine" not in vars(mine)
    assert Resources.of_process() is not mine
