"""Moving upload files and results between S3 and DataFrames."""

from __future__ import annotations

import json

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from retainwise import aws
from retainwise.errors import UploadRejected
from retainwise.output import (ResultKeys, neutralise_formulas, neutralise_text_columns,
                               result_keys, to_csv_bytes)
from retainwise.reading import TextTable, read_upload as read_upload_bytes
from retainwise.report import render_html
from tasks.retry import IO_TASK, is_transient

__all__ = ["ResultKeys", "result_keys", "read_upload", "write_results"]


@task(name="read-upload", cache_policy=NO_CACHE, retry_condition_fn=is_transient, **IO_TASK)
def read_upload(s3, bucket: str, key: str, max_bytes: int) -> TextTable:
    size = s3.head_object(Bucket=bucket, Key=key)["ContentLength"]
    if size > max_bytes:
        raise UploadRejected(f"the file is {size / 1e6:.0f} MB; the limit is {max_bytes / 1e6:.0f} MB")
    return read_upload_bytes(aws.get_bytes(s3, bucket, key), max_bytes)


@task(name="write-results", cache_policy=NO_CACHE, retry_condition_fn=is_transient, **IO_TASK)
def write_results(s3, bucket: str, prediction_id: str, results: pd.DataFrame | None,
                  rejects: pd.DataFrame, report: dict) -> ResultKeys:
    """Results (unless the upload failed), rejects and the report, all spreadsheet-safe."""
    keys = result_keys(prediction_id)
    if results is not None:
        text_columns = [c for c in ("customer_id", "top_reasons") if c in results.columns]
        safe_results = results.assign(**{c: neutralise_formulas(results[c]) for c in text_columns})
        aws.put_bytes(s3, bucket, keys.results, to_csv_bytes(safe_results))
    aws.put_bytes(s3, bucket, keys.rejects, to_csv_bytes(neutralise_text_columns(rejects)))
    report = {**report, "files": {"results": keys.results if results is not None else None,
                                  "rejects": keys.rejects, "report_html": keys.report_html}}
    aws.put_bytes(s3, bucket, keys.report, json.dumps(report, indent=2, default=str).encode(),
                  content_type="application/json")
    aws.put_bytes(s3, bucket, keys.report_html, render_html(report).encode("utf-8"),
                  content_type="text/html; charset=utf-8")
    return keys
