"""Hostile HTTP against the running API: uvicorn on loopback serving the real app on moto and
SQLite. Each test is what an attacker or a careless client sends, as bytes on a socket where
framing matters (tests/rawhttp.py)."""

from __future__ import annotations

import re

import httpx
import pytest

from retainwise.adapters import accounts, db
from retainwise.entrypoints.app import create_app
from retainwise.entrypoints.limits import RateLimit
from tests.conftest import free_port
from tests.helpers import served
from tests.rawhttp import FORM_FIELD, MB, completed_upload, flood, head, held_uploads

HUGE = "99999999999999999999999"


@pytest.fixture
def app(resources):
    return create_app(resources)


@pytest.fixture
def url(app):
    with served(app, free_port()) as base:
        yield base


@pytest.fixture
def key(resources) -> str:
    accounts.create_account(resources.engine, "acme")
    return accounts.create_key(resources.engine, "acme")["api_key"]


def test_an_unauthenticated_600_mb_sign_in_form_is_refused_at_once(url):
    request = head(
        "POST /app/signin HTTP/1.1\nHost: t\nTransfer-Encoding: chunked\n"
        "Content-Type: application/x-www-form-urlencoded\n"
    )
    status, sent = flood(url, request, blocks=600, block=FORM_FIELD)
    assert status == 413
    assert sent < 64 * MB  # what socket buffers took before the answer was seen


def test_a_chunked_upload_with_a_lying_length_is_refused_and_stores_nothing(url, key, resources):
    request = head(
        f"POST /uploads HTTP/1.1\nHost: t\nAuthorization: Bearer {key}\n"
        "Content-Length: 5\nTransfer-Encoding: chunked\n"
    )
    assert flood(url, request, blocks=30, block=b"x" * MB)[0] == 400
    assert db.list_predictions(resources.engine, "acme", 10) == []


def test_ten_uploads_in_flight_against_a_cap_of_four_four_are_received(url, key, resources):
    body = b"customer_id,tenure\n" + b"".join(b"c%d,1\n" % i for i in range(1000))
    assert held_uploads(url, key, 10, body) == [202] * 4 + [429] * 6
    assert len(db.list_predictions(resources.engine, "acme", 20)) == 4


def test_two_outcomes_against_a_7k_row_upload_are_joined(url, key, resources):
    upload = completed_upload(resources, "acme", 7_000)
    answer = httpx.post(
        f"{url}/uploads/{upload}/outcomes",
        content=b"customer_id,churned\nc7,1\nc6999,no\n",
        headers={"Authorization": f"Bearer {key}", "Content-Type": "text/csv"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert (answer.json()["matched"], answer.json()["stored"]) == (2, 2)


def test_an_outcomes_body_over_its_cap_is_refused_while_it_streams(url, key, resources):
    upload = completed_upload(resources, "acme", 10)
    request = head(
        f"POST /uploads/{upload}/outcomes HTTP/1.1\nHost: t\nAuthorization: Bearer {key}\n"
        "Transfer-Encoding: chunked\n"
    )
    cap = resources.settings.max_outcomes_bytes
    status, sent = flood(url, request, blocks=cap // MB + 40, block=b"c1,1\n" * (MB // 5))
    assert status == 413 and sent < cap + 64 * MB


def test_a_huge_offset_answers_422(url, key):
    answer = httpx.get(f"{url}/uploads?offset={HUGE}", headers={"Authorization": f"Bearer {key}"})
    assert answer.status_code == 422


def signed_in(url: str, key: str) -> httpx.Client:
    client = httpx.Client(base_url=url)
    assert client.post("/app/signin", data={"api_key": key, "csrf": csrf(client, "/app/signin")})
    return client


def csrf(client: httpx.Client, page: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', client.get(page).text).group(1)


def test_a_cookie_kept_from_before_sign_out_no_longer_signs_in(url, key):
    browser = signed_in(url, key)
    assert browser.get("/app").status_code == 200
    kept = dict(browser.cookies)
    assert browser.get(f"/app/uploads.json?offset={HUGE}").status_code == 422
    assert browser.post("/app/signout", data={"csrf": csrf(browser, "/app")}).status_code == 303
    with httpx.Client(base_url=url, cookies=kept) as replay:
        answer = replay.get("/app")
    assert answer.status_code == 303 and answer.headers["location"] == "/app/signin"
    assert signed_in(url, key).get("/app").status_code == 200  # signing in again works


def test_a_key_over_its_rate_is_answered_429_with_retry_after(app, url, key):
    app.state.rate_limit = RateLimit(per_minute=60, burst=2)
    headers = {"Authorization": f"Bearer {key}"}
    answers = [httpx.get(f"{url}/uploads", headers=headers) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1


def test_pages_carry_the_security_headers_and_their_scripts_the_nonce(url, key):
    page = signed_in(url, key).get("/app/uploads/new")
    nonce = re.search(r"'nonce-([^']+)'", page.headers["content-security-policy"]).group(1)
    assert f'<script nonce="{nonce}">' in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.headers["cache-control"] == "no-store"
    refused = httpx.post(f"{url}/app/signin", content=b"x" * 100_000)
    assert refused.status_code == 413 and refused.headers["x-frame-options"] == "DENY"
