"""The contact list on the upload page, the customer page and the dashboard's drivers, over HTTP
on real parts (SQLite, moto S3), with two uploads seeded as the scoring pipeline leaves them."""

import re

import pytest
from fastapi.testclient import TestClient

from retainwise.adapters import accounts, db
from retainwise.entrypoints.app import create_app
from tests.retainwise.entrypoints.customer_pages import FEATURES, seed
from tests.retainwise.entrypoints.test_web import sign_in


@pytest.fixture
def web(resources):
    return TestClient(create_app(resources), follow_redirects=False)


@pytest.fixture
def seeded(web, resources, tmp_path):
    accounts.create_account(resources.engine, "acme")
    sign_in(web, accounts.create_key(resources.engine, "acme")["api_key"])
    return seed(resources, "acme", tmp_path=tmp_path)


def ranks(page: str) -> list[int]:
    table = page.split('id="actions"', 1)[1].split("</table>", 1)[0]
    return [int(n) for n in re.findall(r'<td class="num">(\d+)</td>', table)]


def test_the_upload_page_opens_with_the_ranked_list_50_a_page(web, seeded):
    page = web.get(f"/app/uploads/{seeded.second}").text
    assert page.index("Customers to contact first") < page.index("Row accounting")
    assert ranks(page) == list(range(1, 51))
    assert ranks(web.get(f"/app/uploads/{seeded.second}?page=3").text) == list(range(151, 181))
    assert 'id="next-page"' in page
    assert 'id="next-page"' not in web.get(f"/app/uploads/{seeded.second}?page=3").text
    assert re.search(r"Contract is Month-to-month <b class=\"up\">\+0\.90</b>", page)
    # a customer who moved from two-year says so beside the bar (models.changes)
    assert re.search(
        r"Contract is Month-to-month <b class=\"up\">\+0\.90</b> <span class=\"was\">was Two year",
        page,
    )


def test_the_list_filters_by_tier_and_searches_ids(web, seeded):
    high = web.get(f"/app/uploads/{seeded.second}?tier=LOW").text
    tiers = set(re.findall(r'<span class="tier (\w+)">', high.split('id="actions"')[1]))
    assert tiers == {"LOW"}
    found = web.get(f"/app/uploads/{seeded.second}?q=17-cust").text
    listed = re.findall(r'href="/app/customers/([^"]+)"', found.split('id="actions"')[1])
    assert sorted(listed) == [i for i in seeded.ids if "17-CUST" in i]
    assert "No customer matches" in web.get(f"/app/uploads/{seeded.second}?q=nobody").text


def test_the_rose_card_lists_exactly_the_customers_whose_risk_went_up(web, seeded):
    page = web.get(f"/app/uploads/{seeded.second}").text
    card = page.split('id="risk-rose"', 1)[1].split("</ul>", 1)[0]
    shown = re.findall(r'href="/app/customers/([^"]+)"', card)
    assert len(shown) == 8 and set(shown) <= set(seeded.rose)
    assert "▲ from" in card
    assert card.count("Contract is Month-to-month (was Two year)") == 8  # what changed


def test_uploads_without_an_actions_file_say_why(web, seeded, resources):
    older = web.get(f"/app/uploads/{seeded.first}").text
    assert 'id="no-actions"' in older and "scored before ranked lists" in older
    failed = db.create_prediction(
        resources.engine, account="acme", model_name="telco", input_key="uploads/acme/y"
    )
    db.claim_prediction(resources.engine, failed, "run")
    db.finish_prediction(resources.engine, failed, "run", db.Status.FAILED, error="bad file")
    assert "This upload failed" in web.get(f"/app/uploads/{failed}").text


def test_the_customer_page_shows_history_waterfall_and_reasons(web, seeded):
    customer = seeded.rose[0]
    page = web.get(f"/app/customers/{customer}")
    assert page.status_code == 200
    assert 'data-chart="risk-history" data-series="1"' in page.text
    assert page.text.count('r="4"><title>') == 2  # one point per upload
    steps = len(FEATURES) + 2  # base value, each feature, the score
    assert f'data-chart="contributions" data-steps="{steps}"' in page.text
    assert "Contract is Month-to-month (+0.90)" in page.text


def test_another_accounts_customer_answers_like_a_missing_one(web, seeded, resources):
    accounts.create_account(resources.engine, "bravo")
    sign_in(web, accounts.create_key(resources.engine, "bravo")["api_key"])
    theirs = web.get(f"/app/customers/{seeded.ids[0]}")
    missing = web.get("/app/customers/nobody-at-all")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.text == missing.text


def test_the_dashboard_shows_what_drives_churn_and_who_moved_into_high(web, seeded, resources):
    page = web.get("/app").text
    assert 'data-chart="drivers" data-bars="5"' in page
    drivers = page.split('data-chart="drivers"', 1)[1].split("</figure>", 1)[0]
    assert drivers.index("Contract") < drivers.index("PaymentMethod")
    moved = int(re.search(r'<b id="moved-high">([\d,]+)</b>', page).group(1))
    assert moved == expected_moved(resources, seeded)


def expected_moved(resources, seeded) -> int:
    from retainwise.adapters import customers

    now = {c: customers.customer(resources.engine, "acme", c).history for c in seeded.ids}
    return sum(h[0].churn_risk == "HIGH" and h[1].churn_risk != "HIGH" for h in now.values())
