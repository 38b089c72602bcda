"""Receiving an upload over HTTP, shared by the API and the web app: the checks made before a
byte is stored, the body streamed to S3, then the row and the message."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from retainwise.adapters import aws, db
from retainwise.adapters.accounts import Account
from retainwise.adapters.resources import Resources
from retainwise.entrypoints import service
from retainwise.entrypoints.limits import FORM_PART_BYTES, upload_slot

READ_BLOCK = 2**20


class UploadRefused(HTTPException):
    """Refused before a byte is stored: too large, no length, over the account's cap, bad model."""


def check_upload_allowed(
    resources: Resources, account: Account, model: str, length: int | None
) -> None:
    """What is decided before reading the body (blocking: call it off the event loop)."""
    limit = resources.settings.max_upload_bytes
    if length is None:
        raise UploadRefused(411, "send a Content-Length header with the file")
    if length > limit:
        raise UploadRefused(413, f"the file is larger than {limit // 1_000_000} MB; split it")
    if model not in account.models:
        raise UploadRefused(
            400,
            f"model {model!r} is not enabled for this account; use one of "
            f"{', '.join(account.models)}",
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


async def file_chunks(file: UploadFile) -> AsyncIterator[bytes]:
    while chunk := await file.read(READ_BLOCK):
        yield chunk


def carried_columns(typed: str | None) -> tuple[str, ...]:
    """The `carry` field (comma-separated input columns to copy into the results), or 400."""
    try:
        return db.carry_names(typed or "")
    except db.CarryRefused as exc:
        raise UploadRefused(400, str(exc)) from None


async def receive_upload(
    resources: Resources, request: Request, account: Account, model: str, carry: str | None = None
) -> str:
    """Checks, then the file (raw body, or the `file` field of a multipart form) streamed to S3,
    then the row and the message; returns the prediction id. `carry` (or the form's field of
    that name) names input columns copied into the results; else the account's choice holds."""
    chosen = carried_columns(carry)
    length = request.headers.get("content-length")
    await run_in_threadpool(
        check_upload_allowed,
        resources,
        account,
        model,
        int(length) if length and length.isdigit() else None,
    )
    prediction_id, key = service.new_upload(account.name)
    cap = account.max_active_uploads or resources.settings.max_active_uploads
    async with upload_slot(resources.engine, account.name, prediction_id, cap):
        filename, form_carry = await store_body(resources, request, key)
        await run_in_threadpool(
            service.enqueue_upload,
            resources,
            prediction_id,
            key,
            filename=(filename or "")[:255] or None,
            account=account.name,
            model_name=model,
            carry=chosen or form_carry,
        )
    return prediction_id


async def store_body(
    resources: Resources, request: Request, key: str
) -> tuple[str | None, tuple[str, ...]]:
    """The raw body, or a multipart form's `file` (its form closed after), to S3; the file's
    name as the client gave it and the form's `carry` field (checked before the file is stored)."""
    if not request.headers.get("content-type", "").startswith("multipart/form-data"):
        await store_stream(resources, key, request.stream())
        return request.headers.get("x-filename"), ()
    async with request.form(max_files=1, max_fields=5, max_part_size=FORM_PART_BYTES) as form:
        file, typed = form.get("file"), form.get("carry")
        if not isinstance(file, UploadFile):
            raise UploadRefused(400, "the form has no file field named 'file'")
        carry = carried_columns(typed if isinstance(typed, str) else None)
        await store_stream(resources, key, file_chunks(file))
        return file.filename, carry
