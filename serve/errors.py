"""Map SCIZOR errors to HTTP responses, in one place.

Bad input is always a 4xx whose body names the field and the fix; nothing in ``serve/``
raises HTTP errors of its own for domain failures.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from core import errors as E

log = logging.getLogger(__name__)

# Most specific first: the first matching class decides the status.
STATUS_BY_ERROR: tuple[tuple[type[E.ScizorError], int], ...] = (
    (E.PacingViolation, 429),
    (E.NotConnected, 503),
    (E.BrokerError, 502),
    (E.RiskRejected, 422),
    (E.OrderRejected, 422),
    (E.ValidationError, 422),
    (E.ConfigError, 400),
    (E.NotFound, 404),
    (E.Conflict, 409),
    (E.StorageError, 503),
    (E.ScizorError, 400),
)


def status_for(exc: E.ScizorError) -> int:
    """Return the HTTP status code for a SCIZOR error."""
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 400  # pragma: no cover - ScizorError is last in the table


def error_body(exc: E.ScizorError) -> dict[str, object]:
    """Return the JSON body for a SCIZOR error: its type, message and field."""
    body: dict[str, object] = {"error": type(exc).__name__, "detail": exc.message}
    field = getattr(exc, "field", None)
    if field:
        body["field"] = field
    code = getattr(exc, "code", None)
    if code is not None:
        body["code"] = code
    return body


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn SCIZOR and validation errors into 4xx/5xx JSON."""

    @app.exception_handler(E.ScizorError)
    async def _scizor_error(_: Request, exc: E.ScizorError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            log.warning("request failed: %s", exc)
        return JSONResponse(error_body(exc), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {
                "field": ".".join(str(p) for p in err.get("loc", ()) if p != "body"),
                "detail": err.get("msg", "invalid"),
            }
            for err in exc.errors()
        ]
        first = problems[0] if problems else {"field": "", "detail": "invalid request"}
        return JSONResponse(
            {
                "error": "ValidationError",
                "detail": f"{first['field']}: {first['detail']}",
                "field": first["field"],
                "problems": problems,
            },
            status_code=422,
        )
