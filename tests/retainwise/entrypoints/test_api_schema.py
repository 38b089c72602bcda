"""schemathesis against the app's own OpenAPI document: no 500s, responses match the schema.

Kept short (a few examples per operation); with a valid key, so the generated cases reach the
handlers, and uploads land in the account's S3 prefix on the test's moto bucket.
"""

import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from retainwise.adapters import accounts
from retainwise.entrypoints.api import create_app


@pytest.fixture
def fuzz_key(resources):
    accounts.create_account(resources.engine, "fuzz")
    return accounts.create_key(resources.engine, "fuzz")["api_key"]


@pytest.fixture
def api_schema(resources, fuzz_key):
    resources.settings.max_upload_bytes = 100_000  # a 413 is a documented answer too
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(resources))


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=15, deadline=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_the_api_keeps_to_its_schema_and_never_answers_500(case, fuzz_key):
    case.call_and_validate(headers={"Authorization": f"Bearer {fuzz_key}"})
