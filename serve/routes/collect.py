"""Collection: start runs (Ray Jobs of ``scizor collect``), follow jobs and runs.

``POST /collect`` brings every valid symbol's daily bars up to date, ``POST /collect/{id}``
one instrument's, ``POST /collect/historical/{id}`` backfills one instrument at any bar size.
Each answers 202 with the job id and ``Location: /jobs/{job_id}``; the job shows the run it
recorded once its driver created it (``GET /collections/{run}``: progress and per-instrument
status).
"""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from core.errors import ValidationError
from serve.context import ApiContext
from serve.longwork import daily_job, history_job, list_runs, run_of
from serve.routes.common import ERRORS, INSTRUMENT, LONG_WORK, accept, context_of
from serve.schemas import (
    NAME_PATTERN,
    CollectionItemView,
    CollectionRunDetail,
    CollectionRunView,
    DailyCollectRequest,
    HistoryRequest,
    InstrumentDailyRequest,
    JobAccepted,
    JobView,
    RunPage,
    RunRef,
)

router = APIRouter(tags=["collection"], responses=ERRORS)

JOB_ID = Path(pattern=r"^[a-z]+-[0-9a-f]{16}$", description="The job id a 202 answer gave")


@router.post("/collect", response_model=JobAccepted, status_code=202, responses=LONG_WORK)
def collect_daily(
    request: Request,
    response: Response,
    body: DailyCollectRequest | None = None,
    context: ApiContext = Depends(context_of),
) -> JobAccepted:
    """Bring every valid symbol's daily bars up to date (``scizor collect daily``)."""
    body = body or DailyCollectRequest()
    if body.universe:
        known = context.catalog.symbols.universes()
        unknown = [name for name in body.universe if name not in known]
        if unknown:  # refused here, not in the job
            raise ValidationError(
                f"universe {', '.join(unknown)} has no listings in the catalog; known: "
                f"{', '.join(known) or 'none (run scizor symbols populate)'}",
                field="universe",
            )
    return accept(request, response, daily_job(years=body.years, universes=body.universe))


@router.post(
    "/collect/historical/{instrument}",
    response_model=JobAccepted,
    status_code=202,
    responses=LONG_WORK,
)
def collect_history(
    request: Request,
    response: Response,
    body: HistoryRequest,
    instrument: str = INSTRUMENT,
    context: ApiContext = Depends(context_of),
) -> JobAccepted:
    """Backfill one instrument's bars of any size (``scizor collect history``)."""
    key = context.catalog.symbols.get(instrument).id  # 404 / 422 before any job starts
    spec = history_job(key, bar_size=body.bar_size, start=body.start, end=body.end)
    return accept(request, response, spec)


@router.post(
    "/collect/{instrument}", response_model=JobAccepted, status_code=202, responses=LONG_WORK
)
def collect_instrument(
    request: Request,
    response: Response,
    instrument: str = INSTRUMENT,
    body: InstrumentDailyRequest | None = None,
    context: ApiContext = Depends(context_of),
) -> JobAccepted:
    """Bring one instrument's daily bars up to date (``scizor collect history ID``)."""
    body = body or InstrumentDailyRequest()
    key = context.catalog.symbols.get(instrument).id
    spec = history_job(key, bar_size="1d", start=None, end=None, years=body.years)
    return accept(request, response, spec)


@router.get("/collections", response_model=RunPage)
def list_collections(
    context: ApiContext = Depends(context_of),
    kind: str | None = Query(None, pattern=NAME_PATTERN, description="daily or history"),
    limit: int = Query(20, ge=1, le=100),
    offset: int = Query(0, ge=0, le=10_000),
) -> RunPage:
    """Collection runs, newest first."""
    runs = list_runs(context.catalog, kind=kind, limit=limit + 1, offset=offset)
    page = runs[:limit]
    return RunPage(
        items=[CollectionRunView.of(r) for r in page], limit=limit, offset=offset,
        next_offset=offset + limit if len(runs) > limit else None,
    )  # fmt: skip


@router.get("/collections/{run_id}", response_model=CollectionRunDetail)
def get_collection(
    run_id: int = Path(ge=1, le=2**31 - 1), context: ApiContext = Depends(context_of)
) -> CollectionRunDetail:
    """One run: progress, and the status of every instrument."""
    run = context.catalog.collection_runs.get(run_id)
    items = [CollectionItemView.of(i) for i in context.catalog.collection_runs.items(run_id)]
    return CollectionRunDetail(**CollectionRunView.of(run).model_dump(), items=items)


@router.get("/jobs/{job_id}", response_model=JobView, tags=["jobs"])
def get_job(job_id: str = JOB_ID, context: ApiContext = Depends(context_of)) -> JobView:
    """A Ray Job the API submitted: its status, and its collection run once recorded."""
    job = context.jobs.get(job_id)
    run = run_of(context, job)
    return JobView(
        job_id=job.submission_id, kind=job.kind, status=job.status, message=job.message,
        command=job.entrypoint, requested_by=job.metadata.get("requested_by"),
        start_time=_time(job.start_time), end_time=_time(job.end_time),
        run=RunRef(id=run.id, url=f"/collections/{run.id}") if run is not None else None,
    )  # fmt: skip


def _time(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)
