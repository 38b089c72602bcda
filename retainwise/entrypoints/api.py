"""The HTTP face of uploads: the same service calls as the CLI, for customers' integrations.

POST /uploads (raw file body) -> 202 {prediction_id}; GET /uploads/{id}; GET /uploads/{id}/results.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import Response

from retainwise.adapters import db

from retainwise.entrypoints import service
from retainwise.adapters.resources import Resources

PUBLIC_FIELDS = ("id", "account", "model_name", "model_version", "status", "rows_total",
                 "rows_scored", "rows_rejected", "error", "created_at", "completed_at")


def create_app(resources: Resources) -> FastAPI:
    app = FastAPI(title="RetainWise uploads")

    @app.post("/uploads", status_code=202)
    async def upload(request: Request, account: str | None = None,
                     model: str | None = None) -> dict[str, str]:
        data = await request.body()
        settings = resources.settings
        if len(data) > settings.max_upload_bytes:
            raise HTTPException(413, f"the file is larger than {settings.max_upload_bytes} bytes")
        prediction_id = service.submit_upload(
            resources, data, filename=request.headers.get("x-filename"),
            account=account or settings.default_account, model_name=model or settings.default_model)
        return {"prediction_id": prediction_id, "status": db.Status.PENDING.value}

    @app.get("/uploads/{prediction_id}")
    def status(prediction_id: str) -> dict[str, Any]:
        row = db.get_prediction(resources.engine, prediction_id)
        if row is None:
            raise HTTPException(404, f"no upload with id {prediction_id}")
        return {key: row[key] for key in PUBLIC_FIELDS}

    @app.get("/uploads/{prediction_id}/results")
    def results(prediction_id: str) -> Response:
        try:
            data = service.download_results(resources, prediction_id)
        except LookupError as exc:
            raise HTTPException(409 if "is " in str(exc) else 404, str(exc)) from None
        return Response(data, media_type="text/csv")

    return app
