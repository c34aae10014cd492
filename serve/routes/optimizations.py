"""Optimizations: submit Optuna studies (Ray Jobs of ``scizor optimize --run ID``), follow
them, read their trials and report, stop them.

``POST /optimizations`` checks the study spec (a bad field is a 422 naming its path; a name
that exists with another spec is refused, with the same spec it resumes), queues the job and
submits its driver as a Ray Job; it answers 202 with ``Location: /optimizations/{id}``.
``GET /optimizations/{id}/trials`` pages through the study's trials, sorted by number, value
(best first) or seconds; ``/report`` is the HTML report, rendered now; ``DELETE`` stops the
study (it ends ``cancelled`` with the trials it finished) and its Ray Job.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import HTMLResponse

from serve.context import ApiContext
from serve.errors import ServiceUnavailable
from serve.jobs import JobSpec
from serve.longwork import command
from serve.routes.backtests import FINISHED_JOB, HTML_REPORT, StoppableJobs
from serve.routes.common import ERRORS, context_of, principal_of
from serve.schemas import NAME_PATTERN
from serve.schemas_optimizations import (
    OptimizationAccepted,
    OptimizationPageView,
    OptimizationRequest,
    OptimizationView,
    TrialPageView,
)

router = APIRouter(tags=["optimizations"], responses=ERRORS)

JOB_KIND = "optimize"
OPTIMIZATION_ID = Path(
    ge=1, le=2**31 - 1, description="The id a 202 answer of POST /optimizations gave"
)
Status = Literal["queued", "running", "done", "failed", "cancelled"]


@router.post("/optimizations", response_model=OptimizationAccepted, status_code=202)
def submit_optimization(
    request: Request,
    response: Response,
    body: OptimizationRequest,
    context: ApiContext = Depends(context_of),
) -> OptimizationAccepted:
    """Check a study spec, queue the job and start its driver as a Ray Job."""
    service = context.optimizations
    record = service.submit(body.model_dump())
    spec = JobSpec(
        kind=JOB_KIND, prefix=JOB_KIND, args=tuple(service.run_args(record.id)),
        metadata={"optimization_id": str(record.id), "requested_by": principal_of(request).name,
                  "request_id": str(request.state.request_id)},
    )  # fmt: skip
    try:
        job_id = context.jobs.submit(spec, env=context.env)
    except ServiceUnavailable:  # no driver will ever run it: it must not stay queued
        service.cancel(record.id)
        raise
    context.catalog.optimizations.set_artifacts(record.id, job_id=job_id)
    context.metrics.job_submitted(JOB_KIND)
    url = f"/optimizations/{record.id}"
    response.headers["Location"] = url
    return OptimizationAccepted(
        optimization_id=record.id, study_name=record.study_name, status=str(record.status),
        status_url=url, trials_url=f"{url}/trials", job_id=job_id, command=command(spec),
    )  # fmt: skip


@router.get("/optimizations", response_model=OptimizationPageView)
def list_optimizations(
    context: ApiContext = Depends(context_of),
    strategy: str | None = Query(None, pattern=NAME_PATTERN),
    status: Status | None = Query(None),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> OptimizationPageView:
    """Optimizations, newest first, filtered; ``total`` says how many match in all."""
    page = context.optimizations.list(strategy=strategy, status=status, offset=offset,
                                      limit=limit)  # fmt: skip
    return OptimizationPageView.of(page)


@router.get("/optimizations/{optimization_id}", response_model=OptimizationView)
def get_optimization(
    optimization_id: int = OPTIMIZATION_ID, context: ApiContext = Depends(context_of)
) -> OptimizationView:
    """One optimization: spec, status and trial counts; best, verdict and statistics once done."""
    return OptimizationView.of(context.optimizations.get(optimization_id))


@router.get("/optimizations/{optimization_id}/trials", response_model=TrialPageView)
def get_trials(
    optimization_id: int = OPTIMIZATION_ID,
    sort: Literal["number", "value", "seconds"] = Query("number"),
    order: Literal["asc", "desc"] | None = Query(
        None, description="Default: ascending, but best first for value"
    ),
    state: Literal["COMPLETE", "FAIL", "PRUNED", "RUNNING"] | None = Query(None),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10_000_000),
    context: ApiContext = Depends(context_of),
) -> TrialPageView:
    """The study's trials, a page at a time, sorted by number, value or seconds."""
    descending = None if order is None else order == "desc"
    page = context.optimizations.trials(optimization_id, sort=sort, descending=descending,
                                        state=state, offset=offset, limit=limit)  # fmt: skip
    return TrialPageView.of(optimization_id, page)


@router.get("/optimizations/{optimization_id}/report", response_model=None, responses=HTML_REPORT)
def get_report(
    optimization_id: int = OPTIMIZATION_ID, context: ApiContext = Depends(context_of)
) -> HTMLResponse:
    """The HTML report (heatmap, walk-forward, DSR/PBO, verdict); 409 until the study is done."""
    return HTMLResponse(context.optimizations.report_html(optimization_id))


@router.delete(
    "/optimizations/{optimization_id}", response_model=OptimizationView, responses=FINISHED_JOB
)
def stop_optimization(
    optimization_id: int = OPTIMIZATION_ID, context: ApiContext = Depends(context_of)
) -> OptimizationView:
    """Stop a queued or running study (409 once done or failed); its Ray Job stops."""
    record = context.optimizations.cancel(optimization_id)
    if isinstance(context.jobs, StoppableJobs):
        for job in context.jobs.active(JOB_KIND):
            if job.metadata.get("optimization_id") == str(optimization_id):
                context.jobs.stop(job.submission_id)
    return OptimizationView.of(record)
