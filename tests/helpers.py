"""Small builders shared by the tests."""

from __future__ import annotations

import io
from typing import Any, Callable

import pandas as pd
import tenacity

from retainwise.adapters import aws

from retainwise.adapters import db

from retainwise.entrypoints import service
from retainwise.local.sample import synthetic_customers


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 0.05) -> Any:
    """predicate()'s first truthy value, tried every `poll` s; fails the test after `timeout` s."""
    try:
        return tenacity.Retrying(retry=tenacity.retry_if_result(lambda value: not value),
                                 stop=tenacity.stop_after_delay(timeout),
                                 wait=tenacity.wait_fixed(poll))(predicate)
    except tenacity.RetryError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


def customers_csv(rows: int = 200, seed: int = 21) -> bytes:
    return synthetic_customers(rows, seed=seed, labeled=False).to_csv(index=False).encode()


def submit(resources, data: bytes, account: str = "acme") -> str:
    return service.submit_upload(resources, data, filename="customers.csv", account=account,
                                 model_name="churn")


def results_of(resources, prediction_id: str) -> pd.DataFrame:
    row = db.get_prediction(resources.engine, prediction_id)
    data = aws.get_bytes(resources.s3, resources.settings.bucket, row["result_key"])
    return pd.read_csv(io.BytesIO(data), dtype={"customer_id": str})
