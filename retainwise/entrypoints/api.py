"""The HTTP API for customers' integrations; app.py serves it beside the web app (web.py).

Every call names its account by its API key (`Authorization: Bearer rw_<id>_<secret>`), never by
a parameter, and every read is scoped by that account: another account's upload id answers
exactly like an id that does not exist.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import pyarrow as pa
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from retainwise.adapters import db
from retainwise.config.errors import UploadRejected
from retainwise.entrypoints import service
from retainwise.entrypoints.deps import CurrentAccount, Env
from retainwise.entrypoints.intake import receive_upload
from retainwise.entrypoints.limits import MAX_OFFSET
from retainwise.uploads import parquet


class Problem(BaseModel):
    detail: str


class Accepted(BaseModel):
    prediction_id: str
    status: str


class Upload(BaseModel):
    id: str
    model_name: str
    model_version: str | None
    status: str
    original_filename: str | None
    rows_total: int | None
    rows_scored: int | None
    rows_rejected: int | None
    error: str | None
    created_at: datetime
    completed_at: datetime | None


class UploadPage(BaseModel):
    uploads: list[Upload]
    next_offset: int | None


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Every keyed route may answer 401 (the key) and 429 (the key's request rate)."""
    return {code: {"model": Problem} for code in (401, 429, *codes)}


def public(row: db.Prediction) -> Upload:
    """The customer's view of a row; SQLite's naive datetimes are the UTC they were written in."""
    completed = row.completed_at and _utc(row.completed_at)
    utc = dataclasses.replace(row, created_at=_utc(row.created_at), completed_at=completed)
    return Upload.model_validate(utc, from_attributes=True)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def owned_upload(prediction_id: str, account: CurrentAccount, env: Env) -> db.Prediction:
    """The account's upload of that id; another account's answers like a missing one (404)."""
    row = db.get_prediction_of(env.engine, account.name, prediction_id)
    if row is None:
        raise HTTPException(404, f"no upload with id {prediction_id}")
    return row


Owned = Annotated[db.Prediction, Depends(owned_upload)]
router = APIRouter(tags=["uploads"])


def stream_file(
    env: Env, row: db.Prediction, which: str, media_type: str, file_format: str = "csv"
) -> Response:
    """The stored file as it is, or (results and rejects) in the format asked."""
    try:
        blocks = service.open_output(env, row, which)
    except service.NotReady as exc:
        raise HTTPException(409, str(exc)) from None
    return in_format(blocks, media_type, file_format, parquet.RESULT_TYPES)


# ?format=parquet: results, rejects and the actions list as Parquet (typed where `types` name a
# column, text otherwise); CSV stays the default
FileFormat = Annotated[Literal["csv", "parquet"], Query(alias="format")]


def in_format(
    blocks: Iterable[bytes], media_type: str, file_format: str, types: Mapping[str, pa.DataType]
) -> Response:
    """A stored CSV file streamed as it is, or converted to Parquet whole on ?format=parquet."""
    if file_format == "parquet":
        data = parquet.csv_to_parquet(b"".join(blocks), dict(types))
        return Response(data, media_type=parquet.MEDIA_TYPE)
    return StreamingResponse(blocks, media_type=media_type)


BINARY = {"schema": {"type": "string", "format": "binary"}}
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "text/csv": BINARY,
            "application/octet-stream": BINARY,
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["file"],
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "carry": {"type": "string", "maxLength": 2100},
                    },
                }
            },
        },
    }
}
CSV_FILE = {**errors(404, 409), 200: {"content": {"text/csv": {}, parquet.MEDIA_TYPE: {}}}}


@router.post(
    "/uploads",
    status_code=202,
    response_model=Accepted,
    responses=errors(400, 411, 413, 429),
    openapi_extra=UPLOAD_BODY,
)
async def create_upload(
    request: Request,
    env: Env,
    account: CurrentAccount,
    model: Annotated[str | None, Query(max_length=255)] = None,
    carry: Annotated[str | None, Query(max_length=2100)] = None,
) -> Accepted:
    """Upload a file to score: the raw body (name it with `X-Filename`) or a form's `file`;
    `model` defaults to churn (or the account's first model). `carry` (comma-separated, up to
    20; also a form field) names input columns copied into the results after the scored ones,
    in the file's order; without it the account's choice holds."""
    chosen = model or account.default_model(env.settings.default_model)
    prediction_id = await receive_upload(env, request, account, chosen, carry)
    return Accepted(prediction_id=prediction_id, status=db.Status.PENDING.value)


@router.get("/uploads", response_model=UploadPage, responses=errors())
def list_uploads(
    env: Env,
    account: CurrentAccount,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> UploadPage:
    """This account's uploads, newest first."""
    rows = db.list_predictions(env.engine, account.name, limit + 1, offset)
    return UploadPage(
        uploads=[public(r) for r in rows[:limit]],
        next_offset=offset + limit if len(rows) > limit else None,
    )


@router.get("/uploads/{prediction_id}", response_model=Upload, responses=errors(404))
def get_upload(row: Owned) -> Upload:
    return public(row)


@router.get(
    "/uploads/{prediction_id}/results", response_class=StreamingResponse, responses=CSV_FILE
)
def get_results(env: Env, row: Owned, file_format: FileFormat = "csv"):
    """customer_id, churn_probability, churn_risk, predicted_churn per scored row."""
    return stream_file(env, row, "results", "text/csv", file_format)


@router.get(
    "/uploads/{prediction_id}/rejects", response_class=StreamingResponse, responses=CSV_FILE
)
def get_rejects(env: Env, row: Owned, file_format: FileFormat = "csv"):
    """Every rejected row as uploaded, with its row number and reason."""
    return stream_file(env, row, "rejects", "text/csv", file_format)


@router.get(
    "/uploads/{prediction_id}/report",
    response_class=StreamingResponse,
    responses={**errors(404, 409), 200: {"content": {"text/html": {}, "application/json": {}}}},
)
def get_report(request: Request, env: Env, row: Owned):
    """The data-quality report: HTML, or JSON with `Accept: application/json`."""
    if "application/json" in request.headers.get("accept", ""):
        return stream_file(env, row, "report.json", "application/json")
    return stream_file(env, row, "report", "text/html; charset=utf-8")


@router.post(
    "/uploads/{prediction_id}/outcomes",
    responses=errors(400, 404, 409, 413),
    openapi_extra={"requestBody": {"required": True, "content": {"text/csv": BINARY}}},
)
async def upload_outcomes(request: Request, env: Env, row: Owned) -> dict[str, Any]:
    """What really happened: a CSV of `customer_id, churned` (1/0, yes/no) and optional
    `observed_at`, joined to this upload's scores; replaces an earlier file. The answer counts
    matched, unmatched, invalid and duplicate rows."""
    limit, data = env.settings.max_outcomes_bytes, bytearray()  # BodyLimits cuts it there too
    async for chunk in request.stream():
        data += chunk
        if len(data) > limit:
            raise HTTPException(413, f"the outcomes file is larger than {limit} bytes")
    try:
        return await run_in_threadpool(
            service.record_outcomes, env, row.id, row.account, bytes(data)
        )
    except UploadRejected as exc:
        raise HTTPException(400, str(exc)) from None
    except LookupError as exc:  # owned, so: not COMPLETED
        raise HTTPException(409, str(exc)) from None
