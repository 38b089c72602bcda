"""`GET /uploads/{id}/actions`: the upload's customers in the order to contact them.

CSV by default (streamed from S3); Parquet with `?format=parquet` (typed as the list is
written); JSON with `Accept: application/json`, a page at a time (`offset`, `limit`), read from
the stored file only up to the page asked.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel

from retainwise.adapters import aws, db
from retainwise.entrypoints.api import FileFormat, Owned, errors, in_format
from retainwise.entrypoints.deps import Env
from retainwise.uploads import parquet
from retainwise.uploads.actions import TYPES, actions_key, read_page
from retainwise.uploads.blocks import BlockReader


class ActionsPage(BaseModel):
    actions: list[dict[str, Any]]
    next_offset: int | None


router = APIRouter(tags=["uploads"])


@router.get(
    "/uploads/{prediction_id}/actions",
    response_class=StreamingResponse,
    responses={
        **errors(404, 409),
        200: {
            "content": {
                "text/csv": {},
                parquet.MEDIA_TYPE: {},
                "application/json": {"schema": ActionsPage.model_json_schema()},
            }
        },
    },
)
def get_actions(
    request: Request,
    env: Env,
    row: Owned,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 50,
    file_format: FileFormat = "csv",
):
    """rank, customer_id, churn_probability, churn_risk, previous_probability, risk_change,
    reason_1..3 (and value_at_risk when the account names a value column), rank 1 first."""
    key = actions_key(row.account, row.id)
    if row.status is not db.Status.COMPLETED or not aws.object_exists(
        env.s3, env.settings.bucket, key
    ):
        raise HTTPException(409, f"upload {row.id} is {row.status}; it has no actions list")
    blocks = aws.iter_blocks(env.s3, env.settings.bucket, key)
    if file_format == "parquet" or "application/json" not in request.headers.get("accept", ""):
        return in_format(blocks, "text/csv", file_format, TYPES)
    rows, after = read_page(BlockReader(blocks), offset, limit)
    return JSONResponse(ActionsPage(actions=rows, next_offset=after).model_dump(mode="json"))
