"""One pipeline for a file read whole: read -> validate -> score -> spreadsheet-safe CSV bytes.

`retainwise score`, the score-upload flow (files under the chunked threshold) and the tests all
call `score_file`, so what a customer gets cannot depend on how the file was sent. Large files go
through the same reader, validator, model and writer chunk by chunk (uploads/streaming.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from models.scoring import score_frame
from retainwise.uploads.output import neutralise_results, neutralise_text_columns, to_csv_bytes
from retainwise.uploads.reading import Limits, read_upload
from retainwise.uploads.validation import ValidatedUpload, validate_upload


@dataclass
class ScoredFile:
    upload: ValidatedUpload
    results: pd.DataFrame | None  # None when too many rows were rejected (upload.failure says so)
    results_csv: bytes | None
    rejects_csv: bytes


def score_file(data: bytes, model, limits: Limits, max_rejected_share: float,
               reasons: bool = False) -> ScoredFile:
    """`model` has .pipeline and .profile (a registry LoadedModel or a freshly TrainedModel).

    File-level faults raise UploadRejected; too many bad rows leave results None.
    """
    upload = validate_upload(read_upload(data, limits=limits), model.profile, max_rejected_share)
    results = None if upload.failure else score_frame(
        model.pipeline, model.profile, upload.accepted, upload.customer_ids, reasons=reasons)
    return ScoredFile(upload, results,
                      None if results is None else to_csv_bytes(neutralise_results(results)),
                      to_csv_bytes(neutralise_text_columns(upload.rejects)))
