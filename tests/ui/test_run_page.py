"""The Prefect UI, seen by a person: a completed upload's run page shows its summary artifact.

Debian's headless chromium against `prefect server start` on loopback (the test harness's server
serves the API only, no UI).
"""

import os
import subprocess
import sys
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings

from flows.score_upload import score_upload
from retainwise.adapters import db
from retainwise.local.stack import stop_group, wait_healthy
from tests.conftest import free_port
from tests.helpers import customers_csv, submit
from tests.ui.browser import CHROMIUM, headless_page

pytestmark = [
    pytest.mark.skipif(
        CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
    ),
]


@pytest.fixture(scope="module")
def prefect_server_with_ui(tmp_path_factory):
    """`prefect server start` with the UI, on a free loopback port and its own database."""
    home, port = tmp_path_factory.mktemp("prefect-ui"), free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "PREFECT_HOME": str(home),
        "PREFECT_UI_API_URL": f"{url}/api",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_API_URL": f"{url}/api",
    }
    with open(home / "server.log", "wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "prefect",
                "server",
                "start",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--no-services",
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_healthy(f"{url}/api/health", 120, server, home / "server.log")
        yield url
    finally:
        stop_group(server.pid, grace=20)
        server.wait(10)


def test_a_completed_runs_page_shows_its_summary(resources, prefect_server_with_ui):
    ui = prefect_server_with_ui
    prediction_id = submit(resources, customers_csv(25))
    with temporary_settings(updates={PREFECT_API_URL: f"{ui}/api"}):
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
        # wait for what is asserted: the heading renders with the table, not with the page frame
        page.get_by_text(f"Upload {prediction_id}").first.wait_for(timeout=60_000)
        page.get_by_text("rows total").first.wait_for(timeout=60_000)
        summary = page.inner_text("body")
    assert f"Upload {prediction_id}" in summary
    for label in ("rows scored", "rows rejected", "HIGH / MEDIUM / LOW", "drifted features"):
        assert label in summary
    assert f"churn v{row.model_version}" in summary
