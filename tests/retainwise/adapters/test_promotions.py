"""model_promotions on SQLite and PostgreSQL: the revision, the record, "champion at time T"."""

from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

import migrations
from retainwise.adapters import promotions

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def test_revision_upgrades_reruns_downgrades_with_named_constraints(database_url):
    # to this revision, not head: later revisions build on it
    migrations.upgrade(database_url, "0003_create_model_promotions")
    migrations.upgrade(database_url, "0003_create_model_promotions")  # rerun is a no-op
    assert migrations.current_revision(database_url) == "0003_create_model_promotions"
    engine = sa.create_engine(database_url)
    inspector = sa.inspect(engine)
    checks = {c["name"] for c in inspector.get_check_constraints("model_promotions")}
    assert "ck_model_promotions_action_known" in checks
    assert inspector.get_pk_constraint("model_promotions")["name"] == "pk_model_promotions"
    migrations.downgrade(database_url, "0002_add_sqs_columns")
    assert not sa.inspect(engine).has_table("model_promotions")
    assert sa.inspect(engine).has_table("predictions")
    engine.dispose()
    migrations.upgrade(database_url, "0003_create_model_promotions")
    assert migrations.current_revision(database_url) == "0003_create_model_promotions"


def test_champion_at_answers_for_any_moment(migrated_engine):
    record = lambda action, old, new, minutes: promotions.record(  # noqa: E731
        migrated_engine,
        model_name="churn",
        action=action,
        from_version=old,
        to_version=new,
        actor="ana",
        reason="test",
        metrics={"challenger_metrics": {"roc_auc": 0.85}},
        at=T0 + timedelta(minutes=minutes),
    )
    record("promote", None, "1", 0)
    record("promote", "1", "2", 10)
    record("rollback", "2", "1", 20)
    promotions.record(
        migrated_engine,
        model_name="other",
        action="promote",
        from_version=None,
        to_version="7",
        actor="bo",
        at=T0 + timedelta(minutes=15),
    )

    def at(minutes):
        return promotions.champion_at(migrated_engine, "churn", T0 + timedelta(minutes=minutes))

    assert [at(-1), at(0), at(5), at(10), at(15), at(25)] == [None, "1", "1", "2", "2", "1"]
    berlin = timezone(timedelta(hours=1))
    assert (
        promotions.champion_at(
            migrated_engine, "churn", (T0 + timedelta(minutes=12)).astimezone(berlin)
        )
        == "2"
    )
    history = promotions.history(migrated_engine, "churn")
    assert [(h["action"], h["from_version"], h["to_version"]) for h in history] == [
        ("promote", None, "1"),
        ("promote", "1", "2"),
        ("rollback", "2", "1"),
    ]
    assert history[0]["metrics"]["challenger_metrics"]["roc_auc"] == 0.85
    assert history[0]["actor"] == "ana" and history[0]["forced"] is False


def test_rollback_undoes_the_promotion_that_made_the_champion(migrated_engine):
    promotions.record(
        migrated_engine,
        model_name="churn",
        action="promote",
        from_version=None,
        to_version="1",
        actor="ana",
    )
    promotions.record(
        migrated_engine,
        model_name="churn",
        action="promote",
        from_version="1",
        to_version="2",
        actor="ana",
    )
    assert promotions.rollback_target(migrated_engine, "churn", "2") == "1"
    assert promotions.rollback_target(migrated_engine, "churn", "1") is None


def test_unknown_actions_are_refused_by_the_database(migrated_engine):
    with pytest.raises(sa.exc.IntegrityError):
        promotions.record(
            migrated_engine,
            model_name="churn",
            action="demote",
            from_version="2",
            to_version="1",
            actor="ana",
        )


def test_an_unmigrated_database_gets_a_plain_message(tmp_path):
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    with pytest.raises(promotions.PromotionsTableMissing, match="retainwise migrate"):
        promotions.require_table(engine)
    engine.dispose()
