"""`retainwise account`: the operator creates, lists, disables accounts and their keys."""

import json

from retainwise.adapters import accounts
from retainwise.adapters.resources import Resources
from retainwise.entrypoints import cli


def lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.strip().splitlines() if line]


def test_account_lifecycle_from_the_command_line(stack_env, capsys):
    engine = Resources(stack_env).engine
    assert cli.main(["account", "create", "acme"]) == 0
    [created] = lines(capsys)
    assert created["account"] == "acme" and created["api_key"].startswith("rw_")
    assert accounts.authenticate(engine, created["api_key"]).name == "acme"

    assert cli.main(["account", "key", "create", "acme"]) == 0
    [second] = lines(capsys)
    assert cli.main(["account", "key", "list", "acme"]) == 0
    listed = lines(capsys)
    assert {k["key_id"] for k in listed} == {created["key_id"], second["key_id"]}
    assert "api_key" not in capsys.readouterr().out

    assert cli.main(["account", "key", "revoke", second["key_id"]]) == 0
    assert accounts.authenticate(engine, second["api_key"]) is None
    assert cli.main(["account", "key", "revoke", second["key_id"]]) == 2  # already revoked

    assert cli.main(["account", "disable", "acme"]) == 0
    assert accounts.authenticate(engine, created["api_key"]) is None
    assert cli.main(["account", "list"]) == 0
    assert lines(capsys)[0]["disabled_at"] is not None
    engine.dispose()


def test_bad_names_and_duplicates_exit_2_with_a_message(stack_env, capsys):
    assert cli.main(["account", "create", "Not_OK"]) == 2
    assert "must match" in capsys.readouterr().err
    assert cli.main(["account", "create", "acme"]) == 0
    assert cli.main(["account", "create", "acme"]) == 2
    assert "exists" in capsys.readouterr().err


def test_account_columns_are_named_and_cleared_from_the_command_line(stack_env, capsys):
    assert cli.main(["account", "create", "acme"]) == 0
    capsys.readouterr()
    args = ["account", "columns", "acme", "--value-column", "MonthlyCharges", "--carry", "a, b"]
    assert cli.main(args) == 0
    [shown] = lines(capsys)
    assert (shown["value_column"], shown["carry_columns"]) == ("MonthlyCharges", "a,b")
    assert cli.main(["account", "columns", "acme", "--carry", ""]) == 0  # the value column stays
    [shown] = lines(capsys)
    assert (shown["value_column"], shown["carry_columns"]) == ("MonthlyCharges", None)
    assert cli.main(["account", "columns", "nobody", "--carry", "a"]) == 2


def test_a_command_reads_its_settings_once_and_its_resources_use_them(stack_env, monkeypatch):
    from retainwise.adapters.resources import forget_process_resources
    from retainwise.config.settings import Settings

    forget_process_resources()  # the command builds the process's Resources, as in a new process
    built = []
    real_init = Settings.__init__

    def counted(self, *args, **kwargs):
        built.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(Settings, "__init__", counted)
    assert cli.main(["account", "list"]) == 0
    assert len(built) == 1 and Resources.of_process().settings is built[0]
