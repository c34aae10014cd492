"""What every route module shares: the context, the principal, error responses, 202 answers."""

from __future__ import annotations

from typing import Any

from fastapi import Path, Request, Response

from serve.auth import Principal
from serve.context import ApiContext
from serve.jobs import JobSpec
from serve.longwork import command, submit
from serve.schemas import INSTRUMENT_PATTERN, JobAccepted, Problem


def _problem(description: str) -> dict[str, Any]:
    return {"model": Problem, "description": description}


ERRORS: dict[int | str, dict[str, Any]] = {
    401: _problem("No bearer token, or one that is unknown, revoked or expired"),
    403: _problem("The token's scope does not include the one this route needs"),
    404: _problem("The named thing does not exist"),
    413: _problem("The request body is over 1 MiB"),
    422: _problem("Bad input: the body names the field and the fix"),
    429: _problem("Over the token's rate limit: retry after Retry-After seconds"),
    503: _problem("A service behind the API (catalog, gateway, job server) is unreachable"),
}
"""Error responses every authenticated route may answer (documented in OpenAPI)."""

LONG_WORK: dict[int | str, dict[str, Any]] = {
    409: _problem("Work of the same kind is already under way"),
}

INSTRUMENT = Path(
    pattern=INSTRUMENT_PATTERN,
    max_length=48,
    description="Canonical id SYMBOL.VENUE (e.g. BHP.ASX), or a symbol with one listing",
    examples=["BHP.ASX"],
)


def context_of(request: Request) -> ApiContext:
    """FastAPI dependency: the replica's :class:`~serve.context.ApiContext`."""
    context: ApiContext = request.app.state.context
    return context


def principal_of(request: Request) -> Principal:
    """The request's principal (set by :func:`serve.auth.authorize`)."""
    principal: Principal = request.state.principal
    return principal


def accept(request: Request, response: Response, spec: JobSpec) -> JobAccepted:
    """Submit ``spec`` as a Ray Job; answer 202 with the job id and a ``Location`` header."""
    job_id = submit(
        context_of(request),
        spec,
        requested_by=principal_of(request).name,
        request_id=str(request.state.request_id),
    )
    url = f"/jobs/{job_id}"
    response.headers["Location"] = url
    return JobAccepted(
        job_id=job_id, kind=spec.kind, status="PENDING", status_url=url, command=command(spec)
    )
