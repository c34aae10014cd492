"""The gateway's health record and the observer hook that feeds its metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

from actors.stream_status import StreamStatus


class GatewayObserver(Protocol):
    """Receives counts for metrics (the Ray actor feeds ``ray.util.metrics`` from these)."""

    def request(self, kind: str) -> None:
        """Count one request of ``kind`` (``historical``, ``place_order``, ...)."""
        ...

    def error(self, code: int) -> None:
        """Count one IB error ``code``."""
        ...

    def pacing_wait(self, seconds: float) -> None:
        """Record that a request waited ``seconds`` in the pacer."""
        ...

    def connected(self, up: bool) -> None:
        """Record whether the connection is up."""
        ...

    def streams(self, *, live: int, stale: int) -> None:
        """Record how many live bar streams are delivering and how many are stale."""
        ...

    def stream_failure(self) -> None:
        """Count one failed (re-)subscription of a live bar stream."""
        ...


class NoObserver:
    """An observer that ignores everything (the default)."""

    def request(self, kind: str) -> None:
        pass

    def error(self, code: int) -> None:
        pass

    def pacing_wait(self, seconds: float) -> None:
        pass

    def connected(self, up: bool) -> None:
        pass

    def streams(self, *, live: int, stale: int) -> None:
        pass

    def stream_failure(self) -> None:
        pass


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayHealth:
    """A snapshot of the gateway's state, for ``/health`` and the dashboard.

    ``streams`` counts the live bar streams, ``streams_stale`` those not delivering, and
    ``stream_states`` holds each one's :class:`actors.stream_status.StreamStatus`.
    """

    connected: bool
    broker_connectivity: bool
    server_version: int | None
    client_id: int | None
    client_ids_tried: list[int]
    reconnects: int
    last_error_code: int | None
    last_error_message: str
    last_error_time: datetime | None
    errors_by_code: dict[int, int]
    pacing_violations: int
    queue_depth: int
    open_requests: int
    pacing_waits: int
    pacing_wait_seconds: float
    streams: int
    streams_stale: int = 0
    stream_states: tuple[StreamStatus, ...] = ()
    fills_awaiting_commission: int = 0
    fill_conflicts: int = 0

    def as_dict(self) -> dict[str, Any]:
        """Return the record as plain values (for JSON)."""
        out = asdict(self)
        out["last_error_time"] = self.last_error_time.isoformat() if self.last_error_time else None
        out["stream_states"] = [s.as_dict() for s in self.stream_states]
        return out
