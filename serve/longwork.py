"""Long work the API starts: collection and symbol validation, as Ray Jobs of the CLI.

Before a job is submitted its input is checked here (instrument in the catalog, bar size,
dates), so bad input is a 4xx and never a failed job; and one of a kind works at a time: a
collection run of the same kind still holding its lease, or a job of the same kind still
pending or running, is a :class:`~core.errors.Conflict` (409). Two requests racing past both
checks start two jobs, and the catalog lets only one driver create its run (the other job
fails with the same Conflict in its log).

A collection job's run is found in the catalog by its owner: ``job <submission id>`` or
``ray job <Ray job id>`` when the driver writes them, else the driver's ``<host> pid <pid>``
(the job's driver pid, from Ray) created after the job started.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from core.errors import Conflict, NotFound
from core.types import utcnow
from serve.context import ApiContext
from serve.jobs import JobSpec, JobState, entrypoint
from storage.catalog.records import CollectionRun, RunStatus

RUN_KIND = {"collect-daily": "daily", "collect-history": "history"}
"""Job kind -> the kind of collection run its driver records."""
RUN_SCAN = 200
"""How many recent runs are searched for a job's run."""


def daily_job(*, years: int, universes: list[str] | None) -> JobSpec:
    """``scizor collect daily`` for every valid symbol (of ``universes``)."""
    args = ["collect", "daily", "--years", str(years)]
    for name in universes or []:
        args += ["--universe", name]
    return JobSpec(kind="collect-daily", prefix="collect", args=tuple(args))


def history_job(
    instrument: str, *, bar_size: str, start: date | None, end: date | None, years: int = 3
) -> JobSpec:
    """``scizor collect history ID`` for one instrument."""
    args = ["collect", "history", instrument, "--bar-size", bar_size, "--years", str(years)]
    if start is not None:
        args += ["--start", start.isoformat()]
    if end is not None:
        args += ["--end", end.isoformat()]
    return JobSpec(kind="collect-history", prefix="collect", args=tuple(args))


def validate_job(*, force_revalidate: bool, limit: int | None) -> JobSpec:
    """``scizor symbols validate``."""
    args = ["symbols", "validate"]
    if force_revalidate:
        args.append("--force-revalidate")
    if limit is not None:
        args += ["--limit", str(limit)]
    return JobSpec(kind="symbols-validate", prefix="validate", args=tuple(args))


def submit(context: ApiContext, spec: JobSpec, *, requested_by: str, request_id: str) -> str:
    """Refuse if work of the same kind is under way, else submit ``spec``; return the job id.

    Raises:
        Conflict: if a run or a job of the same kind is still working.
        ServiceUnavailable: if Ray's job server cannot be reached.
    """
    _refuse_running_run(context, spec.kind)
    for job in context.jobs.active(spec.kind):
        raise Conflict(
            f"a {spec.kind} job ({job.submission_id}, {job.status.lower()}) is already under "
            f"way; wait for it (GET /jobs/{job.submission_id}) before starting another"
        )
    spec = JobSpec(
        kind=spec.kind, prefix=spec.prefix, args=spec.args,
        metadata={**spec.metadata, "requested_by": requested_by, "request_id": request_id},
    )  # fmt: skip
    job_id = context.jobs.submit(spec, env=context.env)
    context.metrics.job_submitted(spec.kind)
    return job_id


def command(spec: JobSpec) -> str:
    """The command line a job runs, as a user would type it."""
    return entrypoint(spec)


def _refuse_running_run(context: ApiContext, kind: str) -> None:
    run_kind = RUN_KIND.get(kind)
    if run_kind is None:
        return
    run = context.catalog.collection_runs.latest(kind=run_kind)
    if run is None or run.status != RunStatus.RUNNING:
        return
    if run.lease_until is not None and run.lease_until > utcnow():
        raise Conflict(
            f"a {run_kind} collection (run {run.id}, owner {run.owner or 'unknown'}) is still "
            f"running; wait for it (GET /collections/{run.id}) before starting another"
        )


def run_of(context: ApiContext, job: JobState) -> CollectionRun | None:
    """The collection run ``job``'s driver recorded, or None (not yet, or not a collection)."""
    run_kind = RUN_KIND.get(job.kind)
    if run_kind is None:
        return None
    started = _from_ms(job.start_time)
    for run in recent_runs(context.catalog, kind=run_kind, limit=RUN_SCAN):
        owner = run.owner or ""
        named = [f"job {job.submission_id}"] + (
            [f"ray job {job.ray_job_id}"] if job.ray_job_id else []
        )
        if any(name in owner for name in named):
            return run
        by_pid = job.driver_pid is not None and owner.endswith(f" pid {job.driver_pid}")
        if by_pid and (started is None or run.created_at >= started - timedelta(seconds=5)):
            return run
    return None


def recent_runs(catalog: Any, *, kind: str | None = None, limit: int) -> list[CollectionRun]:
    """The newest ``limit`` runs (of ``kind``), newest first."""
    return list_runs(catalog, kind=kind, limit=limit, offset=0)


def list_runs(catalog: Any, *, kind: str | None, limit: int, offset: int) -> list[CollectionRun]:
    """Runs newest first, skipping ``offset`` of them (walking ids down from the newest)."""
    newest = catalog.collection_runs.latest(kind=kind)
    found: list[CollectionRun] = []
    run_id = newest.id if newest is not None else 0
    skipped = 0
    while run_id > 0 and len(found) < limit:
        try:
            run = catalog.collection_runs.get(run_id)
        except NotFound:  # a gap in the ids
            run = None
        run_id -= 1
        if run is None or (kind is not None and run.kind != kind):
            continue
        if skipped < offset:
            skipped += 1
            continue
        found.append(run)
    return found


def _from_ms(value: int | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value / 1000, tz=UTC)
