"""What the HTTP routes need: settings and the services behind them, built once per replica."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter

from core.settings import Settings

log = logging.getLogger(__name__)

HealthCheck = Callable[[], dict[str, Any]]


class ApiContext:
    """Settings plus named health checks and extra routers contributed by platform parts."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._checks: dict[str, HealthCheck] = {}
        self._routers: list[APIRouter] = []

    def add_health_check(self, name: str, check: HealthCheck) -> None:
        """Register a check returning ``{"ok": bool, ...}``; it must not raise."""
        self._checks[name] = check

    def add_router(self, router: APIRouter) -> None:
        """Mount ``router`` on the app when it is built."""
        self._routers.append(router)

    def routers(self) -> list[APIRouter]:
        """The routers to mount, in registration order."""
        return list(self._routers)

    def health_checks(self) -> dict[str, dict[str, Any]]:
        """Run every check; a check that raises reports ``ok: false`` with the error."""
        results: dict[str, dict[str, Any]] = {}
        for name, check in self._checks.items():
            try:
                results[name] = check()
            except Exception as exc:  # a broken dependency must not break /health itself
                log.warning("health check %s failed: %s", name, exc)
                results[name] = {"ok": False, "error": str(exc)}
        return results
