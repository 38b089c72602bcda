"""The customers' web app in Debian's chromium (Playwright), on real parts: uvicorn serving the app,
moto S3/SQS, SQLite, a Prefect API and MLflow. A thread plays the trigger and runner: it takes
each SQS message and runs the real score-upload flow.

Screenshots of every page land in the test's tmp dir (`screens/`); open them to look.
"""

from __future__ import annotations

import threading

import pandas as pd
import pytest

from flows.score_upload import score_upload
from retainwise.adapters import accounts
from retainwise.adapters import mlflow_registry as registry
from retainwise.config.settings import Settings
from retainwise.entrypoints.app import create_app
from tests.conftest import free_port, telco_path
from tests.helpers import served
from tests.ui.browser import CHROMIUM, browser

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
    ),
    pytest.mark.usefixtures("prefect_api"),
    pytest.mark.timeout(900),  # a browser waits up to 240 s for an upload to complete
]


@pytest.fixture
def telco_model(mlflow_store, telco_trained):
    """The session's Telco model (trained once per worker), champion of `telco` in the session's
    MLflow store."""
    _, trained = telco_trained
    settings = Settings(home=mlflow_store["home"], mlflow_tracking_uri=mlflow_store["uri"])
    registry.promote("telco", registry.register(trained, "telco", settings), settings)
    return "telco"


@pytest.fixture
def app_url(resources):
    """The app under uvicorn on a free loopback port, in a thread of this process."""
    with served(create_app(resources), free_port()) as url:
        yield url


@pytest.fixture
def scorer(resources):
    """Every queued upload scored by the real flow, as the trigger and runner would."""
    stop, errors = threading.Event(), []

    def work():
        while not stop.is_set():
            for message in resources.queue.receive(wait_seconds=1):
                try:
                    score_upload(message.prediction_id)
                except Exception as exc:  # noqa: BLE001 - surfaced by the test below
                    errors.append(exc)
                resources.queue.delete(message.receipt_handle)

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    yield errors
    stop.set()
    thread.join(30)


def telco_with_bad_rows() -> bytes:
    """The Telco file plus three rows whose tenure is not a number (rejected, with a reason)."""
    frame = pd.read_csv(telco_path(), dtype=str, keep_default_na=False)
    bad = frame.head(3).assign(customerID=["bad-1", "bad-2", "bad-3"], tenure="soon")
    return pd.concat([frame, bad]).to_csv(index=False).encode()


def sign_in(context, url: str, key: str):
    page = context.new_page()
    page.goto(f"{url}/app")
    assert page.url.endswith("/app/signin")  # no session: sent to the sign-in form
    page.fill("#api_key", key)
    page.click("button[type=submit]")
    page.wait_for_url(f"{url}/app")
    return page


def test_a_customer_uploads_sees_it_complete_reads_charts_and_another_cannot_see_it(
    resources, app_url, scorer, telco_model, tmp_path
):
    engine, screens = resources.engine, tmp_path / "screens"
    accounts.create_account(engine, "acme", allowed_models=telco_model)
    accounts.create_account(engine, "bravo")
    key_a = accounts.create_key(engine, "acme")["api_key"]
    key_b = accounts.create_key(engine, "bravo")["api_key"]

    with browser() as chromium:
        a = chromium.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
        page = a.new_page()
        page.goto(f"{app_url}/app/signin")
        page.fill("#api_key", "rw_not_a_key")
        page.click("button[type=submit]")
        assert "not valid" in page.inner_text("[role=alert]")
        page.screenshot(path=screens / "signin-error.png", full_page=True)

        page = sign_in(a, app_url, key_a)
        assert "No uploads yet" in page.inner_text("main")
        page.screenshot(path=screens / "dashboard-empty.png", full_page=True)
        page.goto(f"{app_url}/app/uploads/new")
        page.screenshot(path=screens / "new-upload.png", full_page=True)
        page.set_input_files(
            "#file",
            {"name": "telco_churn.csv", "mimeType": "text/csv", "buffer": telco_with_bad_rows()},
        )
        page.wait_for_url(f"{app_url}/app/uploads")

        page.evaluate("window.notReloaded = true")
        row = page.locator("#uploads tr[data-id]").first
        prediction_id = row.get_attribute("data-id")
        row.locator(".status.COMPLETED").wait_for(timeout=240_000)
        assert page.evaluate("window.notReloaded === true"), "the list reloaded"
        assert not scorer, scorer
        assert row.locator("[data-field=rows_total]").inner_text() == "7,046"
        assert row.locator("[data-field=rows_rejected]").inner_text() == "3"
        page.screenshot(path=screens / "uploads.png", full_page=True)

        row.locator("a").click()
        page.wait_for_url(f"{app_url}/app/uploads/{prediction_id}")
        for chart in ("risk-tiers", "probability", "drift"):
            bars = page.locator(f"figure[data-chart={chart}] rect.bar")
            assert bars.count() > 0, chart
        tiers = page.locator("figure[data-chart=risk-tiers] rect title").all_text_contents()
        assert [t.split(":")[0] for t in tiers] == ["HIGH", "MEDIUM", "LOW"]
        assert page.locator("#rejects tbody tr").count() == 3
        assert "tenure: 'soon' is not a number" in page.inner_text("#rejects")
        page.screenshot(path=screens / "upload-detail.png", full_page=True)
        with page.expect_download() as download:
            page.click("#download-results")
        results = pd.read_csv(download.value.path())
        scored = int(page.inner_text("[data-field=rows_scored]").replace(",", ""))
        assert len(results) == scored > 7000
        assert set(results.columns) >= {"customer_id", "churn_probability", "churn_risk"}

        page.goto(f"{app_url}/app")
        per_day = page.locator("figure[data-chart=uploads-per-day] rect title").all_text_contents()
        assert per_day[-1].endswith(": 1") and len(per_day) == 14  # today's upload
        [high] = page.locator("figure[data-chart=high-share] rect title").all_text_contents()
        assert high.endswith("%") and high.split(": ")[-1] != "0%"
        page.screenshot(path=screens / "dashboard.png", full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{app_url}/app/uploads/{prediction_id}")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
        page.screenshot(path=screens / "upload-detail-narrow.png", full_page=True)

        b = chromium.new_context(viewport={"width": 1280, "height": 900})
        page_b = sign_in(b, app_url, key_b)
        page_b.goto(f"{app_url}/app/uploads")
        assert prediction_id not in page_b.content()
        response = page_b.goto(f"{app_url}/app/uploads/{prediction_id}")
        assert response.status == 404
        assert "no upload with this id" in page_b.inner_text("h1")
        page_b.screenshot(path=screens / "other-account-404.png", full_page=True)
        download_b = page_b.request.get(f"{app_url}/app/uploads/{prediction_id}/files/results")
        assert download_b.status == 404 and b"customer_id" not in download_b.body()

        page_b.click("text=Sign out")
        page_b.wait_for_url(f"{app_url}/app/signin")
        assert page_b.goto(f"{app_url}/app/uploads").url.endswith("/app/signin")
