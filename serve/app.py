"""The FastAPI application: HTTP translation only.

``create_api(context)`` builds the app over a :class:`~serve.context.ApiContext` (settings and
the services routes call). Ray Serve hosts it (``serve.deployment``); tests and the plain-
uvicorn benchmark also run it directly, with no Ray.

``/health``, ``/ui`` (the operator console, :mod:`serve.console`), ``/docs`` and
``/openapi.json`` are open; every other route needs a bearer token
whose scope includes the route's (see :mod:`serve.auth`), and OpenAPI says so (the
``bearerAuth`` scheme, and ``x-scizor-scope`` on each operation).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Request, Security
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute

from core.errors import ValidationError
from serve import observe
from serve.auth import SCOPE_KEY, authorize, default_scope
from serve.console import HEADERS as CONSOLE_HEADERS
from serve.console import console_page
from serve.context import ApiContext
from serve.errors import install_error_handlers
from serve.schemas import Health
from storage.catalog.admin import SCOPE_ORDER

VERSION = "0.1.0"

DESCRIPTION = """Algorithmic trading on Ray: data, backtests, optimization, trading.

Send `Authorization: Bearer <token>` (tokens: `scizor token create --name N --scope S`).
GET routes need scope `read`, POST/DELETE `research` (each scope includes the ones before
it: read < research < trade < admin). Every response carries `X-Request-ID`.
Long work (collection, validation) answers `202` with a job id and a `Location` to poll.
"""


def create_api(context: ApiContext, *, include_default_routes: bool = False) -> FastAPI:
    """Build the SCIZOR HTTP API over ``context``.

    Args:
        context: Settings and services.
        include_default_routes: Also mount the data and research routes
            (:func:`serve.routes.all_routers`) before the context's own routers.
    """
    app = FastAPI(
        title="SCIZOR", version=VERSION, description=DESCRIPTION, lifespan=_lifespan(context)
    )
    install_error_handlers(app)
    observe.install(app, context)
    app.state.context = context

    @app.get("/health", tags=["platform"], response_model=Health)
    def health() -> dict[str, Any]:
        """Report whether the API and each part behind it work (no token needed)."""
        checks = context.health_checks()
        ok = all(check.get("ok") for check in checks.values())
        return {
            "status": "ok" if ok else "degraded",
            "version": VERSION,
            "time": datetime.now(UTC),
            "checks": checks,
        }

    @app.get("/ui", tags=["platform"], response_class=HTMLResponse)
    def console() -> HTMLResponse:
        """The operator console: one page calling this API with the operator's token (open)."""
        return HTMLResponse(console_page(), headers=CONSOLE_HEADERS)

    routers = list(context.routers())
    if include_default_routes:
        from serve.routes import all_routers

        routers = all_routers() + routers
    for router in routers:
        _declare_scopes(router)
        app.include_router(router, dependencies=[Security(authorize), Depends(known_query)])
    return app


def known_query(request: Request) -> None:
    """FastAPI dependency: refuse query parameters the route does not take (a typo such as
    ``bar-size=1h`` must not fall back to the default silently).

    Raises:
        ValidationError: naming the unknown parameter and the ones the route takes.
    """
    route = request.scope.get("route")
    taken = _query_names(request.app).get((request.method.lower(), getattr(route, "path", "")))
    unknown = sorted(set(request.query_params) - (taken or set()))
    if taken is not None and unknown:
        choices = ", ".join(sorted(taken)) or "none"
        raise ValidationError(
            f"unknown query parameter {unknown[0]!r}; this route takes: {choices}",
            field=unknown[0],
        )


def _query_names(app: FastAPI) -> dict[tuple[str, str], set[str]]:
    """``{(method, path template): query parameter names}`` from the app's OpenAPI schema."""
    cached: dict[tuple[str, str], set[str]] | None = getattr(app.state, "query_names", None)
    if cached is None:
        cached = {
            (method, path): {p["name"] for p in op.get("parameters", []) if p["in"] == "query"}
            for path, operations in app.openapi()["paths"].items()
            for method, op in operations.items()
        }
        app.state.query_names = cached
    return cached


def _lifespan(context: ApiContext) -> Any:
    """While the app runs, write tokens' last use every flush interval; once more at the end."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async def flush_forever() -> None:
            while True:
                await asyncio.sleep(context.limits.last_use_flush_seconds)
                await anyio.to_thread.run_sync(context.flush_token_uses)

        task = asyncio.create_task(flush_forever())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await anyio.to_thread.run_sync(context.flush_token_uses)

    return lifespan


def _declare_scopes(router: APIRouter) -> None:
    """Write each operation's scope into OpenAPI (``x-scizor-scope``), before inclusion."""
    for route in router.routes:
        if not isinstance(route, APIRoute):
            continue
        extra = dict(route.openapi_extra or {})
        if SCOPE_KEY not in extra:
            methods = sorted(route.methods or {"GET"})
            extra[SCOPE_KEY] = max((default_scope(m) for m in methods), key=SCOPE_ORDER.index).value
        route.openapi_extra = extra
