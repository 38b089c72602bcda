"""The flow's scoring tasks retry the final write alone: a failed S3 write is not a re-score."""

from __future__ import annotations

import pytest
from botocore.exceptions import EndpointConnectionError

from models.training import train
from retainwise.adapters import aws
from retainwise.adapters.mlflow_registry import LoadedModel
from retainwise.local.sample import synthetic_customers
from retainwise.uploads import pipeline
from retainwise.uploads.output import result_keys
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.scoring import Route
from tests.helpers import customers_csv

pytestmark = pytest.mark.usefixtures("prefect_api")


class FailingPuts:
    """The real moto client, except that its first `failures` PutObject calls find no endpoint."""

    def __init__(self, s3, failures: int) -> None:
        self.s3, self.failures, self.puts = s3, failures, 0

    def put_object(self, **request):
        self.puts += 1
        if self.puts <= self.failures:
            raise EndpointConnectionError(endpoint_url="http://s3.invalid")
        return self.s3.put_object(**request)

    def __getattr__(self, name: str):
        return getattr(self.s3, name)


@pytest.fixture(scope="module")
def model() -> LoadedModel:
    trained = train(synthetic_customers(600, seed=3).astype(str), "Churn", "customer_id")
    return LoadedModel("churn", "1", trained.pipeline, trained.profile)


def test_a_failed_final_write_is_retried_without_scoring_again(resources, model, monkeypatch):
    from prefect import flow

    from tasks import uploads

    bucket, scorings = resources.settings.bucket, []
    real_score_frame = pipeline.score_frame

    def counted(*args, **kwargs):
        scorings.append(1)
        return real_score_frame(*args, **kwargs)

    monkeypatch.setattr(pipeline, "score_frame", counted)
    monkeypatch.setattr(
        uploads, "write_objects", uploads.write_objects.with_options(retry_delay_seconds=0)
    )
    aws.put_bytes(resources.s3, bucket, "uploads/acme/p1/input", customers_csv(50))
    # the five objects of the first write all fail: results, rejects, the actions list, the
    # JSON and the HTML report (the actions list goes with them, not as a multipart of its own)
    s3 = FailingPuts(resources.s3, failures=5)
    keys = result_keys("acme", "p1")

    @flow
    def score() -> dict:
        return uploads.score_whole_file(
            aws.S3Object(s3, bucket, "uploads/acme/p1/input"),
            model,
            ScoringPolicy(),
            uploads.S3Sinks.for_upload(s3, bucket, keys),
            "p1",
            Route(size=1, chunked=False),
        ).report

    report = score()
    assert report["rows_scored"] == 50
    assert len(scorings) == 1  # scored once, written twice
    assert s3.puts == 10
    assert aws.object_exists(resources.s3, bucket, keys.results)
    assert aws.object_exists(resources.s3, bucket, keys.actions)
