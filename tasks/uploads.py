"""Moving upload files and results between S3 and DataFrames."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from retainwise import aws
from retainwise.errors import UploadRejected
from retainwise.output import neutralise_formulas, to_csv_bytes
from retainwise.reading import read_table
from tasks.retry import IO_TASK, is_transient


@dataclass(frozen=True)
class ResultKeys:
    results: str
    rejects: str
    report: str


def result_keys(prediction_id: str) -> ResultKeys:
    """Derived from the prediction id alone, so a rerun overwrites instead of duplicating."""
    prefix = f"results/{prediction_id}"
    return ResultKeys(f"{prefix}/results.csv", f"{prefix}/rejects.csv", f"{prefix}/report.json")


@task(name="read-upload", cache_policy=NO_CACHE, retry_condition_fn=is_transient, **IO_TASK)
def read_upload(s3, bucket: str, key: str, max_bytes: int) -> pd.DataFrame:
    size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    if size > max_bytes:
        raise UploadRejected(f"the file is {size / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    return read_table(aws.get_bytes(s3, bucket, key))


@task(name="write-results", cache_policy=NO_CACHE, retry_condition_fn=is_transient, **IO_TASK)
def write_results(s3, bucket: str, prediction_id: str, results: pd.DataFrame,
                  rejects: pd.DataFrame, report: dict) -> ResultKeys:
    keys = result_keys(prediction_id)
    text_columns = [c for c in ("customer_id", "top_reasons") if c in results.columns]
    safe_results = results.assign(**{c: neutralise_formulas(results[c]) for c in text_columns})
    safe_rejects = rejects.assign(customer_id=neutralise_formulas(rejects["customer_id"]))
    aws.put_bytes(s3, bucket, keys.results, to_csv_bytes(safe_results))
    aws.put_bytes(s3, bucket, keys.rejects, to_csv_bytes(safe_rejects))
    aws.put_bytes(s3, bucket, keys.report, json.dumps(report, indent=2).encode(),
                  content_type="application/json")
    return keys
