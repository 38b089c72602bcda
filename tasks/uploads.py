"""Moving upload files and results between S3 and DataFrames."""

from __future__ import annotations

import json
import logging
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

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
           "score_whole_file", "write_results"]


@task(name="check-upload", cache_policy=NO_CACHE, retry_condition_fn=is_transient, **IO_TASK)
def check_upload(s3, settings: Settings, key: str) -> bool:
    """Refuse a file over the size limit; True if it is large enough to score in chunks."""
    size = aws.object_size(s3, settings.bucket, key)
    large = streaming.is_large(size, settings.max_upload_bytes, settings.chunked_above_bytes)
    return large and streaming.streamable(aws.head_bytes(s3, settings.bucket, key))


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


class StageClock:
    """Seconds per stage, each stage also logged as one INFO line for the run's page in the UI."""

    def __init__(self, logger) -> None:
        self.logger, self.seconds, self.started = logger, {}, time.perf_counter()

    def done(self, stage: str, message: str, *args) -> None:
        now = time.perf_counter()
        self.seconds[stage] = now - self.started
        self.logger.info(f"{stage}: {message} in %.2f s", *args, self.seconds[stage])
        self.started = now


@task(name="score-whole-file", cache_policy=NO_CACHE, retry_condition_fn=is_transient, **IO_TASK)
def score_whole_file(s3, settings: Settings, key: str, prediction_id: str,
                     model) -> tuple[dict, ResultKeys]:
    """Files up to 64 MiB: read, validate, score and write in one task run (a task run costs
    several API round trips, which is most of a small file's time); each stage logs a line."""
    from prefect import get_run_logger

    from models.scoring import score_frame
    from retainwise.uploads.report import build_report
    from retainwise.uploads.validation import validate_upload

    clock = StageClock(get_run_logger())
    data = aws.get_bytes(s3, settings.bucket, key)
    table = read_upload_bytes(data, settings.max_upload_bytes)
    clock.done("reading", "%d rows, %.1f MB from s3://%s/%s", len(table.frame), len(data) / 1e6,
               settings.bucket, key)
    upload = validate_upload(table, model.profile, settings.max_rejected_share)
    clock.done("validating", "%d rows accepted, %d rejected", len(upload.accepted),
               len(upload.rejects))
    results = None
    if not upload.failure:
        results = score_frame(model.scorer, model.profile, upload.accepted, upload.customer_ids,
                              reasons=settings.top_reasons)
        clock.done("scoring", "%d rows with %s version %s (%s)", len(results), model.name,
                   model.version, "compiled trees" if model.compiled is not None else "scikit-learn")
    report = build_report(upload, results, model, prediction_id)
    keys = write_results.fn(s3, settings.bucket, prediction_id, results, upload.rejects, report)
    clock.done("writing", "results to s3://%s/%s, rejects and report beside them",
               settings.bucket, keys.results if results is not None else keys.rejects)
    stage_log.debug("stage seconds", extra={"stage_seconds": dict(clock.seconds)})
    return report, keys


@task(name="write-results", cache_policy=NO_CACHE, retry_condition_fn=is_transient, **IO_TASK)
def write_results(s3, bucket: str, prediction_id: str, results: pd.DataFrame | None,
                  rejects: pd.DataFrame, report: dict) -> ResultKeys:
    """Results (unless the upload failed), rejects and the report, all spreadsheet-safe; the
    objects are sent to S3 at once (each put is a round trip)."""
    keys = result_keys(prediction_id)
    objects = [(keys.rejects, to_csv_bytes(neutralise_text_columns(rejects)), None)]
    if results is not None:
        objects.append((keys.results, to_csv_bytes(neutralise_results(results)), None))
    put_report(s3, bucket, keys, report, with_results=results is not None, also=objects)
    return keys


def put_report(s3, bucket: str, keys: ResultKeys, report: dict, with_results: bool,
               also: list[tuple[str, bytes, str | None]] = ()) -> dict:
    """The JSON and HTML report, naming the files beside them, sent in parallel with `also`
    ((key, body, content type) triples); returns the stored report."""
    report = {**report, "files": {"results": keys.results if with_results else None,
                                  "rejects": keys.rejects, "report_html": keys.report_html}}
    objects = [*also,
               (keys.report, json.dumps(report, indent=2, default=str).encode(),
                "application/json"),
               (keys.report_html, render_html(report).encode("utf-8"), "text/html; charset=utf-8")]
    with ThreadPoolExecutor(max_workers=len(objects), thread_name_prefix="s3-put") as pool:
        for put in [pool.submit(aws.put_bytes, s3, bucket, key, body,
                                **({"content_type": kind} if kind else {}))
                    for key, body, kind in objects]:
            put.result()
    return report
