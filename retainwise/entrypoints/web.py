"""The customers' web app, served by the API's FastAPI app under /app.

Sign in with an API key: the session cookie (signed by Starlette's SessionMiddleware, HttpOnly,
SameSite=Lax, Secure when `session_https_only`) holds the key's id, never the key, and every page
checks that the key and its account are still live. Every POST carries the session's CSRF token.
Pages are Jinja2 templates with autoescaping; charts are server-rendered SVG (charts.py).
"""

from __future__ import annotations

import hmac
import io
import json
import secrets
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware.sessions import SessionMiddleware

from models.reasons import format_value
from retainwise.adapters import accounts, admission, aws, customer_trends, customers, db
from retainwise.adapters.accounts import Account
from retainwise.adapters.resources import Resources
from retainwise.entrypoints import monitoring_page, service
from retainwise.entrypoints.api import public
from retainwise.entrypoints.charts import (
    Chart,
    TimePoint,
    Waterfall,
    bar_chart,
    largest_share,
    line_chart,
    reason_bars,
    waterfall,
)
from retainwise.entrypoints.deps import Env
from retainwise.entrypoints.headers import template_context
from retainwise.entrypoints.intake import receive_upload
from retainwise.entrypoints.limits import MAX_OFFSET, check_rate, small_form
from retainwise.uploads.actions import (
    REASONS,
    ActionsQuery,
    ActionsView,
    actions_key,
    read_view,
)
from retainwise.uploads.blocks import BlockReader
from retainwise.uploads.report import UploadReport

TEMPLATES = Jinja2Templates(
    directory=Path(__file__).with_name("templates"), context_processors=[template_context]
)
SESSION_COOKIE = "retainwise_session"
SESSION_SECONDS = 8 * 3600
REJECTS_SHOWN = 50
DASHBOARD_REPORTS = 12
TIER_CSS = {"HIGH": "high", "MEDIUM": "medium", "LOW": "low"}
DOWNLOADS = {
    "results": ("text/csv", "results.csv"),
    "rejects": ("text/csv", "rejects.csv"),
    "report": ("text/html; charset=utf-8", "report.html"),
}
NEXT_STEPS = {
    401: ("Sign in with your API key", "/app/signin"),
    403: ("Reload the page and try again", "/app"),
    404: ("Back to your uploads", "/app/uploads"),
    503: ("Back to the dashboard", "/app"),
}


class SignInRequired(Exception):
    """No live session: the page sends the browser to the sign-in form."""


def csrf_token(request: Request) -> str:
    return request.session.setdefault("csrf", secrets.token_urlsafe(32))


def check_csrf(request: Request, sent: object) -> None:
    """`sent` is a form field: a file posted under that name is refused like a wrong token."""
    expected = request.session.get("csrf")
    if not expected or not isinstance(sent, str) or not hmac.compare_digest(expected, sent):
        raise HTTPException(403, "This form has expired (its security token does not match).")


def render(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {"csrf": csrf_token(request), "account": request.session.get("account"), **context},
        status_code=status,
    )


def signed_in(request: Request, env: Env) -> Account:
    """The account of the session's key while the key and the account are live."""
    key_id = request.session.get("key_id")
    account = accounts.account_of_key(env.engine, key_id) if key_id else None
    ended = key_id and request.session.get("generation") != admission.session_version(
        env.engine, key_id
    )
    if account is None or ended or not key_id:
        request.session.pop("key_id", None)
        raise SignInRequired()
    check_rate(request, key_id)
    return account


SignedIn = Annotated[Account, Depends(signed_in)]
Offset = Annotated[int, Query(le=MAX_OFFSET)]  # negative reads as 0; a huge one is 422


def owned_upload(prediction_id: str, account: SignedIn, env: Env) -> db.Prediction:
    row = db.get_prediction_of(env.engine, account.name, prediction_id)
    if row is None:
        raise HTTPException(404, "There is no upload with this id in your account.")
    return row


Owned = Annotated[db.Prediction, Depends(owned_upload)]


def first_rejects(resources: Resources, row: db.Prediction) -> pd.DataFrame | None:
    """The first rejected rows, reading only the start of the file."""
    try:
        blocks = service.open_output(resources, row, "rejects")
    except service.NotReady:
        return None
    head = b""
    for block in blocks:
        head += block
        if head.count(b"\n") > REJECTS_SHOWN * 4:
            break
    blocks.close()
    frame = pd.read_csv(
        io.BytesIO(head), dtype=str, nrows=REJECTS_SHOWN, keep_default_na=False, on_bad_lines="skip"
    )
    return frame[[c for c in ("row_number", "reason") if c in frame.columns]]


def stored_report(resources: Resources, row: db.Prediction) -> UploadReport | None:
    try:
        return json.loads(b"".join(service.open_output(resources, row, "report.json")))
    except service.NotReady:
        return None


def upload_charts(report: UploadReport) -> list:
    tiers = [(tier, report["risk_counts"].get(tier, 0)) for tier in TIER_CSS]
    histogram = report.get("probability_histogram") or []
    bins = [(f"{100 * i // len(histogram)}%", n) for i, n in enumerate(histogram)]
    drift = sorted(
        (
            (name, psi)
            for name, column in report["columns"].items()
            if (psi := column.get("psi")) is not None
        ),
        key=lambda item: -item[1],
    )
    threshold = report["drift_threshold"]
    return [
        bar_chart("risk-tiers", "Customers by churn risk", tiers, css=TIER_CSS),
        bar_chart("probability", "Churn probability (customers from each % up)", bins),
        bar_chart(
            "drift",
            f"Drift per column (PSI; above {threshold} is an alert)",
            drift,
            horizontal=True,
            value_format="{:.3f}",
            threshold=threshold,
            css={name: "alert" for name, value in drift if value > threshold},
        ),
    ]


def dashboard_charts(resources: Resources, rows: list[db.Prediction], today: datetime) -> list:
    days = [(today - timedelta(days=n)).date() for n in range(13, -1, -1)]
    per_day = Counter(row.created_at.date() for row in rows)
    completed = [r for r in rows if r.status is db.Status.COMPLETED][:DASHBOARD_REPORTS]
    reports = [
        (r, rep)
        for r in reversed(completed)
        if (rep := stored_report(resources, r)) and rep["rows_scored"]
    ]
    high = [
        (f"{r.created_at:%d %b %H:%M}", rep["risk_counts"]["HIGH"] / rep["rows_scored"])
        for r, rep in reports
    ]
    drifted = Counter(name for _, rep in reports for name in rep["drifted_features"])
    return [
        bar_chart(
            "uploads-per-day",
            f"Uploads per day, the 14 days to {today:%d %b}",
            [(f"{day:%d}", per_day.get(day, 0)) for day in days],
        ),
        bar_chart(
            "high-share",
            "Share of HIGH risk per upload",
            high,
            horizontal=True,
            value_format="{:.0%}",
        ),
        bar_chart(
            "drifted-columns",
            "Columns whose drift crossed the alert level (uploads, of the last scored)",
            drifted.most_common(),
            horizontal=True,
            empty="No column crossed the alert level (PSI above "
            f"{resources.settings.drift_alert_psi}) in the last {len(reports)} scored uploads."
            if reports
            else "No data yet.",
        ),
    ]


DRIVERS_SHOWN = 12


def contact_list(resources: Resources, row: db.Prediction, query: ActionsQuery):
    """The page of the actions list, or None for an upload without one (older, or failed)."""
    if row.status is not db.Status.COMPLETED:
        return None
    key = actions_key(row.account, row.id)
    if not aws.object_exists(resources.s3, resources.settings.bucket, key):
        return None
    blocks = aws.iter_blocks(resources.s3, resources.settings.bucket, key)
    return read_view(BlockReader(blocks), query)


def with_bars(page: ActionsView) -> list[tuple[dict, list]]:
    """Each row with its reasons as signed bars, on one scale for the page."""
    scale = largest_share(page.rows + page.rose, REASONS)
    return [(r, reason_bars([r[c] for c in REASONS], scale)) for r in page.rows]


def history_chart(record: customers.CustomerRecord):
    points: list[TimePoint] = [
        (s.completed_at, s.churn_probability, None, None) for s in record.history
    ]
    return line_chart(
        "risk-history",
        "Churn probability in each upload",
        [("churn probability", "v0 realised", points)],
        x_label="upload completed",
        y_label="churn probability",
        y_range=(0.0, 1.0),
        y_step=0.25,
        y_format="{:.0%}",
        height=260,
    )


@dataclass(frozen=True)
class ExplanationView:
    """The customer page's "why": the waterfall and the three largest pushes each way."""

    chart: Waterfall
    score: str  # the latest probability as a percentage ("" when not in the history)
    raises: list[str]
    lowers: list[str]
    found: customers.CustomerExplanation


def explanation_view(record: customers.CustomerRecord) -> ExplanationView | None:
    """The waterfall and the reasons in words, for the customer's latest explanation."""
    found = record.explanation
    if found is None:
        return None
    scored = next((s for s in record.history if s.prediction_id == found.prediction_id), None)
    score = f"{scored.churn_probability:.0%}" if scored else ""
    chart = waterfall(
        "contributions",
        "From the model's base value to this customer's score (log-odds)",
        found.base_value,
        [(f"{c.feature} = {format_value(c.value)}", c.contribution) for c in found.contributions],
        total_label="Score",
        total_text="{:+.2f}" + (f" → {score}" if score else ""),
    )
    ordered = sorted(found.contributions, key=lambda c: -c.contribution)
    words = [f"{c.feature} is {format_value(c.value)} ({c.contribution:+.2f})" for c in ordered]
    raises = [w for w, c in zip(words, ordered, strict=True) if c.contribution > 0][:3]
    lowers = [w for w, c in zip(words, ordered, strict=True) if c.contribution < 0][::-1][:3]
    return ExplanationView(chart, score, raises, lowers, found)


@dataclass(frozen=True)
class AccountDrivers:
    """The dashboard's drivers card: the latest completed upload, its drivers, who moved up."""

    upload: db.Prediction
    chart: Chart
    moved: int | None  # None: no earlier upload to compare with


def account_drivers(resources: Resources, rows: list[db.Prediction]) -> AccountDrivers | None:
    """What drives churn in the latest completed upload, and who moved into HIGH since the one
    before."""
    latest = next((r for r in rows if r.status is db.Status.COMPLETED), None)
    if latest is None:
        return None
    found = customer_trends.drivers(resources.engine, latest.account, latest.id)
    chart = bar_chart(
        "drivers",
        "What drives churn in the latest upload"
        + (
            ": average size of each column's effect on the log-odds, over "
            + (f"{found.averaged:,} of " if found.averaged < found.explained else "")
            + f"its {found.explained:,} explained customers"
            if found.explained
            else ""
        ),
        found.features[:DRIVERS_SHOWN],
        horizontal=True,
        value_format="{:.2f}",
        empty="The latest upload has no stored explanations (uploads scored before reasons "
        "were added have none).",
    )
    moved = customer_trends.moved_into_high(resources.engine, latest.account, latest.id)
    return AccountDrivers(latest, chart, moved)


router = APIRouter(include_in_schema=False)


@router.get("/")
def home() -> RedirectResponse:
    return RedirectResponse("/app", 303)


@router.get("/app/signin")
def signin_form(request: Request) -> HTMLResponse:
    return render(request, "signin.html")


@router.post("/app/signin")
async def signin(request: Request, env: Env):
    async with small_form(request) as form:
        check_csrf(request, form.get("csrf"))
        key = str(form.get("api_key") or "").strip()
    account = await run_in_threadpool(accounts.authenticate, env.engine, key)
    if account is None:
        return render(
            request,
            "signin.html",
            401,
            error="That API key is not valid. Check it for typos, or ask your "
            "operator for a new one.",
        )
    key_id, _ = accounts.parse_key(key) or ("", "")  # authenticate parsed it already
    generation = await run_in_threadpool(admission.session_version, env.engine, key_id)
    request.session.clear()  # a fresh session (and CSRF token) on every sign-in
    request.session.update(key_id=key_id, account=account.name, generation=generation)
    return RedirectResponse("/app", 303)


@router.post("/app/signout")
async def signout(request: Request, env: Env) -> RedirectResponse:
    """Ends this key's sessions on the server too: a copy of the cookie no longer signs in."""
    async with small_form(request) as form:
        check_csrf(request, form.get("csrf"))
    if key_id := request.session.get("key_id"):
        await run_in_threadpool(admission.end_sessions, env.engine, key_id)
    request.session.clear()
    return RedirectResponse("/app/signin", 303)


@router.get("/app")
def dashboard(request: Request, env: Env, account: SignedIn) -> HTMLResponse:
    rows = db.list_predictions(env.engine, account.name, 500)
    return render(
        request,
        "dashboard.html",
        uploads=len(rows),
        charts=dashboard_charts(env, rows, datetime.now(UTC)),
        drivers=account_drivers(env, rows),
    )


@router.get("/app/uploads")
def uploads(request: Request, env: Env, account: SignedIn, offset: Offset = 0) -> HTMLResponse:
    offset = max(offset, 0)
    rows = db.list_predictions(env.engine, account.name, 51, offset)
    return render(
        request,
        "uploads.html",
        rows=rows[:50],
        offset=offset,
        more=len(rows) > 50,
        final=[s.value for s in db.FINAL_STATUSES],
    )


@router.get("/app/uploads.json")
def upload_statuses(env: Env, account: SignedIn, offset: Offset = 0) -> JSONResponse:
    rows = db.list_predictions(env.engine, account.name, 50, max(offset, 0))
    return JSONResponse([public(r).model_dump(mode="json") for r in rows])


def monitored(env: Resources, account: Account, model: str | None):
    try:
        return monitoring_page.account_figures(env, account.name, model)
    except monitoring_page.UnknownModel:
        raise HTTPException(
            404, "There are no monitoring figures for this model in your account."
        ) from None
    except monitoring_page.RegistryUnavailable:
        raise HTTPException(
            503,
            "The model registry could not be read (the realised "
            "figures need each model version's thresholds). Try again "
            "in a minute; if it persists, tell your operator.",
        ) from None


@router.get("/app/monitoring")
def monitoring(
    request: Request, env: Env, account: SignedIn, model: str | None = None
) -> HTMLResponse:
    models, figures = monitored(env, account, model)
    return render(
        request,
        "monitoring.html",
        models=models,
        model=figures.model if figures else None,
        page=monitoring_page.page_context(figures) if figures else None,
    )


@router.get("/app/monitoring.json")
def monitoring_figures(env: Env, account: SignedIn, model: str | None = None) -> JSONResponse:
    models, figures = monitored(env, account, model)
    return JSONResponse(
        monitoring_page.plain(
            {
                "models": models,
                **(figures.to_json() if figures else {"model": None, "account": account.name}),
            }
        )
    )


@router.get("/app/uploads/new")
def new_upload(request: Request, env: Env, account: SignedIn) -> HTMLResponse:
    return render(
        request,
        "new.html",
        limit_mb=env.settings.max_upload_bytes // 10**6,
        carried=", ".join(account.carry_columns),
    )


@router.post("/app/uploads")
async def create_upload(request: Request, env: Env, account: SignedIn) -> JSONResponse:
    check_csrf(request, request.headers.get("x-csrf-token"))
    prediction_id = await receive_upload(
        env, request, account, account.default_model(env.settings.default_model)
    )
    return JSONResponse(
        {"prediction_id": prediction_id, "url": f"/app/uploads/{prediction_id}"}, 202
    )


@router.get("/app/uploads/{prediction_id}")
def upload_detail(
    request: Request,
    env: Env,
    row: Owned,
    tier: str = "",
    q: str = "",
    page: Annotated[int, Query(le=MAX_OFFSET // ActionsQuery.size)] = 0,
) -> HTMLResponse:
    report = stored_report(env, row)
    query = ActionsQuery(tier if tier in TIER_CSS else None, q.strip()[:100], max(page, 0))
    actions = contact_list(env, row, query)
    return render(
        request,
        "detail.html",
        actions=actions,
        listed=with_bars(actions) if actions else [],
        rose=actions and with_bars(ActionsView(actions.rose, False, [])),
        query=query,
        tiers=list(TIER_CSS),
        row=row,
        report=report,
        charts=upload_charts(report) if report else [],
        rejects=first_rejects(env, row),
        shown=REJECTS_SHOWN,
        final=row.final,
    )


@router.get("/app/customers/{customer_id}")
def customer_page(request: Request, env: Env, account: SignedIn, customer_id: str) -> HTMLResponse:
    record = customers.customer(env.engine, account.name, customer_id)
    if record is None:  # another account's customer reads exactly like a missing one
        raise HTTPException(404, "There is no customer with this id in your account.")
    return render(
        request,
        "customer.html",
        record=record,
        latest=record.history[0],
        chart=history_chart(record),
        explained=explanation_view(record),
    )


@router.get("/app/uploads/{prediction_id}/files/{which}")
def download(env: Env, account: SignedIn, prediction_id: str, which: str) -> StreamingResponse:
    if which not in DOWNLOADS:
        raise HTTPException(404, "There is no such file for an upload.")
    row = owned_upload(prediction_id, account, env)
    try:
        blocks = service.open_output(env, row, which)
    except service.NotReady as exc:
        raise HTTPException(409, str(exc)) from None
    media_type, name = DOWNLOADS[which]
    return StreamingResponse(
        blocks,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{prediction_id}-{name}"'},
    )


def install(app: FastAPI, resources: Resources) -> None:
    """Sessions, the pages, and error pages for people (the API keeps its JSON errors)."""
    settings = resources.settings
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.session_secret or secrets.token_urlsafe(32),
        session_cookie=SESSION_COOKIE,
        max_age=SESSION_SECONDS,
        same_site="lax",
        https_only=settings.session_https_only,
    )
    app.include_router(router)
    app.add_exception_handler(SignInRequired, to_signin)
    app.add_exception_handler(HTTPException, error_page)


async def to_signin(request: Request, exc: Exception) -> Response:
    if request.method != "GET":
        return JSONResponse({"detail": "your session has ended; sign in again"}, 401)
    return RedirectResponse("/app/signin", 303)


async def error_page(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if not request.url.path.startswith("/app") or request.method != "GET":
        return await http_exception_handler(request, exc)
    label, href = NEXT_STEPS.get(exc.status_code, ("Back to your uploads", "/app/uploads"))
    return render(
        request,
        "error.html",
        exc.status_code,
        message=exc.detail,
        next_label=label,
        next_href=href,
    )
