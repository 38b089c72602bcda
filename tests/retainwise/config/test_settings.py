"""Production settings never fall back to the local stack's SQLite or file-based MLflow."""

import re

import pytest
from pydantic import ValidationError

from retainwise.config.errors import MissingSetting
from retainwise.config.settings import Settings, check_production

URL_VARIABLES = {
    "db_url": "RETAINWISE_DATABASE_URL",
    "tracking_uri": "RETAINWISE_MLFLOW_TRACKING_URI",
    "artifact_root": "RETAINWISE_MLFLOW_ARTIFACT_ROOT",
}


@pytest.fixture
def bare_environment(monkeypatch, tmp_path):
    for name in (
        *URL_VARIABLES.values(),
        "RETAINWISE_ENV",
        "RETAINWISE_DATABASE_SECRET",
        "RETAINWISE_DATABASE_APP_SECRET",
        "RETAINWISE_SESSION_SECRET",
        "RETAINWISE_SESSION_HTTPS_ONLY",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("RETAINWISE_HOME", str(tmp_path))
    return monkeypatch


@pytest.mark.parametrize("prop, variable", URL_VARIABLES.items())
def test_production_names_the_missing_variable(bare_environment, prop, variable):
    bare_environment.setenv("RETAINWISE_ENV", "production")
    with pytest.raises(MissingSetting, match=variable):
        getattr(Settings(), prop)


def test_production_uses_the_urls_it_is_given(bare_environment):
    bare_environment.setenv("RETAINWISE_ENV", "production")
    bare_environment.setenv("RETAINWISE_DATABASE_URL", "postgresql+psycopg://u@db:5432/retainwise")
    bare_environment.setenv(
        "RETAINWISE_MLFLOW_TRACKING_URI", "postgresql+psycopg://u@db:5432/mlflow"
    )
    bare_environment.setenv("RETAINWISE_MLFLOW_ARTIFACT_ROOT", "s3://models/mlartifacts")
    settings = Settings()
    assert settings.db_url == "postgresql+psycopg://u@db:5432/retainwise"
    assert settings.tracking_uri == "postgresql+psycopg://u@db:5432/mlflow"
    assert settings.artifact_root == "s3://models/mlartifacts"


def test_locally_the_urls_fall_back_under_home(bare_environment, tmp_path):
    settings = Settings()
    assert settings.env == "local"
    assert settings.db_url.startswith("sqlite:///") and str(tmp_path) in settings.db_url
    assert settings.tracking_uri.startswith("sqlite:///")
    assert settings.artifact_root.startswith("file://")


def test_an_unknown_environment_name_is_refused(bare_environment):
    bare_environment.setenv("RETAINWISE_ENV", "prod")
    with pytest.raises(ValidationError, match="production"):
        Settings()


def test_the_database_urls_are_built_from_the_rds_secret(bare_environment):
    """ECS injects the RDS secret's JSON; a password with URL-special characters survives."""
    import json

    from sqlalchemy.engine import make_url

    bare_environment.setenv("RETAINWISE_ENV", "production")
    bare_environment.setenv(
        "RETAINWISE_DATABASE_SECRET",
        json.dumps(
            {
                "username": "retainwise",
                "password": "p@ss:w/rd%",
                "host": "db.internal",
                "port": 5432,
                "dbname": "retainwise",
                "engine": "postgres",
            }
        ),
    )
    settings = Settings()
    app, mlflow = make_url(settings.db_url), make_url(settings.tracking_uri)
    assert (app.drivername, app.host, app.database) == (
        "postgresql+psycopg",
        "db.internal",
        "retainwise",
    )
    assert app.password == "p@ss:w/rd%" and mlflow.password == "p@ss:w/rd%"
    assert mlflow.database == "mlflow"
    with pytest.raises(MissingSetting, match="RETAINWISE_MLFLOW_ARTIFACT_ROOT"):
        _ = settings.artifact_root


def test_the_url_from_the_secret_connects_to_postgres(bare_environment):
    """The URL built from an RDS-shaped secret opens a real connection (local trust auth)."""
    import json

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tests.conftest import POSTGRES_ADMIN_URL

    admin = make_url(POSTGRES_ADMIN_URL)
    bare_environment.setenv(
        "RETAINWISE_DATABASE_SECRET",
        json.dumps(
            {
                "username": admin.username,
                "password": admin.password or "any p@ss",
                "host": admin.host,
                "port": admin.port or 5432,
                "dbname": admin.database,
            }
        ),
    )
    engine = create_engine(Settings().db_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(text("select current_database()")).scalar() == admin.database
    finally:
        engine.dispose()


def test_the_app_login_comes_from_its_secret_and_production_needs_it(bare_environment):
    """migrate reads the jobs' login (username, password) to create their rows-only role."""
    import json

    assert Settings().app_login is None  # locally: every job may share one login
    bare_environment.setenv("RETAINWISE_ENV", "production")
    with pytest.raises(MissingSetting, match="RETAINWISE_DATABASE_APP_SECRET"):
        _ = Settings().app_login
    bare_environment.setenv(
        "RETAINWISE_DATABASE_APP_SECRET",
        json.dumps(
            {"username": "retainwise_app", "password": "p@ss", "host": "db.internal", "port": 5432}
        ),
    )
    assert Settings().app_login == ("retainwise_app", "p@ss")


SAFE_PRODUCTION = {
    "RETAINWISE_ENV": "production",
    "RETAINWISE_DATABASE_URL": "postgresql+psycopg://u@db:5432/retainwise",
    "RETAINWISE_MLFLOW_TRACKING_URI": "postgresql+psycopg://u@db:5432/mlflow",
    "RETAINWISE_SESSION_SECRET": "s" * 32,
    "RETAINWISE_SESSION_HTTPS_ONLY": "true",
}


@pytest.fixture
def production(bare_environment):
    for name, value in SAFE_PRODUCTION.items():
        bare_environment.setenv(name, value)
    return bare_environment


def test_a_safe_production_has_no_problems(production):
    assert Settings().production_problems(serves_web=True) == []
    check_production(Settings(), serves_web=True)


@pytest.mark.parametrize(
    "variable, value, named",
    [
        ("RETAINWISE_SESSION_SECRET", None, "RETAINWISE_SESSION_SECRET is not set"),
        ("RETAINWISE_SESSION_SECRET", "short", "RETAINWISE_SESSION_SECRET is too short"),
        ("RETAINWISE_SESSION_HTTPS_ONLY", "false", "RETAINWISE_SESSION_HTTPS_ONLY is not true"),
        ("RETAINWISE_DATABASE_URL", None, "RETAINWISE_DATABASE_URL (or"),
        ("RETAINWISE_DATABASE_URL", "sqlite:///x.db", "RETAINWISE_DATABASE_URL is a local file"),
        (
            "RETAINWISE_MLFLOW_TRACKING_URI",
            "file:///m",
            "RETAINWISE_MLFLOW_TRACKING_URI is a local",
        ),
    ],
)
def test_production_names_each_unsafe_setting(production, variable, value, named):
    if value is None:
        production.delenv(variable)
    else:
        production.setenv(variable, value)
    with pytest.raises(MissingSetting, match=re.escape(named)):
        check_production(Settings(), serves_web=True)


def test_every_problem_is_named_at_once_and_sessions_only_where_the_web_app_is(bare_environment):
    bare_environment.setenv("RETAINWISE_ENV", "production")
    assert len(Settings().production_problems(serves_web=True)) == 4
    names = " ".join(Settings().production_problems(serves_web=False))
    assert "DATABASE_URL" in names and "MLFLOW" in names and "SESSION" not in names


def test_locally_nothing_is_refused(bare_environment):
    assert Settings().production_problems(serves_web=True) == []
