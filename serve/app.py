"""The FastAPI application: HTTP translation only.

``create_api(context)`` builds the app over a :class:`~serve.context.ApiContext` (settings and
the services routes call). Ray Serve hosts it (``serve.deployment``); tests can also drive it
directly with FastAPI's TestClient and no Ray.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI

from serve.context import ApiContext
from serve.errors import install_error_handlers

VERSION = "0.1.0"


def create_api(context: ApiContext) -> FastAPI:
    """Build the SCIZOR HTTP API over ``context``."""
    app = FastAPI(
        title="SCIZOR",
        version=VERSION,
        description="Algorithmic trading on Ray: data, backtests, optimization, trading.",
    )
    install_error_handlers(app)
    app.state.context = context

    @app.get("/health", tags=["platform"])
    def health() -> dict[str, Any]:
        """Report whether the API and the services behind it are up."""
        checks = context.health_checks()
        ok = all(check["ok"] for check in checks.values())
        return {
            "status": "ok" if ok else "degraded",
            "version": VERSION,
            "time": datetime.now(UTC).isoformat(),
            "checks": checks,
        }

    for router in context.routers():
        app.include_router(router)
    return app
