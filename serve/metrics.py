"""Ray metrics of the HTTP API, and of the platform's long work (Prometheus / dashboard).

Created inside the process that records them (a Serve replica, a job driver), never at import
time: ``ray.util.metrics`` needs a running Ray worker, and importing this module must stay free
of side effects. Ray exports each metric with a ``ray_`` prefix (counters also get
``_total``), e.g. ``ray_scizor_api_requests_total{route="/bars/{instrument}",status="200"}``.

:class:`ApiMetrics` is what the API records per request; :class:`NullApiMetrics` stands in
where there is no Ray (unit tests, the plain-uvicorn benchmark). :class:`PlatformMetrics` are
the hooks the collection and backtest drivers call (``scizor collect``, ``scizor backtest``).
"""

from __future__ import annotations

from typing import Protocol

LATENCY_BOUNDARIES = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]
"""Histogram buckets of request latency, in seconds."""
WAIT_BOUNDARIES = [0.01, 0.1, 0.5, 1.0, 5.0, 15.0, 60.0, 300.0, 600.0]
"""Histogram buckets of pacing waits, in seconds."""


class RequestMetrics(Protocol):
    """What the API records; see :class:`ApiMetrics`."""

    def request(self, *, route: str, method: str, status: int, seconds: float) -> None: ...

    def job_submitted(self, kind: str) -> None: ...

    def audit_failed(self) -> None: ...


class NullApiMetrics:
    """Records nothing (no Ray in this process)."""

    def request(self, *, route: str, method: str, status: int, seconds: float) -> None:
        return None

    def job_submitted(self, kind: str) -> None:
        return None

    def audit_failed(self) -> None:
        return None


class ApiMetrics:
    """Request counts by route template, method and status; latency by route; jobs; audit."""

    def __init__(self) -> None:
        from ray.util import metrics

        self._requests = metrics.Counter(
            "scizor_api_requests",
            description="HTTP requests answered, by route template, method and status.",
            tag_keys=("route", "method", "status"),
        )
        self._latency = metrics.Histogram(
            "scizor_api_request_seconds",
            description="Seconds from request to response, by route template and method.",
            boundaries=LATENCY_BOUNDARIES,
            tag_keys=("route", "method"),
        )
        self._jobs = metrics.Counter(
            "scizor_api_jobs_submitted",
            description="Ray Jobs the API submitted, by kind.",
            tag_keys=("kind",),
        )
        self._audit_failures = metrics.Counter(
            "scizor_api_audit_failures",
            description="Mutations whose audit row could not be written (see replica logs).",
        )

    def request(self, *, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and observe its latency."""
        self._requests.inc(1, tags={"route": route, "method": method, "status": str(status)})
        self._latency.observe(seconds, tags={"route": route, "method": method})

    def job_submitted(self, kind: str) -> None:
        """Count one submitted Ray Job of ``kind``."""
        self._jobs.inc(1, tags={"kind": kind})

    def audit_failed(self) -> None:
        """Count one audit row that could not be written."""
        self._audit_failures.inc(1)


class PlatformMetrics:
    """Hooks of long work: backtests started/completed/failed, bars written, pacing waits,
    optimization trials and their rate.

    Create one per driver process (``PlatformMetrics()`` after Ray is initialized) and call
    the hooks as work progresses.
    """

    def __init__(self) -> None:
        from ray.util import metrics

        self._backtests = metrics.Counter(
            "scizor_backtests",
            description="Backtest jobs by outcome: started, completed or failed.",
            tag_keys=("outcome",),
        )
        self._bars = metrics.Counter(
            "scizor_bars_written",
            description="Bars merged into the bar store by collection, by bar size.",
            tag_keys=("bar_size",),
        )
        self._waits = metrics.Histogram(
            "scizor_collection_pacing_wait_seconds",
            description="Seconds a collection run waited on IBKR pacing, per report.",
            boundaries=WAIT_BOUNDARIES,
        )
        self._trials = metrics.Counter(
            "scizor_optimization_trials",
            description="Optimization trials evaluated (COMPLETE), by study.",
            tag_keys=("study",),
        )
        self._rate = metrics.Gauge(
            "scizor_optimization_trials_per_second",
            description="COMPLETE trials per second of the running study, by study.",
            tag_keys=("study",),
        )

    def trials_completed(self, count: int, *, study: str, per_second: float) -> None:
        """Count ``count`` more COMPLETE trials of ``study``; set its current rate."""
        if count > 0:
            self._trials.inc(float(count), tags={"study": study})
        self._rate.set(max(0.0, per_second), tags={"study": study})

    def backtest_started(self) -> None:
        """Count a backtest job that started."""
        self._backtests.inc(1, tags={"outcome": "started"})

    def backtest_completed(self) -> None:
        """Count a backtest job that completed."""
        self._backtests.inc(1, tags={"outcome": "completed"})

    def backtest_failed(self) -> None:
        """Count a backtest job that failed."""
        self._backtests.inc(1, tags={"outcome": "failed"})

    def bars_written(self, count: int, *, bar_size: str) -> None:
        """Count ``count`` bars of ``bar_size`` written to the store."""
        if count > 0:
            self._bars.inc(float(count), tags={"bar_size": bar_size})

    def pacing_wait(self, seconds: float) -> None:
        """Record ``seconds`` of pacing wait."""
        if seconds >= 0:
            self._waits.observe(seconds)
