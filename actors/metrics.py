"""Ray metrics of the gateway and the order manager (shown in the Ray dashboard / Prometheus).

Created inside the actor, never at import time: ``ray.util.metrics`` needs a running Ray
worker, and importing this module must stay free of side effects.
"""

from __future__ import annotations

from ray.util import metrics

_WAIT_BOUNDARIES = [0.01, 0.05, 0.1, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0, 300.0, 600.0]


class GatewayMetrics:
    """A :class:`actors.gateway_health.GatewayObserver` that records Ray metrics."""

    def __init__(self) -> None:
        self._requests = metrics.Counter(
            "scizor_gateway_requests",
            description="IB requests sent by the gateway, by kind.",
            tag_keys=("kind",),
        )
        self._errors = metrics.Counter(
            "scizor_gateway_errors",
            description="Errors reported by IB, by TWS error code.",
            tag_keys=("code",),
        )
        self._waits = metrics.Histogram(
            "scizor_gateway_pacing_wait_seconds",
            description="Seconds requests waited in the pacer before being sent.",
            boundaries=_WAIT_BOUNDARIES,
        )
        self._wait_total = metrics.Counter(
            "scizor_gateway_pacing_wait_seconds_total",
            description="Total seconds requests waited in the pacer.",
        )
        self._connected = metrics.Gauge(
            "scizor_gateway_connected", description="1 when connected to IB, else 0."
        )
        self._streams = metrics.Gauge(
            "scizor_gateway_streams",
            description="Live bar streams by state: live (delivering) or stale (not).",
            tag_keys=("state",),
        )
        self._stream_failures = metrics.Counter(
            "scizor_gateway_stream_failures",
            description="Failed re-subscriptions of live bar streams (each is retried).",
        )

    def request(self, kind: str) -> None:
        """Count one request of ``kind``."""
        self._requests.inc(1, tags={"kind": kind})

    def error(self, code: int) -> None:
        """Count one IB error ``code``."""
        self._errors.inc(1, tags={"code": str(code)})

    def pacing_wait(self, seconds: float) -> None:
        """Record one pacing wait."""
        self._waits.observe(seconds)
        self._wait_total.inc(seconds)

    def connected(self, up: bool) -> None:
        """Record the connection state."""
        self._connected.set(1.0 if up else 0.0)

    def streams(self, *, live: int, stale: int) -> None:
        """Record the number of live and stale bar streams."""
        self._streams.set(float(live), tags={"state": "live"})
        self._streams.set(float(stale), tags={"state": "stale"})

    def stream_failure(self) -> None:
        """Count one failed re-subscription."""
        self._stream_failures.inc(1)


class TradingMetrics:
    """Ray metrics of the order manager's kill-switch reactions."""

    def __init__(self) -> None:
        self._trips = metrics.Counter(
            "scizor_kill_switch_trips",
            description="Kill-switch trips on a breached loss limit, by limit.",
            tag_keys=("limit",),
        )
        self._halted = metrics.Gauge(
            "scizor_trading_halted",
            description="1 once a loss limit halted trading (set by the order manager).",
        )

    def halted(self, limit: str | None) -> None:
        """Count one trip of ``limit`` and mark trading halted."""
        self._trips.inc(1, tags={"limit": limit or "unknown"})
        self._halted.set(1.0)
