"""Moving upload files and results between S3 and DataFrames."""

from __future__ import annotations

import json
import logging
import tempfile
import time

import pandas as pd
from prefect import task
from prefect.cache_policies import NO_CACHE

from retainwise.adapters import aws

from retainwise.uploads import streaming
from retainwise.uploads.output import (ResultKeys, neutralise_results, neutralise_text_columns,
                               result_keys, to_csv_bytes)
from retainwise.uploads.reading import TextTable, read_upload as read_upload_bytes
from retainwise.uploads.report import render_html, report_from_counts
from retainwise.config.settings import Settings
from tasks.retry import IO_TASK, is_transient

stage_log = logging.getLogger("retainwise.chunked")  # benchmarks read its stage_seconds

__all__ = ["ResultKeys", "result_keys", "check_upload", "read_upload", "score_in_chunks",
           "write_results"]


@task(name="check-upload", cache_policy=NO_CACHE, retry_condition_fn=is_transient, **IO_TASK)
def check_upload(s3, settings: Settings, key: str) -> tuple[int, bool]:
    """Refuse a file over the size limit; its size, and True if it is large enough to score in
    chunks."""
    size = aws.object_size(s3, settings.bucket, key)
    large = streaming.is_large(size, settings.max_upload_bytes, settings.chunked_above_bytes)
    return size, large and streaming.streamable(aws.head_bytes(s3, settings.bucket, key))


@task(name="read-upload", cache_policy=NO_CACHE, retry_condition_fn=is_transient, **IO_TASK)
def read_upload(s3, bucket: str, key: str, max_bytes: int) -> TextTable:
    return read_upload_bytes(aws.get_bytes(s3, bucket, key), max_bytes)


@task(name="score-upload-in-chunks", cache_policy=NO_CACHE, retry_condition_fn=is_transient,
      **IO_TASK)
def score_in_chunks(s3, settings: Settings, key: str, prediction_id: str,
                    model) -> tuple[dict, ResultKeys]:
    """Read, validate, score and write a large file chunk by chunk, in bounded memory; a retry
    rewrites the same keys."""
    keys = result_keys(prediction_id)
    with tempfile.TemporaryFile() as results_file, tempfile.TemporaryFile() as rejects_file:
        counts, totals = streaming.score_stream(
            aws.iter_blocks(s3, settings.bucket, key), model, settings.max_rejected_share,
            results_file, rejects_file, settings.chunk_bytes, settings.top_reasons)
        started = time.perf_counter()
        aws.upload_file(s3, settings.bucket, keys.rejects, rejects_file)
        if counts["failure"] is None:
            aws.upload_file(s3, settings.bucket, keys.results, results_file)
        totals.timed("writing", started)
    stage_log.info("scored %d rows in chunks; seconds per stage %s", totals.rows_total,
                   dict(totals.seconds), extra={"stage_seconds": dict(totals.seconds)})
    report = report_from_counts(counts, model, prediction_id)
    stored = put_report(s3, settings.bucket, keys, report, with_results=counts["failure"] is None)
    return stored, keys


@task(name="write-results", cache_policy=NO_CACHE, retry_condition_fn=is_transient, **IO_TASK)
def write_results(s3, bucket: str, prediction_id: str, results: pd.DataFrame | None,
                  rejects: pd.DataFrame, report: dict) -> ResultKeys:
    """Results (unless the upload failed), rejects and the report, all spreadsheet-safe."""
    keys = result_keys(prediction_id)
    if results is not None:
        aws.put_bytes(s3, bucket, keys.results, to_csv_bytes(neutralise_results(results)))
    aws.put_bytes(s3, bucket, keys.rejects, to_csv_bytes(neutralise_text_columns(rejects)))
    put_report(s3, bucket, keys, report, with_results=results is not None)
    return keys


def put_report(s3, bucket: str, keys: ResultKeys, report: dict, with_results: bool) -> dict:
    """The JSON and HTML report, naming the files beside them; returns the stored report."""
    report = {**report, "files": {"results": keys.results if with_results else None,
                                  "rejects": keys.rejects, "report_html": keys.report_html}}
    aws.put_bytes(s3, bucket, keys.report, json.dumps(report, indent=2, default=str).encode(),
                  content_type="application/json")
    aws.put_bytes(s3, bucket, keys.report_html, render_html(report).encode("utf-8"),
                  content_type="text/html; charset=utf-8")
    return report
