"""The HTTP API for customers' integrations; the web app (web.py) is served by the same app.

Every call names its account by its API key (`Authorization: Bearer rw_<id>_<secret>`), never by
a parameter, and every read is scoped by that account: another account's upload id answers
exactly like an id that does not exist.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, Security
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from retainwise.adapters import accounts, aws, db
from retainwise.adapters.resources import Resources
from retainwise.config.errors import UploadRejected
from retainwise.entrypoints import service

API_KEY = HTTPBearer(
    auto_error=False,
    scheme_name="apiKey",
    description="An API key from your operator: `rw_<key id>_<secret>`.",
)
UNAUTHORIZED = "a valid API key is required: send Authorization: Bearer rw_<key id>_<secret>"
RETRY_AFTER_SECONDS = 30
READ_BLOCK = 2**20


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
    return {code: {"model": Problem} for code in (401, *codes)}


def public(row: dict[str, Any]) -> Upload:
    """The customer's view of a row; SQLite's naive datetimes are the UTC they were written in."""
    return Upload(**{name: _utc(row[name]) for name in Upload.model_fields})


def _utc(value: Any) -> Any:
    naive = isinstance(value, datetime) and value.tzinfo is None
    return value.replace(tzinfo=UTC) if naive else value


class UploadRefused(HTTPException):
    """Refused before a byte is stored: too large, no length, over the account's cap, bad model."""


def account_dependency(resources: Resources):
    """The authenticated account, or 401 with one message for every reason a key fails."""

    def current_account(
        credentials: HTTPAuthorizationCredentials | None = Security(API_KEY),
    ) -> dict[str, Any]:
        account = (
            accounts.authenticate(resources.engine, credentials.credentials)
            if credentials
            else None
        )
        if account is None:
            raise HTTPException(401, UNAUTHORIZED, headers={"WWW-Authenticate": "Bearer"})
        return account

    return current_account


def check_upload_allowed(
    resources: Resources, account: dict[str, Any], model: str, length: int | None
) -> None:
    """What is decided before reading the body (blocking: call it off the event loop)."""
    limit = resources.settings.max_upload_bytes
    if length is None:
        raise UploadRefused(411, "send a Content-Length header with the file")
    if length > limit:
        raise UploadRefused(413, f"the file is larger than {limit // 1_000_000} MB; split it")
    allowed = accounts.models_allowed(account)
    if model not in allowed:
        raise UploadRefused(
            400, f"model {model!r} is not enabled for this account; use one of {', '.join(allowed)}"
        )
    cap = account.get("max_active_uploads") or resources.settings.max_active_uploads
    if db.count_active(resources.engine, account["name"]) >= cap:
        raise UploadRefused(
            429,
            f"{cap} uploads of this account are waiting or running; retry when one finishes",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


async def store_stream(resources: Resources, key: str, chunks: AsyncIterator[bytes]) -> int:
    """The body to S3 as a multipart upload, part by part, counting bytes as they arrive (a
    client may send more than its Content-Length said); returns the size."""
    limit = resources.settings.max_upload_bytes
    writer = await run_in_threadpool(
        aws.MultipartWriter, resources.s3, resources.settings.bucket, key
    )
    part, size = bytearray(), 0
    try:
        async for chunk in chunks:
            size += len(chunk)
            if size > limit:
                raise UploadRefused(413, f"the file is larger than {limit // 1_000_000} MB")
            part += chunk
            if len(part) >= writer.PART_BYTES:
                await run_in_threadpool(writer.write_part, bytes(part))
                part.clear()
        if part:
            await run_in_threadpool(writer.write_part, bytes(part))
        await run_in_threadpool(writer.complete)
    except BaseException:
        await run_in_threadpool(writer.abort)
        raise
    return size


async def file_chunks(file: UploadFile) -> AsyncGenerator[bytes]:
    while chunk := await file.read(READ_BLOCK):
        yield chunk


async def receive_upload(
    resources: Resources, request: Request, account: dict[str, Any], model: str
) -> str:
    """Checks, then the file (raw body, or the `file` field of a multipart form) streamed to S3,
    then the row and the message; returns the prediction id. Shared by the API and the web app."""
    length = request.headers.get("content-length")
    await run_in_threadpool(
        check_upload_allowed,
        resources,
        account,
        model,
        int(length) if length and length.isdigit() else None,
    )
    filename, chunks = request.headers.get("x-filename"), request.stream()
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await request.form(max_files=1, max_fields=5)
        file = form.get("file")
        if not isinstance(file, UploadFile):
            raise UploadRefused(400, "the form has no file field named 'file'")
        filename, chunks = file.filename, file_chunks(file)
    prediction_id, key = service.new_upload(account["name"])
    await store_stream(resources, key, chunks)
    await run_in_threadpool(
        service.enqueue_upload,
        resources,
        prediction_id,
        key,
        filename=(filename or "")[:255] or None,
        account=account["name"],
        model_name=model,
    )
    return prediction_id


def api_router(resources: Resources) -> APIRouter:
    router = APIRouter(tags=["uploads"])
    current_account = account_dependency(resources)

    def owned(prediction_id: str, account: dict[str, Any]) -> dict[str, Any]:
        row = db.get_prediction_of(resources.engine, account["name"], prediction_id)
        if row is None:
            raise HTTPException(404, f"no upload with id {prediction_id}")
        return row

    def stream_file(
        prediction_id: str, account: dict[str, Any], which: str, media_type: str
    ) -> StreamingResponse:
        row = owned(prediction_id, account)
        try:
            blocks = service.open_output(resources, row, which)
        except service.NotReady as exc:
            raise HTTPException(409, str(exc)) from None
        return StreamingResponse(blocks, media_type=media_type)

    @router.post(
        "/uploads",
        status_code=202,
        response_model=Accepted,
        responses=errors(400, 411, 413, 429),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "text/csv": {"schema": {"type": "string", "format": "binary"}},
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
                    "multipart/form-data": {
                        "schema": {
                            "type": "object",
                            "required": ["file"],
                            "properties": {"file": {"type": "string", "format": "binary"}},
                        }
                    },
                },
            }
        },
    )
    async def create_upload(
        request: Request,
        model: str | None = Query(None, max_length=255),
        account: dict = Depends(current_account),
    ) -> Accepted:
        """Upload a file to score: the raw body (name it with `X-Filename`) or a form's `file`;
        `model` defaults to churn (or the account's first model)."""
        prediction_id = await receive_upload(
            resources,
            request,
            account,
            model or (accounts.default_model(account, resources.settings.default_model)),
        )
        return Accepted(prediction_id=prediction_id, status=db.Status.PENDING.value)

    @router.get("/uploads", response_model=UploadPage, responses=errors())
    def list_uploads(
        limit: int = Query(50, ge=1, le=200),
        offset: int = Query(0, ge=0),
        account: dict = Depends(current_account),
    ) -> UploadPage:
        """This account's uploads, newest first."""
        rows = db.list_predictions(resources.engine, account["name"], limit + 1, offset)
        return UploadPage(
            uploads=[public(r) for r in rows[:limit]],
            next_offset=offset + limit if len(rows) > limit else None,
        )

    @router.get("/uploads/{prediction_id}", response_model=Upload, responses=errors(404))
    def get_upload(prediction_id: str, account: dict = Depends(current_account)) -> Upload:
        return public(owned(prediction_id, account))

    @router.get(
        "/uploads/{prediction_id}/results",
        response_class=StreamingResponse,
        responses={**errors(404, 409), 200: {"content": {"text/csv": {}}}},
    )
    def get_results(prediction_id: str, account: dict = Depends(current_account)):
        """customer_id, churn_probability, churn_risk, predicted_churn per scored row."""
        return stream_file(prediction_id, account, "results", "text/csv")

    @router.get(
        "/uploads/{prediction_id}/rejects",
        response_class=StreamingResponse,
        responses={**errors(404, 409), 200: {"content": {"text/csv": {}}}},
    )
    def get_rejects(prediction_id: str, account: dict = Depends(current_account)):
        """Every rejected row as uploaded, with its row number and reason."""
        return stream_file(prediction_id, account, "rejects", "text/csv")

    @router.get(
        "/uploads/{prediction_id}/report",
        response_class=StreamingResponse,
        responses={**errors(404, 409), 200: {"content": {"text/html": {}, "application/json": {}}}},
    )
    def get_report(prediction_id: str, request: Request, account: dict = Depends(current_account)):
        """The data-quality report: HTML, or JSON with `Accept: application/json`."""
        if "application/json" in request.headers.get("accept", ""):
            return stream_file(prediction_id, account, "report.json", "application/json")
        return stream_file(prediction_id, account, "report", "text/html; charset=utf-8")

    @router.post(
        "/uploads/{prediction_id}/outcomes",
        responses=errors(400, 404, 409, 413),
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {"text/csv": {"schema": {"type": "string", "format": "binary"}}},
            }
        },
    )
    async def upload_outcomes(
        prediction_id: str, request: Request, account: dict = Depends(current_account)
    ) -> dict[str, Any]:
        """What really happened: a CSV of `customer_id, churned` (1/0, yes/no) and optional
        `observed_at`, joined to this upload's scores; replaces an earlier file. The answer counts
        matched, unmatched, invalid and duplicate rows."""
        owned(prediction_id, account)
        limit, data = resources.settings.max_upload_bytes, bytearray()
        async for chunk in request.stream():
            data += chunk
            if len(data) > limit:
                raise HTTPException(413, f"the outcomes file is larger than {limit} bytes")
        try:
            return await run_in_threadpool(
                service.record_outcomes, resources, prediction_id, account["name"], bytes(data)
            )
        except UploadRejected as exc:
            raise HTTPException(400, str(exc)) from None
        except LookupError as exc:  # owned above, so: not COMPLETED
            raise HTTPException(409, str(exc)) from None

    return router


def create_app(resources: Resources) -> FastAPI:
    from retainwise.entrypoints import web

    app = FastAPI(
        title="RetainWise",
        version="1",
        description="Upload customer lists, get churn scores back. Authenticate with "
        "`Authorization: Bearer <API key>`.",
    )
    app.include_router(api_router(resources))
    web.mount(app, resources)
    return app
