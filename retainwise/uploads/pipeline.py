"""One pipeline for a file read whole: read -> validate -> score -> spreadsheet-safe CSV bytes.

`retainwise score`, the score-upload flow (files under the chunked threshold) and the tests all
call `score_file`, so what a customer gets cannot depend on how the file was sent. Large files go
through the same reader, validator, model and writer chunk by chunk (uploads/streaming.py).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import pandas as pd

from models.scoring import ScoringModel, score_frame
from retainwise.uploads import carry
from retainwise.uploads.output import neutralise_results, neutralise_text_columns, to_csv_bytes
from retainwise.uploads.policy import ScoringPolicy
from retainwise.uploads.reading import read_upload
from retainwise.uploads.validation import ValidatedUpload, validate_upload


@dataclass
class ScoredFile:
    upload: ValidatedUpload
    results: pd.DataFrame | None  # None when too many rows were rejected (upload.failure says so)
    results_csv: bytes | None
    rejects_csv: bytes
    seconds: dict[str, float] = field(default_factory=dict)  # per stage, as the chunked path logs


def score_file(data: bytes, model: ScoringModel, policy: ScoringPolicy) -> ScoredFile:
    """File-level faults raise UploadRejected; too many bad rows leave results None."""
    marks = [time.perf_counter()]
    table = read_upload(data, limits=policy.limits)
    carried = carry.resolve(table.frame.columns, policy.carry)  # a missing one fails it here
    marks.append(time.perf_counter())
    upload = validate_upload(table, model.profile, policy.max_rejected_share, policy.value_column)
    marks.append(time.perf_counter())
    results = (
        None
        if upload.failure
        else score_frame(
            model.scorer,
            model.profile,
            upload.accepted,
            upload.customer_ids,
            reasons=policy.reasons,
        )
    )
    marks.append(time.perf_counter())
    results_csv = (
        None
        if results is None
        else to_csv_bytes(
            carry.with_carried(
                neutralise_results(results),
                carry.cells(table.frame, upload.accepted.index, carried),
            )
        )
    )
    rejects_csv = to_csv_bytes(neutralise_text_columns(upload.rejects))
    marks.append(time.perf_counter())
    stages = ("reading", "validating", "scoring", "writing")
    return ScoredFile(
        upload,
        results,
        results_csv,
        rejects_csv,
        {stage: marks[i + 1] - marks[i] for i, stage in enumerate(stages)},
    )
