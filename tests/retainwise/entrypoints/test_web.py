"""The web app's session rules over HTTP: signed HttpOnly cookie without the key, CSRF on every
POST, revocation ends the session, another tenant's page is a 404 that says what to do."""

import base64
import re

import pytest
from fastapi.testclient import TestClient

from retainwise.adapters import accounts, db
from retainwise.entrypoints.app import create_app


@pytest.fixture
def web(resources):
    return TestClient(create_app(resources), follow_redirects=False)


def csrf_of(page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', page).group(1)


def sign_in(web, key: str):
    token = csrf_of(web.get("/app/signin").text)
    return web.post("/app/signin", data={"csrf": token, "api_key": key})


def test_sign_in_sets_a_signed_httponly_lax_cookie_holding_no_key(web, resources):
    accounts.create_account(resources.engine, "acme")
    issued = accounts.create_key(resources.engine, "acme")
    assert web.get("/app").headers["location"] == "/app/signin"
    response = sign_in(web, issued["api_key"])
    assert (response.status_code, response.headers["location"]) == (303, "/app")
    cookie = response.headers["set-cookie"]
    assert "httponly" in cookie.lower() and "samesite=lax" in cookie.lower()
    payload = cookie.split("=", 1)[1].split(".", 1)[0]
    decoded = base64.b64decode(payload + "=" * (-len(payload) % 4))
    assert issued["key_id"].encode() in decoded
    assert issued["api_key"].split("_", 2)[2].encode() not in decoded
    assert web.get("/app").status_code == 200

    accounts.revoke_key(resources.engine, issued["key_id"])  # ends the session at once
    assert web.get("/app/uploads").headers["location"] == "/app/signin"


def test_every_post_needs_the_sessions_csrf_token(web, resources):
    accounts.create_account(resources.engine, "acme")
    key = accounts.create_key(resources.engine, "acme")["api_key"]
    web.get("/app/signin")
    assert web.post("/app/signin", data={"api_key": key}).status_code == 403
    assert web.post("/app/signin", data={"api_key": key, "csrf": "forged"}).status_code == 403
    sign_in(web, key)
    page = web.get("/app/uploads/new").text
    token = re.search(r'"X-CSRF-Token", "([^"]+)"', page).group(1)
    upload = {"file": ("c.csv", b"customer_id\n1\n", "text/csv")}
    assert web.post("/app/uploads", files=upload).status_code == 403
    assert (
        web.post("/app/uploads", files=upload, headers={"X-CSRF-Token": "forged"}).status_code
        == 403
    )
    accepted = web.post("/app/uploads", files=upload, headers={"X-CSRF-Token": token})
    assert accepted.status_code == 202
    assert web.post("/app/signout", data={}).status_code == 403
    assert web.post("/app/signout", data={"csrf": csrf_of(page)}).status_code == 303
    assert web.get("/app").headers["location"] == "/app/signin"


def test_another_tenants_upload_is_a_404_page_with_a_way_back(web, resources):
    accounts.create_account(resources.engine, "acme")
    accounts.create_account(resources.engine, "bravo")
    theirs = db.create_prediction(
        resources.engine, account="acme", model_name="churn", input_key="uploads/acme/x/input"
    )
    sign_in(web, accounts.create_key(resources.engine, "bravo")["api_key"])
    for path in (f"/app/uploads/{theirs}", f"/app/uploads/{theirs}/files/results"):
        page = web.get(path)
        assert page.status_code == 404
        assert "no upload with this id" in page.text and 'href="/app/uploads"' in page.text
    assert theirs not in web.get("/app/uploads").text
    assert web.get("/app/nowhere").status_code == 404
