"""Map SCIZOR errors to HTTP responses, in one place.

Bad input is always a 4xx whose body names the field and the fix; nothing in ``serve/``
raises HTTP errors of its own for domain failures. The few failures that exist only at the
HTTP edge (no or a bad token, a missing scope, too large a body, too many requests, a service
behind the API that cannot be reached) are narrow :class:`~core.errors.ScizorError`
subclasses defined here and mapped by the same table.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from core import errors as E

log = logging.getLogger(__name__)


class Unauthorized(E.ScizorError):
    """No bearer token, or one that is unknown, revoked or expired (401).

    Attributes:
        required_scope: The scope the route needs (set once the route is known).
    """

    def __init__(self, message: str, *, required_scope: str | None = None) -> None:
        super().__init__(message)
        self.required_scope = required_scope


class Forbidden(E.ScizorError):
    """The token is valid but its scope does not allow the route (403).

    Attributes:
        required_scope: The scope the route needs.
        token_scope: The scope the token has.
    """

    def __init__(self, message: str, *, required_scope: str, token_scope: str) -> None:
        super().__init__(message)
        self.required_scope = required_scope
        self.token_scope = token_scope


class PayloadTooLarge(E.ScizorError):
    """The request body is larger than the API accepts (413)."""


class RateLimited(E.ScizorError):
    """The token sent more requests than its rate allows (429).

    Attributes:
        retry_after: Seconds until a request will be accepted again.
    """

    def __init__(self, message: str, *, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class ServiceUnavailable(E.ScizorError):
    """A service behind the API (Ray's job server, the gateway actor) is unreachable (503)."""


# Most specific first: the first matching class decides the status.
STATUS_BY_ERROR: tuple[tuple[type[E.ScizorError], int], ...] = (
    (Unauthorized, 401),
    (Forbidden, 403),
    (PayloadTooLarge, 413),
    (RateLimited, 429),
    (ServiceUnavailable, 503),
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

# Parts of a validation error's location that say where, not which field.
_LOCATIONS = frozenset({"body", "query", "path", "header", "cookie"})

FIELD_FORMS = {
    "instrument": "write SYMBOL.VENUE with the listing's primary exchange (e.g. 'BHP.ASX', "
    "'AAPL.NASDAQ', 'VEA.ARCA'), or a symbol with one listing",
    "job_id": "pass the job_id a 202 answer gave, e.g. 'collect-3f9c0a1b2c3d4e5f'",
}
"""How to write fields whose form a pattern checks (said instead of the regular expression)."""


def status_for(exc: E.ScizorError) -> int:
    """Return the HTTP status code for a SCIZOR error."""
    for cls, status in STATUS_BY_ERROR:
        if isinstance(exc, cls):
            return status
    return 400  # pragma: no cover - ScizorError is last in the table


def error_body(exc: E.ScizorError) -> dict[str, object]:
    """Return the JSON body for a SCIZOR error: its type, message and field (and scopes)."""
    body: dict[str, object] = {"error": type(exc).__name__, "detail": exc.message}
    for attribute in ("field", "code", "required_scope", "token_scope", "candidates"):
        value = getattr(exc, attribute, None)
        if value is not None and value != "":
            body[attribute] = value
    if isinstance(exc, RateLimited):
        body["retry_after"] = retry_after_seconds(exc.retry_after)
    return body


def retry_after_seconds(seconds: float) -> int:
    """Whole seconds for a ``Retry-After`` header (at least 1)."""
    return max(1, math.ceil(seconds))


def error_headers(exc: E.ScizorError) -> dict[str, str]:
    """Return the headers an error response carries (``WWW-Authenticate``, ``Retry-After``)."""
    if isinstance(exc, Unauthorized):
        return {"WWW-Authenticate": 'Bearer realm="scizor"'}
    if isinstance(exc, Forbidden):
        return {"WWW-Authenticate": f'Bearer realm="scizor", scope="{exc.required_scope}"'}
    if isinstance(exc, RateLimited):
        return {"Retry-After": str(retry_after_seconds(exc.retry_after))}
    return {}


def error_response(exc: E.ScizorError) -> JSONResponse:
    """Return the JSON response for ``exc`` (status, body and headers)."""
    status = status_for(exc)
    if status >= 500:
        log.warning("request failed: %s: %s", type(exc).__name__, exc)
    return JSONResponse(error_body(exc), status_code=status, headers=error_headers(exc))


def validation_problems(errors: list[Any]) -> list[dict[str, str]]:
    """Return pydantic's errors as ``{"field", "in", "detail"}`` records."""
    problems = []
    for err in errors:
        loc = [str(p) for p in err.get("loc", ())]
        where = loc[0] if loc and loc[0] in _LOCATIONS else "body"
        field = ".".join(p for p in loc if p not in _LOCATIONS) or where
        detail = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":  # loc is ("body", character position)
            field = "body"
            detail = f"the body is not valid JSON ({detail} at character {loc[-1]}): send JSON"
        elif err.get("type") == "string_pattern_mismatch":
            form = FIELD_FORMS.get(loc[-1] if loc else "", "see /docs for its form")
            detail = f"{str(err.get('input'))[:60]!r} is not a valid {loc[-1]}: {form}"
        problems.append({"field": field, "in": where, "detail": detail})
    return problems


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn SCIZOR, validation and routing errors into JSON."""

    @app.exception_handler(E.ScizorError)
    async def _scizor_error(_: Request, exc: E.ScizorError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = validation_problems(list(exc.errors()))
        first = problems[0] if problems else {"field": "", "in": "body", "detail": "invalid"}
        return JSONResponse(
            {
                "error": "ValidationError",
                "detail": f"{first['field']}: {first['detail']}",
                "field": first["field"],
                "problems": problems,
            },
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail)
        if exc.status_code == 400 and "parsing the body" in detail:  # not UTF-8 JSON
            message = "body: the body is not JSON (UTF-8); send a JSON object (see /docs)"
            return JSONResponse(
                {"error": "ValidationError", "detail": message, "field": "body"},
                status_code=422,
            )
        if exc.status_code == 404:
            detail = f"no route {request.method} {request.url.path}; see /docs for the API"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}; see /docs"
        return JSONResponse(
            {"error": _HTTP_ERRORS.get(exc.status_code, "HTTPError"), "detail": detail},
            status_code=exc.status_code,
            headers=dict(exc.headers or {}),
        )


_HTTP_ERRORS = {404: "NotFound", 405: "MethodNotAllowed", 400: "BadRequest"}
