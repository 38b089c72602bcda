"""The score-upload flow's tasks around the one scoring function (uploads.scoring.score_object):
an S3 object in, results, rejects and report out to S3.

Retries wrap I/O only: routing an upload (a HEAD and a ranged GET) and the final write. Reading,
validating and scoring run once per run; botocore retries each S3 request itself.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from models.scoring import NamedModel
from retainwise.adapters import aws
from retainwise.uploads import halves
from retainwise.uploads.output import ResultKeys, result_keys
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.scoring import (
    Discard,
    Output,
    Route,
    ScoredObject,
    Stream,
    plan,
    score_object,
)
from tasks.history import CustomerHistory
from tasks.retry import cpu_task, io_task

stage_log = logging.getLogger(
    "retainwise.chunked"
)  # benchmarks read its stage_seconds (both paths)

__all__ = ["ResultKeys", "result_keys", "check_upload", "score_in_chunks", "score_whole_file"]

CONTENT_TYPES = {
    Output.RESULTS: "text/csv",
    Output.REJECTS: "text/csv",
    Output.REPORT: "application/json",
    Output.REPORT_HTML: "text/html; charset=utf-8",
    Output.ACTIONS: "text/csv",
}


@dataclass(frozen=True)
class S3Sinks:
    """Each output to its key in the bucket; outputs without a key are not kept. Whole files
    are written by a retried task, so a failed final write is tried again without re-scoring."""

    s3: object
    bucket: str
    keys: Mapping[Output, str]
    # False inside a small upload's one task run, whose own retries cover the write
    write_as_task: bool = True

    @classmethod
    def for_upload(
        cls, s3: object, bucket: str, keys: ResultKeys, write_as_task: bool = True
    ) -> S3Sinks:
        return cls(
            s3,
            bucket,
            {
                Output.RESULTS: keys.results,
                Output.REJECTS: keys.rejects,
                Output.REPORT: keys.report,
                Output.REPORT_HTML: keys.report_html,
                Output.ACTIONS: keys.actions,
            },
            write_as_task,
        )

    def location(self, output: Output) -> str | None:
        return self.keys.get(output)

    def put(self, files: Mapping[Output, bytes]) -> None:
        objects = [
            (self.keys[output], body, CONTENT_TYPES[output])
            for output, body in files.items()
            if output in self.keys
        ]
        if objects:
            write = write_objects if self.write_as_task else write_objects.fn
            write(self.s3, self.bucket, objects)

    def open(self, output: Output) -> Stream:
        key = self.keys.get(output)
        if key is None:
            return Discard()
        return aws.MultipartWriter(self.s3, self.bucket, key, CONTENT_TYPES[output])


@io_task("write-results")
def write_objects(s3: object, bucket: str, objects: list[tuple[str, bytes, str]]) -> None:
    """The last write of a run, at once; retried on its own when S3 fails it."""
    aws.put_objects(s3, bucket, objects)


@io_task("check-upload")
def check_upload(source: aws.S3Object, policy: ScoringPolicy) -> Route:
    """Refuse a file that is empty, over the size limit or unstreamable; route the rest."""
    return plan(source, policy)


def score_s3_object(
    source: aws.S3Object,
    model: NamedModel,
    policy: ScoringPolicy,
    sinks: S3Sinks,
    prediction_id: str,
    route: Route,
    history: CustomerHistory | None = None,
) -> ScoredObject:
    """Read, validate, score, write: run once (a failed final write retries on its own). A large
    whole file may be scored in two halves, the second in this process's warm helper."""
    if history is not None:
        history.start()
    helper = None if route.chunked else halves.helper_of_process()
    scored = score_object(source, model, policy, sinks, prediction_id, route, history, helper)
    if history is not None and scored.report["error"] is not None:
        history.forget()
    return logged(scored, model, sinks)


# one function, two names in the Prefect UI: which path a run took shows at a glance
score_whole_file = cpu_task("score-whole-file")(score_s3_object)
score_in_chunks = cpu_task("score-upload-in-chunks")(score_s3_object)


def logged(scored: ScoredObject, model: NamedModel, sinks: S3Sinks) -> ScoredObject:
    """The stage timings on `retainwise.chunked` (benchmarks) and on the run's page."""
    report = scored.report
    stage_log.info(
        "scored %d rows %s; seconds per stage %s",
        report["rows_total"],
        "in chunks" if scored.chunked else "whole",
        scored.seconds,
        extra={"stage_seconds": scored.seconds},
    )
    log_stages(scored, model, f"s3://{sinks.bucket}/{sinks.location(Output.RESULTS)}")
    return scored


def log_stages(scored: ScoredObject, model: NamedModel, results_at: str) -> None:
    """One INFO line per stage on the run's page in the Prefect UI (rows, seconds, where to)."""
    from prefect import get_run_logger

    logger, seconds, report = get_run_logger(), scored.seconds, scored.report
    failed = report["error"] is not None
    logger.info("reading: %d rows in %.2f s", report["rows_total"], seconds.get("reading", 0.0))
    logger.info(
        "validating: %d rows accepted, %d rejected in %.2f s",
        report["rows_total"] - report["rows_rejected"],
        report["rows_rejected"],
        seconds.get("validating", 0.0),
    )
    if not failed:
        logger.info(
            "scoring: %d rows with %s version %s (%s) in %.2f s",
            report["rows_scored"],
            model.name,
            model.version,
            "compiled trees" if getattr(model, "compiled", None) else "scikit-learn",
            seconds.get("scoring", 0.0),
        )
    logger.info(
        "writing: results to %s, rejects and report beside them; CSV in %.2f s",
        "(none: upload failed)" if failed else results_at,
        seconds.get("writing", 0.0),
    )
