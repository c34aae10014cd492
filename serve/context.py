"""What the HTTP routes need: settings and the services behind them, built once per replica.

The services are injected, so unit tests pass fakes (no Ray) and the Serve deployment passes
the real ones (:func:`serve.deployment.build_context`): the catalog, the bar store root, the
gateway (IB lookups, the account), trading (the order manager, the deployments' runners and
the emergency stop), the job launcher (Ray Jobs), the metrics and the limits.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import APIRouter

from core.settings import Settings
from serve.auth import Guard, TokenVerifier
from serve.jobs import JobLauncher, NoJobLauncher
from serve.limits import ApiLimits, RateLimiter
from serve.metrics import NullApiMetrics, RequestMetrics
from serve.services import Gateway, NoGateway, NoTrading, Trading
from storage.bars import BarStore

log = logging.getLogger(__name__)

HealthCheck = Callable[[], dict[str, Any]]


class ApiContext:
    """Settings, services, named health checks and the routers contributed by platform parts.

    Args:
        settings: The replica's settings.
        env: The ``SCIZOR_*`` variables the settings came from (Ray Jobs get them).
        catalog: The catalog (default: opened from ``settings`` on first use).
        gateway: IB lookups through the gateway actor.
        trading: Orders, positions, deployments' runners and the emergency stop through the
            trading actors (default: none, every call a 503).
        jobs: Submits and reads Ray Jobs.
        metrics: Request metrics (default: none recorded).
        limits: Body, rate and token-cache limits.
        proxy_echoes_request_id: True behind Ray Serve, whose proxy echoes ``X-Request-ID``.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        env: Mapping[str, str] | None = None,
        catalog: Any = None,
        gateway: Gateway | None = None,
        trading: Trading | None = None,
        jobs: JobLauncher | None = None,
        metrics: RequestMetrics | None = None,
        limits: ApiLimits | None = None,
        proxy_echoes_request_id: bool = False,
    ) -> None:
        self.settings = settings
        self.proxy_echoes_request_id = proxy_echoes_request_id
        self.env = dict(env or {})
        self._catalog = catalog
        self.gateway: Gateway = gateway or NoGateway()
        self.trading: Trading = trading or NoTrading()
        self.jobs: JobLauncher = jobs or NoJobLauncher()
        self.metrics: RequestMetrics = metrics or NullApiMetrics()
        self.limits = limits or ApiLimits.of(settings)
        self.bars = BarStore(settings.storage.bar_store)
        self._guard: Guard | None = None
        self._checks: dict[str, HealthCheck] = {}
        self._routers: list[APIRouter] = []

    @property
    def catalog(self) -> Any:
        """The catalog (opened on first use)."""
        if self._catalog is None:
            from storage.catalog import Catalog

            self._catalog = Catalog(self.settings.db.url)
        return self._catalog

    @functools.cached_property
    def backtests(self) -> Any:
        """The backtest job service (:class:`optimize.backtest_jobs.BacktestService`)."""
        from optimize.backtest_jobs import BacktestService

        return BacktestService(self.catalog, self.settings)

    @functools.cached_property
    def optimizations(self) -> Any:
        """The optimization job service (``optimize.optimization_jobs.OptimizationService``)."""
        from optimize.optimization_jobs import OptimizationService

        return OptimizationService(self.catalog, self.settings)

    @functools.cached_property
    def risk(self) -> Any:
        """The risk manager over the catalog (:class:`actors.risk_manager.RiskManager`),
        in process: its routes need no Ray. Call ``reload()`` before reading it."""
        from actors.risk_manager import RiskManager

        return RiskManager(self.catalog.risk)

    @property
    def guard(self) -> Guard:
        """Token verification and rate limits of this replica (built on first use)."""
        if self._guard is None:
            self._guard = Guard(
                verifier=TokenVerifier(self.catalog.tokens, limits=self.limits),
                limiter=RateLimiter(rate=self.limits.rate_per_second, burst=self.limits.burst),
            )
        return self._guard

    def add_health_check(self, name: str, check: HealthCheck) -> None:
        """Register a check returning ``{"ok": bool, ...}``; it must not raise."""
        self._checks[name] = check

    def add_router(self, router: APIRouter) -> None:
        """Mount ``router`` on the app when it is built (every route needs a token)."""
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

    def flush_token_uses(self) -> None:
        """Write the tokens' last use waiting in this replica (nothing if none)."""
        if self._guard is not None and self._guard.verifier.pending:
            self._guard.verifier.flush()

    def close(self) -> None:
        """Write waiting token uses and release the catalog's connections."""
        self.flush_token_uses()
        if self._catalog is not None:
            self._catalog.dispose()
