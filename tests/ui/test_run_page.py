"""The Prefect UI, seen by a person: a completed upload's run page shows its summary artifact.

Debian's headless chromium against the Prefect UI (its static app, served in a thread of this
process) reading the session's Prefect API (the test harness's server serves the API only, no UI):
no second Prefect server is started. The run is this test's own (its upload's id in its name).
"""

import contextvars
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, PREFECT_UI_API_URL, temporary_settings

from flows.score_upload import score_upload
from retainwise.adapters import db
from tests.conftest import free_port
from tests.helpers import customers_csv, served, submit
from tests.ui.browser import CHROMIUM, headless_page

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
    ),
    pytest.mark.usefixtures("prefect_api"),
]


@pytest.fixture
def prefect_ui():
    """The Prefect UI's static app under uvicorn on a free loopback port, its `ui-settings`
    pointing the browser at the session's Prefect API (which allows any origin)."""
    from prefect.server.api.server import create_ui_app

    with temporary_settings(updates={PREFECT_UI_API_URL: PREFECT_API_URL.value()}):
        app = create_ui_app(ephemeral=False)
        # the server's thread runs in this context, so `ui-settings` reads the settings above
        with served(app, free_port(), context=contextvars.copy_context()) as url:
            yield url


def test_a_completed_runs_page_shows_its_summary(resources, prefect_ui):
    from playwright.sync_api import expect

    ui = prefect_ui
    prediction_id = submit(resources, customers_csv(25))
    assert score_upload(prediction_id)["status"] == "COMPLETED"
    with get_client(sync_client=True) as client:
        run = client.read_flow_run(
            UUID(db.get_prediction(resources.engine, prediction_id).flow_run_id)
        )
    row = db.get_prediction(resources.engine, prediction_id)
    assert run.name == f"score-{prediction_id}"
    assert f"model-version:{row.model_version}" in run.tags

    with headless_page() as page:
        page.goto(f"{ui}/v2/runs/flow-run/{row.flow_run_id}?tab=Artifacts")
        page.get_by_text("score-upload data-quality summary").first.wait_for(timeout=60_000)
        text = page.inner_text("body")
        assert f"score-{prediction_id}" in text and "Completed" in text

        link = page.evaluate(
            "[...document.querySelectorAll('a')].map(a => a.href)"
            ".find(h => h.includes('/artifacts/artifact/'))"
        )
        page.goto(link)
        # Playwright's retrying assertions: the artifact's markdown renders after the page frame,
        # and the UI may render it again meanwhile (a one-off read of the body once missed it)
        body = expect(page.locator("body"))
        for shown in (
            f"Upload {prediction_id}",
            "rows total",
            "rows scored",
            "rows rejected",
            "HIGH / MEDIUM / LOW",
            "drifted features",
            f"churn v{row.model_version}",
        ):
            body.to_contain_text(shown, timeout=60_000)
