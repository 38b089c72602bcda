"""Migrations on SQLite and PostgreSQL: up, up again, down, up; the columns the code relies on."""

import sqlalchemy as sa

import migrations


def columns(url: str, table: str = "predictions") -> dict[str, sa.types.TypeEngine]:
    engine = sa.create_engine(url)
    try:
        return {c["name"]: c["type"] for c in sa.inspect(engine).get_columns(table)}
    finally:
        engine.dispose()


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(migrations.alembic_config("sqlite://")).get_current_head()


def test_upgrade_rerun_downgrade_upgrade(database_url):
    migrations.upgrade(database_url)
    assert migrations.current_revision(database_url) == head_revision()
    migrations.upgrade(database_url)  # a rerun is a no-op
    assert migrations.current_revision(database_url) == head_revision()

    migrations.downgrade(database_url, "0001_create_predictions")
    assert "sqs_message_id" not in columns(database_url)
    migrations.downgrade(database_url, "base")
    engine = sa.create_engine(database_url)
    assert not sa.inspect(engine).has_table("predictions")
    engine.dispose()

    migrations.upgrade(database_url)
    assert {"sqs_message_id", "sqs_queued_at", "status"} <= set(columns(database_url))


def test_sqs_columns_have_the_right_types(database_url):
    migrations.upgrade(database_url)
    cols = columns(database_url)
    assert isinstance(cols["sqs_message_id"], sa.String) and cols["sqs_message_id"].length == 255
    assert isinstance(cols["sqs_queued_at"], sa.DateTime)
    if database_url.startswith("postgresql"):
        assert cols["sqs_queued_at"].timezone is True


def test_sqs_revision_tolerates_columns_added_by_hand(database_url):
    migrations.upgrade(database_url, "0001_create_predictions")
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("ALTER TABLE predictions ADD COLUMN sqs_message_id VARCHAR(255)"))
    engine.dispose()
    migrations.upgrade(database_url)
    assert {"sqs_message_id", "sqs_queued_at"} <= set(columns(database_url))


def test_constraints_are_named(database_url):
    migrations.upgrade(database_url)
    engine = sa.create_engine(database_url)
    inspector = sa.inspect(engine)
    assert inspector.get_pk_constraint("predictions")["name"] == "pk_predictions"
    checks = {c["name"] for c in inspector.get_check_constraints("predictions")}
    engine.dispose()
    assert "ck_predictions_status_known" in checks


def test_attempts_revision_adds_a_counter_starting_at_zero(database_url):
    migrations.upgrade(database_url, "0002_add_sqs_columns")
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO predictions (id, account, model_name, status, input_key, created_at, "
                "updated_at) VALUES ('p1', 'a', 'churn', 'PENDING', 'k', CURRENT_TIMESTAMP, "
                "CURRENT_TIMESTAMP)"
            )
        )
    migrations.upgrade(database_url, "0005_add_attempts")
    migrations.upgrade(database_url, "0005_add_attempts")  # a rerun is a no-op
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT attempts FROM predictions")).scalar_one() == 0
    engine.dispose()
    migrations.downgrade(database_url, "0002_add_sqs_columns")
    assert "attempts" not in columns(database_url)


def test_accounts_revision_creates_named_tables_and_reruns(database_url):
    migrations.upgrade(database_url, "0006_create_accounts")
    migrations.upgrade(database_url, "0006_create_accounts")  # a rerun is a no-op
    engine = sa.create_engine(database_url)
    inspector = sa.inspect(engine)
    assert inspector.get_pk_constraint("api_keys")["name"] == "pk_api_keys"
    [fk] = inspector.get_foreign_keys("api_keys")
    assert fk["referred_table"] == "accounts" and fk["name"] == "fk_api_keys_account_accounts"
    engine.dispose()
    migrations.upgrade(database_url)
    migrations.downgrade(database_url, "0005_add_attempts")
    engine = sa.create_engine(database_url)
    assert not sa.inspect(engine).has_table("accounts")
    assert "ix_predictions_account_created_at" not in {
        i["name"] for i in sa.inspect(engine).get_indexes("predictions")
    }
    engine.dispose()


def test_account_columns_revision_adds_nullable_choices_and_reruns(database_url):
    migrations.upgrade(database_url, "0015_add_account_columns")
    migrations.upgrade(database_url, "0015_add_account_columns")  # a rerun is a no-op
    assert {"value_column", "carry_columns"} <= set(columns(database_url, "accounts"))
    assert "carry_columns" in columns(database_url)
    migrations.downgrade(database_url, "0014_create_webhooks")
    migrations.downgrade(database_url, "0014_create_webhooks")  # and so is a second downgrade
    assert not {"value_column", "carry_columns"} & set(columns(database_url, "accounts"))
    assert "carry_columns" not in columns(database_url)


def test_upload_scores_revision_creates_a_named_table_and_reruns(database_url):
    migrations.upgrade(database_url, "0016_create_upload_scores")
    migrations.upgrade(database_url, "0016_create_upload_scores")  # a rerun is a no-op
    assert set(columns(database_url, "upload_scores")) == {"prediction_id", "part", "scores"}
    engine = sa.create_engine(database_url)
    assert sa.inspect(engine).get_pk_constraint("upload_scores")["name"] == "pk_upload_scores"
    engine.dispose()
    migrations.downgrade(database_url, "0015_add_account_columns")
    migrations.downgrade(database_url, "0015_add_account_columns")  # and so is a second one
    engine = sa.create_engine(database_url)
    assert not sa.inspect(engine).has_table("upload_scores")
    engine.dispose()
    migrations.upgrade(database_url)
    assert "scores" in columns(database_url, "upload_scores")
