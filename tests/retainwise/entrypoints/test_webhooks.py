"""An account's webhook through the CLI (operators) and the API (the key's own account only)."""

import json

import pytest
from cryptography.fernet import Fernet
from fastapi.testclient import TestClient

from retainwise.adapters import accounts, webhooks
from retainwise.adapters.resources import Resources
from retainwise.config.settings import Settings
from retainwise.entrypoints import cli
from retainwise.entrypoints.app import create_app


def lines(capsys) -> list[dict]:
    return [json.loads(line) for line in capsys.readouterr().out.strip().splitlines() if line]


def test_set_show_remove_from_the_command_line(resources, capsys):
    accounts.create_account(resources.engine, "acme")
    assert cli.main(["account", "webhook", "set", "acme", "http://127.0.0.1:9/hook"]) == 0
    [created] = lines(capsys)
    assert created["account"] == "acme" and created["secret"].startswith("whsec_")

    assert cli.main(["account", "webhook", "show", "acme"]) == 0
    [shown] = lines(capsys)
    assert shown["url"] == "http://127.0.0.1:9/hook" and shown["deliveries"] == []
    assert "secret" not in shown

    assert cli.main(["account", "webhook", "remove", "acme"]) == 0
    assert lines(capsys) == [{"account": "acme", "removed": True}]
    assert cli.main(["account", "webhook", "show", "acme"]) == 2
    assert "no webhook" in capsys.readouterr().err


@pytest.mark.parametrize(
    "args, message",
    [
        (["set", "nobody", "https://hooks.example.com/"], "no enabled account"),
        (["set", "acme", "ftp://hooks.example.com/"], "not an http(s) URL"),
        (["remove", "acme"], "no webhook"),
    ],
)
def test_the_command_line_refuses_with_exit_2(resources, capsys, args, message):
    accounts.create_account(resources.engine, "acme")
    assert cli.main(["account", "webhook", *args]) == 2
    assert message in capsys.readouterr().err


@pytest.fixture
def keys(resources):
    for name in ("acme", "bravo"):
        accounts.create_account(resources.engine, name)
    return {n: accounts.create_key(resources.engine, n)["api_key"] for n in ("acme", "bravo")}


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def test_each_key_sets_sees_and_removes_only_its_own_accounts_webhook(resources, keys):
    http = TestClient(create_app(resources))
    url = "https://hooks.acme.example/rw"
    assert http.get("/account/webhook", headers=bearer(keys["acme"])).status_code == 404
    put = http.put("/account/webhook", json={"url": url}, headers=bearer(keys["acme"]))
    assert put.status_code == 200, put.text
    assert put.json()["account"] == "acme" and put.json()["secret"].startswith("whsec_")

    got = http.get("/account/webhook", headers=bearer(keys["acme"])).json()
    assert (got["url"], got["deliveries"]) == (url, []) and "secret" not in got
    assert http.get("/account/webhook", headers=bearer(keys["bravo"])).status_code == 404
    assert http.delete("/account/webhook", headers=bearer(keys["bravo"])).status_code == 404
    assert http.delete("/account/webhook", headers=bearer(keys["acme"])).status_code == 204
    assert webhooks.get_endpoint(resources.engine, "acme") is None


def test_every_method_needs_a_key(resources):
    http = TestClient(create_app(resources))
    for method in ("get", "put", "delete"):
        kwargs = {"json": {"url": "https://x.example/"}} if method == "put" else {}
        assert getattr(http, method)("/account/webhook", **kwargs).status_code == 401


@pytest.mark.parametrize(
    "url", ["http://hooks.example.com/", "https://127.0.0.1/", "https://169.254.169.254/"]
)
def test_production_refuses_plain_http_and_private_addresses_at_once(resources, keys, url):
    production = Settings(
        env="production",
        database_url=resources.settings.db_url,
        mlflow_tracking_uri=resources.settings.tracking_uri,
        mlflow_artifact_root=resources.settings.artifact_root,
        webhook_key=Fernet.generate_key().decode(),
        session_secret="s" * 32,
    )
    http = TestClient(create_app(Resources(production)))
    put = http.put("/account/webhook", json={"url": url}, headers=bearer(keys["acme"]))
    assert put.status_code == 422 and isinstance(put.json()["detail"], str)
    assert webhooks.get_endpoint(resources.engine, "acme") is None


def test_the_web_page_sets_shows_the_secret_once_and_removes(resources, keys):
    import re

    web = TestClient(create_app(resources), follow_redirects=False)
    csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/app/signin").text).group(1)
    web.post("/app/signin", data={"csrf": csrf, "api_key": keys["acme"]})
    empty = web.get("/app/webhook").text
    assert "None yet" not in empty and "Remove" not in empty
    csrf = re.search(r'name="csrf" value="([^"]+)"', empty).group(1)  # a new session's token
    url = "http://127.0.0.1:9/hooks"
    assert web.post("/app/webhook", data={"url": url, "action": "set"}).status_code == 403

    made = web.post("/app/webhook", data={"csrf": csrf, "url": url, "action": "set"})
    secret = re.search(r'<code id="secret">(whsec_[^<]+)</code>', made.text).group(1)
    box = webhooks.secret_box(resources.settings)
    assert box.decrypt(_stored_secret(resources).encode()).decode() == secret
    again = web.get("/app/webhook").text
    assert url in again and secret not in again and "None yet" in again

    bad = web.post("/app/webhook", data={"csrf": csrf, "url": "ftp://x", "action": "set"})
    assert bad.status_code == 422 and "not an http(s) URL" in bad.text
    gone = web.post("/app/webhook", data={"csrf": csrf, "action": "remove"})
    assert gone.status_code == 303 and webhooks.get_endpoint(resources.engine, "acme") is None


def _stored_secret(resources) -> str:
    import sqlalchemy as sa

    with resources.engine.connect() as conn:
        return conn.execute(sa.select(webhooks.webhook_endpoints.c.secret_encrypted)).scalar_one()


def test_the_account_page_names_the_carried_columns_and_an_upload_its_own(resources, keys):
    import re

    from retainwise.adapters import db

    web = TestClient(create_app(resources), follow_redirects=False)
    csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/app/signin").text).group(1)
    web.post("/app/signin", data={"csrf": csrf, "api_key": keys["acme"]})
    csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/app/webhook").text).group(1)
    assert web.post("/app/columns", data={"carry": "email"}).status_code == 403
    saved = web.post("/app/columns", data={"csrf": csrf, "carry": "email, plan"})
    assert saved.status_code == 303
    assert accounts.get_account(resources.engine, "acme").carry_columns == ("email", "plan")
    assert 'value="email, plan"' in web.get("/app/webhook").text
    many = ",".join(f"c{i}" for i in range(21))
    refused = web.post("/app/columns", data={"csrf": csrf, "carry": many})
    assert refused.status_code == 422 and "the limit is 20 columns" in refused.text

    form = web.get("/app/uploads/new").text
    assert "your account&#39;s: email, plan" in form
    token = re.search(r'"X-CSRF-Token", "([^"]+)"', form).group(1)
    sent = web.post(
        "/app/uploads",
        files={"file": ("c.csv", b"customer_id,email\n1,a@b.c\n", "text/csv")},
        data={"carry": "email"},
        headers={"X-CSRF-Token": token},
    )
    upload = db.get_prediction(resources.engine, sent.json()["prediction_id"])
    assert upload.carry_columns == ("email",)
    assert web.post("/app/columns", data={"csrf": csrf, "carry": ""}).status_code == 303
    assert accounts.get_account(resources.engine, "acme").carry_columns == ()


def test_the_account_page_names_the_value_column(resources, keys):
    import re

    web = TestClient(create_app(resources), follow_redirects=False)
    csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/app/signin").text).group(1)
    web.post("/app/signin", data={"csrf": csrf, "api_key": keys["acme"]})
    csrf = re.search(r'name="csrf" value="([^"]+)"', web.get("/app/webhook").text).group(1)
    assert web.post("/app/columns", data={"value": "MonthlyCharges"}).status_code == 403
    saved = web.post("/app/columns", data={"csrf": csrf, "carry": "", "value": " MonthlyCharges "})
    assert saved.status_code == 303
    assert accounts.get_account(resources.engine, "acme").value_column == "MonthlyCharges"
    assert (
        'name="value" placeholder="MonthlyCharges" value="MonthlyCharges"'
        in web.get("/app/webhook").text
    )
    kept = web.post("/app/columns", data={"csrf": csrf, "carry": "email"})  # no value field
    assert kept.status_code == 303
    found = accounts.get_account(resources.engine, "acme")
    assert (found.value_column, found.carry_columns) == ("MonthlyCharges", ("email",))
    refused = web.post("/app/columns", data={"csrf": csrf, "carry": "", "value": "v" * 256})
    assert refused.status_code == 422 and "longer than 255 characters" in refused.text
    assert accounts.get_account(resources.engine, "acme").value_column == "MonthlyCharges"
    assert web.post("/app/columns", data={"csrf": csrf, "value": ""}).status_code == 303
    assert accounts.get_account(resources.engine, "acme").value_column is None
