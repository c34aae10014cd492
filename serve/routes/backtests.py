"""Backtests: submit jobs (Ray Jobs of ``scizor backtest --run ID``), follow them, read results.

``POST /backtests`` checks the spec (``BacktestService.submit``: a bad field is a 422 naming
its spec path), queues the row and submits its driver as a Ray Job; it answers 202 with the
backtest id and ``Location: /backtests/{id}``. Progress is JSON, or server-sent events until
the job ends (``Accept: text/event-stream``, bounded in time); trades and equity are JSON,
CSV or an Arrow IPC stream (``format=`` or ``Accept``, as ``GET /bars``); the report is the
HTML tearsheet, rendered on demand. ``DELETE /backtests/{id}`` cancels: the row is
``cancelled`` at once, its driver notices and stops its tasks, and its Ray Job is stopped
where the launcher can stop jobs.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

import anyio
import pandas as pd
from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, StreamingResponse

from core.errors import ValidationError
from serve.context import ApiContext
from serve.errors import ServiceUnavailable
from serve.jobs import JobSpec
from serve.longwork import command
from serve.routes.bars import MEDIA, Format, negotiate
from serve.routes.common import ERRORS, context_of, principal_of
from serve.schemas import INSTRUMENT_PATTERN, NAME_PATTERN, Problem
from serve.schemas_backtests import (
    BacktestAccepted,
    BacktestPageView,
    BacktestRequest,
    BacktestView,
    PerformanceView,
    ProgressView,
    ResultsView,
    ResultView,
)
from storage.barquery import ARROW_STREAM, arrow_stream

router = APIRouter(tags=["backtests"], responses=ERRORS)

JOB_KIND = "backtest"
SSE = "text/event-stream"
SSE_INTERVAL = 0.5
"""Seconds between progress reads of an event stream."""
SSE_LIMIT = 900.0
"""Seconds an event stream lasts at most; the client reconnects for more."""

BACKTEST_ID = Path(ge=1, le=2**31 - 1, description="The id a 202 answer of POST /backtests gave")
INSTRUMENT_FILTER = Query(
    None, pattern=INSTRUMENT_PATTERN, max_length=48,
    description="One instrument's (canonical id, a bare symbol with one listing, or portfolio)",
)  # fmt: skip
Status = Literal["queued", "running", "done", "failed", "cancelled"]

FILE_FORMATS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "JSON, CSV or an Arrow IPC stream (format= or Accept)",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "text/csv": {"schema": {"type": "string"}},
            ARROW_STREAM: {"schema": {"type": "string", "format": "binary"}},
        },
    }
}
FINISHED_JOB: dict[int | str, dict[str, Any]] = {
    409: {"model": Problem, "description": "The job is done or failed already"}
}
PROGRESS_FORMATS: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Progress as JSON, or server-sent events (Accept: text/event-stream)",
        "content": {SSE: {"schema": {"type": "string"}}},
    }
}


@runtime_checkable
class StoppableJobs(Protocol):
    """A job launcher that can also stop a job (Ray's ``stop_job``)."""

    def stop(self, submission_id: str) -> Any: ...


@router.post("/backtests", response_model=BacktestAccepted, status_code=202)
def submit_backtest(
    request: Request,
    response: Response,
    body: BacktestRequest,
    context: ApiContext = Depends(context_of),
) -> BacktestAccepted:
    """Check a backtest spec, queue the job and start its driver as a Ray Job."""
    record = context.backtests.submit(body.model_dump())
    spec = JobSpec(
        kind=JOB_KIND, prefix=JOB_KIND, args=tuple(context.backtests.run_args(record.id)),
        metadata={"backtest_id": str(record.id), "requested_by": principal_of(request).name,
                  "request_id": str(request.state.request_id)},
    )  # fmt: skip
    try:
        job_id = context.jobs.submit(spec, env=context.env)
    except ServiceUnavailable:  # no driver will ever run it: it must not stay queued
        context.backtests.cancel(record.id)
        raise
    context.metrics.job_submitted(JOB_KIND)
    url = f"/backtests/{record.id}"
    response.headers["Location"] = url
    return BacktestAccepted(
        backtest_id=record.id, status=str(record.status), status_url=url,
        progress_url=f"{url}/progress", job_id=job_id, command=command(spec),
    )  # fmt: skip


@router.get("/backtests", response_model=BacktestPageView)
def list_backtests(
    context: ApiContext = Depends(context_of),
    strategy: str | None = Query(None, pattern=NAME_PATTERN),
    instrument: str | None = Query(None, pattern=INSTRUMENT_PATTERN, max_length=48),
    status: Status | None = Query(None),
    since: datetime | None = Query(None, description="Created at or after (ISO, UTC)"),
    until: datetime | None = Query(None, description="Created before (ISO, UTC)"),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> BacktestPageView:
    """Backtest jobs, newest first, filtered; ``total`` says how many match in all."""
    lo, hi = _utc(since), _utc(until)
    if lo is not None and hi is not None and lo >= hi:
        raise ValidationError("since must be before until (until is exclusive)", field="since")
    page = context.backtests.list(strategy=strategy, instrument=instrument, status=status,
                                  since=lo, until=hi, offset=offset, limit=limit)  # fmt: skip
    return BacktestPageView.of(page)


@router.get("/backtests/{backtest_id}", response_model=BacktestView)
def get_backtest(
    backtest_id: int = BACKTEST_ID, context: ApiContext = Depends(context_of)
) -> BacktestView:
    """One backtest job: its spec, status and (once done) summary stats."""
    return BacktestView.of(context.backtests.get(backtest_id))


@router.get(
    "/backtests/{backtest_id}/progress",
    response_model=ProgressView,
    responses=PROGRESS_FORMATS,
)
def get_progress(
    request: Request, backtest_id: int = BACKTEST_ID, context: ApiContext = Depends(context_of)
) -> Any:
    """Where the job stands; with ``Accept: text/event-stream``, events until it ends."""
    first = ProgressView.of(context.backtests.progress(backtest_id))  # 404 before streaming
    if SSE not in request.headers.get("accept", "").lower():
        return first
    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(_events(request, context, first), media_type=SSE, headers=headers)


async def _events(request: Request, context: ApiContext, first: ProgressView) -> AsyncIterator[str]:
    """``progress`` events while the job changes, then one ``end`` event (or ``timeout``)."""
    current, last, deadline = first, None, time.monotonic() + SSE_LIMIT
    while True:
        if current != last:
            yield _event("progress", current)
            last = current
        if current.finished:
            yield _event("end", current)
            return
        if time.monotonic() > deadline:
            yield _event("timeout", current)
            return
        await asyncio.sleep(SSE_INTERVAL)
        if await request.is_disconnected():
            return
        progress = await anyio.to_thread.run_sync(context.backtests.progress, current.backtest_id)
        current = ProgressView.of(progress)


def _event(name: str, view: ProgressView) -> str:
    return f"event: {name}\ndata: {view.model_dump_json()}\n\n"


@router.get("/backtests/{backtest_id}/results", response_model=ResultsView)
def get_results(
    backtest_id: int = BACKTEST_ID, context: ApiContext = Depends(context_of)
) -> ResultsView:
    """The job's per-instrument (or portfolio) stats ranked by its metric, best first."""
    job = context.backtests.get(backtest_id)
    rows = context.backtests.results(backtest_id)
    return ResultsView(
        backtest_id=job.id, status=str(job.status), metric=str(job.options.get("sort", "sharpe")),
        results=[ResultView.of(r) for r in rows],
    )  # fmt: skip


@router.get("/backtests/{backtest_id}/trades", responses=FILE_FORMATS)
def get_trades(
    request: Request,
    backtest_id: int = BACKTEST_ID,
    instrument: str | None = INSTRUMENT_FILTER,
    format: Format | None = Query(None, description="json, csv or arrow; overrides Accept"),
    context: ApiContext = Depends(context_of),
) -> Response:
    """The job's closed trades (of one instrument, or all), by entry time."""
    frame = context.backtests.trades(backtest_id, instrument)
    return _table(request, frame, "trades", format=format, backtest_id=backtest_id,
                  instrument=instrument)  # fmt: skip


@router.get("/backtests/{backtest_id}/equity", responses=FILE_FORMATS)
def get_equity(
    request: Request,
    backtest_id: int = BACKTEST_ID,
    instrument: str | None = INSTRUMENT_FILTER,
    format: Format | None = Query(None, description="json, csv or arrow; overrides Accept"),
    context: ApiContext = Depends(context_of),
) -> Response:
    """Equity curves in long form: ``instrument ts equity benchmark``."""
    frame = context.backtests.equity(backtest_id, instrument)
    return _table(request, frame, "equity", format=format, backtest_id=backtest_id,
                  instrument=instrument)  # fmt: skip


HTML_REPORT: dict[int | str, dict[str, Any]] = {
    200: {"description": "The HTML tearsheet", "content": {"text/html": {}}}
}


# Not response_class=HTMLResponse: that documents the JSON error answers as text/html too.
@router.get("/backtests/{backtest_id}/report", response_model=None, responses=HTML_REPORT)
def get_report(
    backtest_id: int = BACKTEST_ID,
    instrument: str | None = INSTRUMENT_FILTER,
    context: ApiContext = Depends(context_of),
) -> HTMLResponse:
    """The HTML tearsheet of the job (or of one instrument), rendered now."""
    return HTMLResponse(context.backtests.report_html(backtest_id, instrument))


@router.delete("/backtests/{backtest_id}", response_model=BacktestView, responses=FINISHED_JOB)
def cancel_backtest(
    backtest_id: int = BACKTEST_ID, context: ApiContext = Depends(context_of)
) -> BacktestView:
    """Cancel a queued or running job (409 once done or failed); its Ray Job stops."""
    record = context.backtests.cancel(backtest_id)
    if isinstance(context.jobs, StoppableJobs):
        for job in context.jobs.active(JOB_KIND):
            if job.metadata.get("backtest_id") == str(backtest_id):
                context.jobs.stop(job.submission_id)
    return BacktestView.of(record)


@router.get("/performance/strategies/{name}", response_model=PerformanceView, tags=["performance"])
def strategy_performance(
    name: str = Path(pattern=NAME_PATTERN, description="A strategy (or rule spec) name"),
    context: ApiContext = Depends(context_of),
) -> PerformanceView:
    """How a strategy did over all of its finished backtests (404 if none)."""
    return PerformanceView.of(context.backtests.strategy_performance(name))


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _table(
    request: Request, frame: pd.DataFrame, name: str, *, format: str | None, **envelope: Any
) -> Response:
    chosen = negotiate(format, request.headers.get("accept", ""))
    if chosen == "arrow":  # arrow_stream writes the index as a column: make it the first one
        indexed = frame.set_index(frame.columns[0]) if len(frame.columns) else frame
        return Response(arrow_stream(indexed), media_type=ARROW_STREAM)
    if chosen == "csv":
        text = frame.to_csv(index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        return Response(text, media_type="text/csv")
    rows = frame.to_json(orient="records", date_format="iso", double_precision=15)
    head = json.dumps({**envelope, "count": len(frame)})[:-1]
    return Response(f'{head}, "{name}": {rows}}}', media_type=MEDIA["json"])
