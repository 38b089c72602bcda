"""Small builders shared by the tests."""

from __future__ import annotations

import functools
import io
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pandas as pd
import tenacity

from retainwise.adapters import aws, db
from retainwise.entrypoints import service
from retainwise.local.sample import synthetic_customers


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, poll: float = 0.05) -> Any:
    """predicate()'s first truthy value, tried every `poll` s; fails the test after `timeout` s."""
    try:
        return tenacity.Retrying(
            retry=tenacity.retry_if_result(lambda value: not value),
            stop=tenacity.stop_after_delay(timeout),
            wait=tenacity.wait_fixed(poll),
        )(predicate)
    except tenacity.RetryError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


@contextmanager
def served(app, port: int) -> Iterator[str]:
    """`app` under uvicorn on a loopback port, in a thread of this process; yields its base URL."""
    import uvicorn

    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def started() -> bool:
        assert thread.is_alive(), "uvicorn exited"
        return server.started

    wait_for(started, 60, "uvicorn to start")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@functools.cache
def trained_on_synthetic(rows: int, seed: int) -> Any:
    """`train` on `rows` synthetic customers, once per process (per xdist worker): the modules that
    only score with it share one fit (each had trained its own, 1-1.5 CPU s). Read-only."""
    from models.training import train

    return train(synthetic_customers(rows, seed=seed).astype(str), "Churn", "customer_id")


def customers_csv(rows: int = 200, seed: int = 21) -> bytes:
    return synthetic_customers(rows, seed=seed, labeled=False).to_csv(index=False).encode()


def submit(resources, data: bytes, account: str = "acme") -> str:
    return service.submit_upload(
        resources, data, filename="customers.csv", account=account, model_name="churn"
    )


def results_of(resources, prediction_id: str) -> pd.DataFrame:
    row = db.get_prediction(resources.engine, prediction_id)
    data = aws.get_bytes(resources.s3, resources.settings.bucket, row.result_key)
    return pd.read_csv(io.BytesIO(data), dtype={"customer_id": str})


def copied_versions(settings, source: str, name: str, copies: int) -> list[str]:
    """`copies` versions of model `name`, each a copy of the registered model `source` (e.g.
    models:/churn/1): several versions to monitor without training again."""
    from retainwise.adapters import mlflow_registry as registry

    mlflow_client = registry.client(settings)
    return [str(mlflow_client.copy_model_version(source, name).version) for _ in range(copies)]


def monitored_upload(
    engine,
    account: str,
    model: str,
    version: str,
    probabilities,
    completed_at,
    *,
    profile,
    column_psi: dict[str, float],
    churned=None,
) -> str:
    """A COMPLETED upload with its stored monitoring figures (the score-upload flow's
    `upload_figures`), and its outcomes when `churned` (0/1 per probability) is given."""
    import numpy as np
    import sqlalchemy as sa

    from models.scoring import risk_tiers
    from retainwise.adapters import monitoring, outcomes
    from retainwise.modelops.monitoring import ScoredUpload, upload_figures

    prediction_id = db.create_prediction(
        engine, account=account, model_name=model, input_key=f"uploads/{account}/in"
    )
    assert db.claim_prediction(engine, prediction_id, "run")
    assert db.finish_prediction(
        engine,
        prediction_id,
        "run",
        db.Status.COMPLETED,
        model_version=version,
        rows_scored=len(probabilities),
    )
    with engine.begin() as conn:
        conn.execute(
            sa.update(db.predictions)
            .where(db.predictions.c.id == prediction_id)
            .values(completed_at=completed_at)
        )
    p = np.asarray(probabilities, dtype=float)
    report = {
        "prediction_id": prediction_id,
        "model_name": model,
        "model_version": version,
        "rows_scored": len(p),
        "unknown_categories": {},
        "columns": {name: {"psi": psi} for name, psi in column_psi.items()},
    }
    upload = ScoredUpload.from_report(report)
    monitoring.record_upload(engine, *upload_figures(upload, p, account, profile))
    if churned is not None:
        ids = [f"c{i}" for i in range(len(p))]
        outcomes.replace_outcomes(
            engine,
            prediction_id,
            account,
            pd.DataFrame(
                {
                    "customer_id": ids,
                    "churned": churned,
                    "churn_probability": p,
                    "churn_risk": risk_tiers(p, profile.cutoffs),
                    "observed_at": pd.Series([pd.NaT] * len(p), dtype="datetime64[ns, UTC]"),
                }
            ),
        )
    return prediction_id
