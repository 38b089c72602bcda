"""Accounts and API keys on SQLite and PostgreSQL: only a hash is stored, every bad key is None."""

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from retainwise.adapters import accounts, db

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def test_a_key_authenticates_its_account_and_only_its_hash_is_stored(migrated_engine):
    accounts.create_account(migrated_engine, "acme", NOW)
    issued = accounts.create_key(migrated_engine, "acme", NOW)
    assert issued["api_key"].startswith(f"rw_{issued['key_id']}_")
    assert accounts.authenticate(migrated_engine, issued["api_key"], NOW).name == "acme"
    with migrated_engine.connect() as conn:
        stored = conn.execute(sa.select(accounts.api_keys)).mappings().one()
    secret = issued["api_key"].split("_", 2)[2]
    assert secret not in str(dict(stored)) and stored["key_hash"] == accounts.hash_secret(secret)
    assert not hasattr(accounts.list_keys(migrated_engine, "acme")[0], "key_hash")


def test_last_used_is_written_at_most_once_a_minute(migrated_engine):
    accounts.create_account(migrated_engine, "acme", NOW)
    key = accounts.create_key(migrated_engine, "acme", NOW)["api_key"]
    for seconds in (0, 30, 90):
        accounts.authenticate(migrated_engine, key, NOW + timedelta(seconds=seconds))
    [row] = accounts.list_keys(migrated_engine, "acme")
    assert row.last_used_at.replace(tzinfo=UTC) == NOW + timedelta(seconds=90)


def test_every_bad_key_is_refused_alike(migrated_engine):
    accounts.create_account(migrated_engine, "acme", NOW)
    accounts.create_account(migrated_engine, "other", NOW)
    good = accounts.create_key(migrated_engine, "acme", NOW)
    revoked = accounts.create_key(migrated_engine, "acme", NOW)
    disabled = accounts.create_key(migrated_engine, "other", NOW)
    assert accounts.revoke_key(migrated_engine, revoked["key_id"], NOW)
    assert accounts.disable_account(migrated_engine, "other", NOW)
    wrong_secret = good["api_key"][:-4] + (
        "AAAA" if not good["api_key"].endswith("AAAA") else "BBBB"
    )
    for token in (
        "",
        "Bearer x",
        "rw_nothex_secret",
        good["api_key"] + "x",
        wrong_secret,
        revoked["api_key"],
        disabled["api_key"],
    ):
        assert accounts.authenticate(migrated_engine, token, NOW) is None, token
    assert accounts.authenticate(migrated_engine, good["api_key"], NOW).name == "acme"


@pytest.mark.parametrize("name", ["", "Acme", "-acme", "a" * 64, "acme_co", "ac me", "../x"])
def test_names_outside_the_pattern_are_refused(name):
    with pytest.raises(accounts.AccountError):
        accounts.check_name(name)


def test_duplicate_accounts_and_keys_for_disabled_accounts_are_refused(migrated_engine):
    accounts.create_account(migrated_engine, "acme", NOW)
    with pytest.raises(accounts.AccountError, match="exists"):
        accounts.create_account(migrated_engine, "acme", NOW)
    accounts.disable_account(migrated_engine, "acme", NOW)
    with pytest.raises(accounts.AccountError, match="no enabled account"):
        accounts.create_key(migrated_engine, "acme", NOW)


def test_reads_are_scoped_by_account(migrated_engine):
    ours = db.create_prediction(
        migrated_engine, account="acme", model_name="churn", input_key="uploads/acme/x/input"
    )
    theirs = db.create_prediction(
        migrated_engine, account="other", model_name="churn", input_key="uploads/other/y/input"
    )
    assert db.get_prediction_of(migrated_engine, "acme", ours).id == ours
    assert db.get_prediction_of(migrated_engine, "acme", theirs) is None
    assert [r.id for r in db.list_predictions(migrated_engine, "acme")] == [ours]
    assert db.count_active(migrated_engine, "acme") == 1


def test_column_choices_are_set_kept_and_cleared(migrated_engine):
    accounts.create_account(migrated_engine, "acme", NOW)
    assert accounts.get_account(migrated_engine, "acme").carry_columns == ()
    chosen = accounts.set_columns(migrated_engine, "acme", "MonthlyCharges", ("email", " plan "))
    assert (chosen.value_column, chosen.carry_columns) == ("MonthlyCharges", ("email", "plan"))
    kept = accounts.set_columns(migrated_engine, "acme", carry_columns=None)  # None keeps
    assert kept == chosen
    cleared = accounts.set_columns(migrated_engine, "acme", "", ())
    assert (cleared.value_column, cleared.carry_columns) == (None, ())
    with pytest.raises(accounts.AccountError):
        accounts.set_columns(migrated_engine, "nobody", "x")


def test_an_upload_keeps_its_own_carried_columns(migrated_engine):
    accounts.create_account(migrated_engine, "acme", NOW)
    carried = db.create_prediction(
        migrated_engine, account="acme", model_name="churn", input_key="k", carry_columns=("a",)
    )
    plain = db.create_prediction(migrated_engine, account="acme", model_name="churn", input_key="k")
    assert db.get_prediction(migrated_engine, carried).carry_columns == ("a",)
    assert db.get_prediction(migrated_engine, plain).carry_columns == ()


def test_carried_columns_are_capped_and_an_uploads_own_win(migrated_engine):
    accounts.create_account(migrated_engine, "acme", NOW)
    accounts.set_columns(migrated_engine, "acme", carry_columns=("email", "email", "plan"))
    account = accounts.get_account(migrated_engine, "acme")
    assert account.carry_columns == ("email", "plan")  # a repeat is kept once
    widest = tuple(f"{i:02d}" + "x" * (db.MAX_CARRY_NAME - 2) for i in range(20))
    assert accounts.set_columns(migrated_engine, "acme", carry_columns=widest).carry_columns == (
        widest
    )  # the caps fit the stored column
    with pytest.raises(accounts.AccountError, match="the limit is 20 columns"):
        accounts.set_columns(migrated_engine, "acme", carry_columns=(*widest, "one more"))
    with pytest.raises(db.CarryRefused, match="control character"):
        db.carry_names("email,ph\x00one")
    with pytest.raises(db.CarryRefused, match="more than 100 characters"):
        db.create_prediction(
            migrated_engine,
            account="acme",
            model_name="churn",
            input_key="k",
            carry_columns=("x" * 101,),
        )
