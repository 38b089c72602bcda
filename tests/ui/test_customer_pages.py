"""The contact list, the customer page and the dashboard's drivers in Debian's chromium, over two
seeded uploads (customer history and explanations stored, the actions list in moto S3).

Screenshots land in the test's tmp dir (`screens/`); open them to look. With
RETAINWISE_DOCS_SHOTS=1 the upload and customer pages are also saved as docs/web-app-*.png.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from retainwise.adapters import accounts
from tests.retainwise.entrypoints.customer_pages import seed
from tests.ui.browser import CHROMIUM, browser
from tests.ui.test_web_app import app_url, sign_in  # noqa: F401 - app_url is a fixture

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)
DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_contact_list_customer_page_and_drivers_read_well_wide_and_narrow(
    resources,
    app_url,  # noqa: F811 - the fixture imported above
    tmp_path,
):
    accounts.create_account(resources.engine, "acme")
    key = accounts.create_key(resources.engine, "acme")["api_key"]
    seeded = seed(resources, "acme", n=240, tmp_path=tmp_path)
    screens = tmp_path / "screens"
    docs = os.environ.get("RETAINWISE_DOCS_SHOTS") == "1"
    with browser() as launched:
        context = launched.new_context(viewport={"width": 1280, "height": 900})
        page = sign_in(context, app_url, key)
        assert page.locator("#moved-high").inner_text().strip().isdigit()
        assert page.locator('[data-chart="drivers"] rect').count() == 5
        page.screenshot(path=screens / "dashboard.png", full_page=True)

        page.goto(f"{app_url}/app/uploads/{seeded.second}")
        assert page.locator("#actions tbody tr").count() == 50
        assert page.locator("#risk-rose li").count() == 8
        page.screenshot(path=screens / "upload.png", full_page=True)
        if docs:
            small_png(page.screenshot(clip=_clip(page, 1100)), DOCS / "web-app-actions.png")

        page.click("#next-page")
        assert page.locator("#actions tbody tr").first.locator("td").first.inner_text() == "51"
        page.click("text=High")
        assert set(page.locator("#actions .tier").all_inner_texts()) <= {
            t for t in page.locator("#actions .tier").all_inner_texts() if t.endswith("HIGH")
        }
        page.fill("input[name=q]", "nobody")
        page.click("form.filters button")
        assert page.locator("#no-match").is_visible()
        page.screenshot(path=screens / "upload-no-match.png", full_page=True)

        page.goto(f"{app_url}/app/uploads/{seeded.first}")
        assert page.locator("#no-actions").is_visible()
        page.screenshot(path=screens / "upload-without-actions.png", full_page=True)

        page.goto(f"{app_url}/app/uploads/{seeded.second}")
        page.locator("#risk-rose a").first.click()
        assert page.locator('[data-chart="contributions"] rect').count() >= 5
        page.screenshot(path=screens / "customer.png", full_page=True)
        if docs:
            small_png(page.screenshot(full_page=True), DOCS / "web-app-customer.png")

        page.set_viewport_size({"width": 390, "height": 844})
        page.screenshot(path=screens / "customer-narrow.png", full_page=True)
        page.goto(f"{app_url}/app/uploads/{seeded.second}")
        page.screenshot(path=screens / "upload-narrow.png", full_page=True)
        context.close()


def _clip(page, height: int) -> dict:
    return {"x": 0, "y": 0, "width": page.viewport_size["width"], "height": height}


def small_png(shot: bytes, path: Path) -> None:
    """96 colours are plenty for a page of flat colours: a third of the bytes."""
    from PIL import Image

    image = Image.open(io.BytesIO(shot)).convert("RGB")
    image.quantize(colors=96, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
