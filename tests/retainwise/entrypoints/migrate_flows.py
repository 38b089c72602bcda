"""Test-only stand-ins for the `migrate` deployment: slow but fine, broken, and stuck."""

import time

from prefect import flow, get_run_logger


@flow(name="migrate-slow")
def migrate_slow(revision: str = "head") -> str:
    get_run_logger().info("upgrading to %s", revision)
    time.sleep(2)
    return revision


@flow(name="migrate-broken")
def migrate_broken(revision: str = "head") -> str:
    get_run_logger().error('relation "predictions" already exists')
    raise RuntimeError(f"alembic upgrade {revision} failed")


@flow(name="migrate-stuck")
def migrate_stuck(revision: str = "head") -> str:
    time.sleep(60)
    return revision


if __name__ == "__main__":
    from prefect import serve

    serve(*(f.to_deployment(name="test") for f in (migrate_slow, migrate_broken, migrate_stuck)))
