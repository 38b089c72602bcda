"""The monitoring page in Debian's chromium (Playwright), served by uvicorn on real stores (SQLite,
a real MLflow store): two model versions over six weeks, outcomes for some uploads, a drifting
column. Screenshots land in the test's tmp dir (`screens/`); open them to look."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from retainwise.adapters import accounts
from retainwise.adapters.mlflow_registry import load_version
from tests.helpers import copied_versions, monitored_upload
from tests.ui.browser import CHROMIUM, browser
from tests.ui.test_web_app import app_url, sign_in  # noqa: F401 - app_url is a fixture

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)

START = datetime(2026, 10, 5, 9, 30, tzinfo=UTC)


def seed(resources, mlflow_store) -> tuple[str, list[str], list[str]]:
    """acme: six weekly uploads, v1 then v2, outcomes for the first four, `Contract` drifting
    from the fourth on; bravo: one upload of its own."""
    model = f"churn-{uuid.uuid4().hex[:6]}"
    settings = resources.settings
    versions = copied_versions(settings, f"models:/churn/{mlflow_store['version']}", model, 2)
    profile = load_version(model, versions[0], settings.tracking_uri).profile
    rng = np.random.default_rng(15)
    uploads = []
    for week in range(6):
        p = rng.beta(1.2 + 0.3 * (week >= 3), 2.5, 600)
        y = (rng.random(600) < p).astype(int)
        uploads.append(
            monitored_upload(
                resources.engine,
                "acme",
                model,
                versions[week >= 3],
                p,
                START + timedelta(days=7 * week, hours=week),
                profile=profile,
                column_psi={
                    "tenure": 0.01 + 0.01 * week,
                    "MonthlyCharges": 0.04 * week,
                    "Contract": 0.05 if week < 3 else 0.3 + 0.05 * week,
                    "PaymentMethod": 0.02,
                },
                churned=y if week < 4 else None,
            )
        )
    theirs = [
        monitored_upload(
            resources.engine,
            "bravo",
            model,
            versions[0],
            rng.beta(2, 2, 300),
            START,
            profile=profile,
            column_psi={"bravo_secret_column": 0.8},
        )
    ]
    return model, uploads, theirs


def test_a_data_scientist_reads_auc_drift_and_tier_churn_and_another_account_sees_none(
    resources,
    mlflow_store,
    app_url,  # noqa: F811 - the fixture imported above
    tmp_path,
):
    model, uploads, theirs = seed(resources, mlflow_store)
    engine, screens = resources.engine, tmp_path / "screens"
    for name in ("acme", "bravo", "carol"):
        accounts.create_account(engine, name)
    keys = {
        name: accounts.create_key(engine, name)["api_key"] for name in ("acme", "bravo", "carol")
    }
    with browser() as chromium:
        page = sign_in(
            chromium.new_context(viewport={"width": 1280, "height": 900}), app_url, keys["acme"]
        )
        page.click("nav >> text=Monitoring")
        page.wait_for_url(f"{app_url}/app/monitoring")
        assert page.inner_text("h1") == f"Monitoring: {model}"
        auc = page.locator("figure[data-chart=auc]")
        assert "ROC AUC per upload" in auc.locator("figcaption").inner_text()
        legend = auc.locator(".legend li").all_inner_texts()
        assert legend == ["v1 estimated", "v1 realised", "v2 estimated", "v2 realised"]
        assert auc.locator("g[data-series='v1 estimated'] circle").count() == 3
        assert auc.locator("g[data-series='v2 realised'] circle").count() == 1
        assert auc.locator("g[data-series='v2 estimated'] circle").count() == 3
        assert {"upload completed", "ROC AUC", "floor 0.70"} <= set(
            auc.locator("svg text").all_text_contents()
        )
        rows = page.locator("#drift-table tbody tr").evaluate_all(
            "rows => rows.map(r => r.dataset.column)"
        )
        assert rows[:2] == ["scores (churn probability)", "Contract"]
        assert page.locator("#drift-table tr[data-column=Contract] td.psi-high").count() == 3
        assert "Drifted on the latest upload: Contract" in page.inner_text("#drift")
        assert [c.get_attribute("data-chart") for c in page.locator("#tiers figure").all()] == [
            "tiers-v1",
            "tiers-v2",
        ]
        tiers = page.locator("figure[data-chart=tiers-v1] rect title").all_text_contents()
        assert [t.split(" ")[0] for t in tiers] == ["HIGH", "MEDIUM", "LOW"]
        assert "HIGH should churn ≥ 50%" in page.inner_text("figure[data-chart=tiers-v1]")
        assert "bravo_secret_column" not in page.content()
        assert theirs[0] not in page.content()
        page.screenshot(path=screens / "monitoring.png", full_page=True)
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
        page.screenshot(path=screens / "monitoring-narrow.png", full_page=True)

        bravo = sign_in(
            chromium.new_context(viewport={"width": 1280, "height": 900}), app_url, keys["bravo"]
        )
        bravo.goto(f"{app_url}/app/monitoring")
        assert "No outcomes yet" in bravo.inner_text("#no-outcomes")
        assert "No outcomes yet" in bravo.inner_text("#tiers")
        assert bravo.locator("figure[data-chart=auc] .legend li").all_inner_texts() == [
            "v1 estimated"
        ]  # the estimate alone until outcomes arrive
        assert not any(upload in bravo.content() for upload in uploads)
        bravo.screenshot(path=screens / "monitoring-no-outcomes.png", full_page=True)

        carol = sign_in(
            chromium.new_context(viewport={"width": 1280, "height": 900}), app_url, keys["carol"]
        )
        carol.goto(f"{app_url}/app/monitoring")
        assert "No monitoring figures yet" in carol.inner_text("#empty-state")
        assert carol.locator("figure").count() == 0
        carol.screenshot(path=screens / "monitoring-empty.png", full_page=True)
