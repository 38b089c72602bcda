"""Moving upload files and results between S3 and DataFrames."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from retainwise.adapters import aws
from retainwise.config.errors import UploadRejected
from retainwise.config.settings import Settings
from retainwise.uploads import pipeline, streaming
from retainwise.uploads.compression import GZIP_MAGIC, expanded_head
from retainwise.uploads.output import ResultKeys, result_keys
from retainwise.uploads.reading import Limits
from retainwise.uploads.report import build_report, render_html, report_from_counts
from tasks.retry import io_task

stage_log = logging.getLogger(
    "retainwise.chunked"
)  # benchmarks read its stage_seconds (both paths)

__all__ = ["ResultKeys", "result_keys", "check_upload", "score_in_chunks", "score_whole_file"]


@io_task("check-upload")
def check_upload(s3, settings: Settings, key: str) -> tuple[int, bool]:
    """Refuse a file over the size limit; its (decompressed) size, and True if it is large enough
    to score in chunks.

    Both decisions go by the decompressed size: a gzip file is inflated once, as a stream and
    thrown away (about 1 s per 200 MB), so one that expands past the limit fails here, before
    anything is scored, and one that expands past the threshold is read in chunks.
    """
    size = aws.object_size(s3, settings.bucket, key)
    if size == 0:
        raise UploadRejected("the file is empty")
    head = aws.head_bytes(s3, settings.bucket, key)
    if head.startswith(GZIP_MAGIC):
        size, head = expanded_head(
            aws.iter_blocks(s3, settings.bucket, key),
            settings.max_upload_bytes,
            settings.max_upload_bytes,
        )
    large = streaming.is_large(size, settings.max_upload_bytes, settings.chunked_above_bytes)
    if large and not streaming.streamable(head) and not head.startswith(b"PK\x03\x04"):
        streaming.refuse_unstreamable(head)
    return size, large and streaming.streamable(head)


@io_task("score-upload-in-chunks")
def score_in_chunks(
    s3, settings: Settings, key: str, keys: ResultKeys, prediction_id: str, model
) -> tuple[dict, ResultKeys]:
    """Read, validate, score and write a large file chunk by chunk, in bounded memory; results
    and rejects go to S3 as multipart uploads while later chunks are scored (parts in flight
    beside the scoring). A failed upload's results are dropped; a retry rewrites the same keys."""
    bucket = settings.bucket
    with (
        aws.MultipartWriter(s3, bucket, keys.results, "text/csv") as results_object,
        aws.MultipartWriter(s3, bucket, keys.rejects, "text/csv") as rejects_object,
    ):
        counts, totals = streaming.score_stream(
            aws.iter_blocks(s3, bucket, key),
            model,
            settings.max_rejected_share,
            results_object,
            rejects_object,
            settings.chunk_bytes,
            settings.top_reasons,
            Limits.from_settings(settings),
        )
        started = time.perf_counter()
        if counts["failure"] is not None:
            results_object.abort()
        finish_objects([results_object, rejects_object])
        totals.timed("writing", started)
    stage_log.info(
        "scored %d rows in chunks; seconds per stage %s",
        totals.rows_total,
        dict(totals.seconds),
        extra={"stage_seconds": dict(totals.seconds)},
    )
    report = report_from_counts(counts, model, prediction_id)
    stored = put_report(s3, bucket, keys, report, with_results=counts["failure"] is None)
    return stored, keys


def finish_objects(writers: list) -> None:
    """Complete the multipart uploads not aborted, at once (each sends its last part)."""
    open_writers = [w for w in writers if not w.closed]
    with ThreadPoolExecutor(max(1, len(open_writers)), thread_name_prefix="s3-complete") as pool:
        done = [pool.submit(w.complete) for w in open_writers]
    for finished in done:
        finished.result()


@io_task("score-whole-file")
def score_whole_file(
    s3, settings: Settings, key: str, keys: ResultKeys, prediction_id: str, model
) -> tuple[dict, ResultKeys]:
    """Files under the chunked threshold: the one pipeline (read, validate, score, neutralised
    CSV) on the whole object; results (unless the upload failed), rejects and the report to S3,
    the four puts at once."""
    scored = pipeline.score_file(
        aws.get_bytes(s3, settings.bucket, key),
        model,
        Limits.from_settings(settings),
        settings.max_rejected_share,
        settings.top_reasons,
    )
    report = build_report(scored.upload, scored.results, model, prediction_id)
    csv_files = [(keys.rejects, scored.rejects_csv, "text/csv")]
    if scored.results_csv is not None:
        csv_files.append((keys.results, scored.results_csv, "text/csv"))
    stored = put_report(
        s3, settings.bucket, keys, report, scored.results_csv is not None, also=csv_files
    )
    stage_log.info(
        "scored %d rows whole; seconds per stage %s",
        scored.upload.rows_total,
        scored.seconds,
        extra={"stage_seconds": scored.seconds},
    )
    log_stages(scored, model, f"s3://{settings.bucket}/{keys.results}")
    return stored, keys


def log_stages(scored, model, results_at: str) -> None:
    """One INFO line per stage on the run's page in the Prefect UI (rows, seconds, where to)."""
    from prefect import get_run_logger

    logger, seconds = get_run_logger(), scored.seconds
    upload = scored.upload
    logger.info("reading: %d rows in %.2f s", upload.rows_total, seconds.get("reading", 0.0))
    logger.info(
        "validating: %d rows accepted, %d rejected in %.2f s",
        len(upload.accepted),
        upload.rows_rejected,
        seconds.get("validating", 0.0),
    )
    if scored.results is not None:
        logger.info(
            "scoring: %d rows with %s version %s (%s) in %.2f s",
            len(scored.results),
            model.name,
            model.version,
            "compiled trees" if getattr(model, "compiled", None) else "scikit-learn",
            seconds.get("scoring", 0.0),
        )
    logger.info(
        "writing: results to %s, rejects and report beside them; CSV in %.2f s",
        results_at if scored.results is not None else "(none: upload failed)",
        seconds.get("writing", 0.0),
    )


def put_report(
    s3,
    bucket: str,
    keys: ResultKeys,
    report: dict,
    with_results: bool,
    also: Sequence[tuple[str, bytes, str]] = (),
) -> dict:
    """The JSON and HTML report, naming the files beside them, sent to S3 at once with the
    objects in `also` ((key, body, content type)); returns the stored report."""
    report = {
        **report,
        "files": {
            "results": keys.results if with_results else None,
            "rejects": keys.rejects,
            "report_html": keys.report_html,
        },
    }
    aws.put_objects(
        s3,
        bucket,
        [
            *also,
            (keys.report, json.dumps(report, indent=2, default=str).encode(), "application/json"),
            (keys.report_html, render_html(report).encode("utf-8"), "text/html; charset=utf-8"),
        ],
    )
    return report
