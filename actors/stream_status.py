"""What a live bar stream reports about itself, and what one poll of it returns.

A stream is ``live`` while its IB subscription delivers, and ``stale`` from the moment the
subscription is lost (disconnect, 1100, a failed re-subscription) until a re-subscription
succeeds. A runner must not read "no new bars" from a stale stream as "no trading": every
poll returns the status beside the bars. Plain data, no ib_async, no Ray.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import pandas as pd


class StreamState(StrEnum):
    """Whether a stream's subscription is delivering."""

    LIVE = "live"
    STALE = "stale"


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamStatus:
    """One stream's state, for polls, the health record and the metrics.

    Attributes:
        stream_id: The id :meth:`GatewayService.stream_bars` returned.
        instrument: Canonical id of the listing.
        con_id: IB's contract id of the listing.
        bar_size: SCIZOR bar size (``"5s"``).
        state: ``live`` or ``stale``.
        last_bar_at: Start time of the newest completed bar received (None before one).
        updated_at: When IB last sent anything for the stream (the gateway clock's time).
        subscriptions: Successful subscriptions so far (1 after opening).
        failures: Failed re-subscription attempts so far.
        error: Why the stream is stale ("" while live).
        next_retry_at: When the next re-subscription attempt is due (None while live or
            while waiting for the connection to come back).
    """

    stream_id: str
    instrument: str
    con_id: int | None
    bar_size: str
    state: StreamState
    last_bar_at: datetime | None
    updated_at: datetime | None
    subscriptions: int
    failures: int
    error: str
    next_retry_at: datetime | None

    @property
    def stale(self) -> bool:
        """True when the stream is not delivering: no new bars does not mean no trading."""
        return self.state == StreamState.STALE

    def as_dict(self) -> dict[str, Any]:
        """Return the status as plain JSON values."""
        out = asdict(self)
        out["state"] = self.state.value
        out["stale"] = self.stale
        for name in ("last_bar_at", "updated_at", "next_retry_at"):
            value = out[name]
            out[name] = value.isoformat() if value is not None else None
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamBatch:
    """One poll of a stream: the completed bars not returned before, and the status.

    Attributes:
        bars: SCIZOR's bar frame (may be empty).
        status: The stream's state as of this poll; check ``status.stale``.
    """

    bars: pd.DataFrame
    status: StreamStatus
