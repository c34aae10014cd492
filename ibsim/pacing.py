"""IBKR's pacing rules as plain bookkeeping classes, driven by any :class:`core.clock.Clock`.

Windows are measured on the clock's own monotonic scale, so under a
:class:`~core.clock.ScaledClock` running at speed 600 the ten-minute window lasts one real
second and tests stay fast.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Hashable

from core import ibrules
from core.clock import Clock

PACING_TEXT = (
    "Historical Market Data Service error message:Historical data request pacing violation"
)
OPEN_LIMIT_TEXT = (
    "Historical Market Data Service error message:"
    "Max number of simultaneous historical data requests exceeded (50)"
)
RATE_TEXT = "Max rate of messages per second has been exceeded:max=50 rec=%d (1)"


class HistoricalPacer:
    """Decide whether a historical request breaks IBKR's hard pacing rules.

    Rules (bars of 30 s or less only): no identical request within 15 s; at most five
    requests for one contract/exchange/tick type within 2 s; at most 60 requests in any ten
    minutes. BID_ASK requests count twice. Refused requests are not recorded.
    """

    def __init__(self, clock: Clock, *, enabled: bool = True) -> None:
        self._clock = clock
        self.enabled = enabled
        self._identical: dict[Hashable, float] = {}
        self._per_contract: dict[Hashable, deque[float]] = {}
        self._rolling: deque[float] = deque()

    def violation(
        self,
        *,
        identical_key: Hashable,
        contract_key: Hashable,
        hard_paced: bool,
        weight: int = 1,
    ) -> str | None:
        """Check a request and record it when allowed.

        Returns:
            None when the request may proceed, else a short reason naming the broken rule.
        """
        if not (self.enabled and hard_paced):
            return None
        now = self._clock.monotonic()
        self._expire(now)
        last = self._identical.get(identical_key)
        if last is not None and now - last < ibrules.IDENTICAL_WINDOW_S:
            return "identical request within 15 seconds"
        recent = self._per_contract.setdefault(contract_key, deque())
        if len(recent) + weight > ibrules.SAME_CONTRACT_MAX:
            return "six or more requests for one contract within 2 seconds"
        if len(self._rolling) + weight > ibrules.ROLLING_MAX:
            return "more than 60 requests within ten minutes"
        self._identical[identical_key] = now
        for _ in range(weight):
            recent.append(now)
            self._rolling.append(now)
        return None

    def _expire(self, now: float) -> None:
        while self._rolling and now - self._rolling[0] >= ibrules.ROLLING_WINDOW_S:
            self._rolling.popleft()
        for key, times in list(self._per_contract.items()):
            while times and now - times[0] >= ibrules.SAME_CONTRACT_WINDOW_S:
                times.popleft()
            if not times:
                del self._per_contract[key]
        stale = [k for k, t in self._identical.items() if now - t >= ibrules.IDENTICAL_WINDOW_S]
        for key in stale:
            del self._identical[key]


class OpenRequests:
    """Count simultaneously open historical requests (IBKR allows 50)."""

    def __init__(self, *, limit: int = ibrules.MAX_OPEN_HISTORICAL, enabled: bool = True):
        self.limit = limit
        self.enabled = enabled
        self._open: set[Hashable] = set()

    def open(self, key: Hashable) -> bool:
        """Register an open request; False (and nothing recorded) when over the limit."""
        if self.enabled and len(self._open) >= self.limit:
            return False
        self._open.add(key)
        return True

    def close(self, key: Hashable) -> None:
        """Forget an open request (finished or cancelled)."""
        self._open.discard(key)

    def __len__(self) -> int:
        return len(self._open)


class MessageRate:
    """Count inbound messages per (clock) second; over 50 in any second is a violation."""

    def __init__(self, clock: Clock, *, limit: int = ibrules.MAX_MESSAGES_PER_S) -> None:
        self._clock = clock
        self.limit = limit
        self._times: deque[float] = deque()

    def record(self) -> int | None:
        """Record one message; return the count in the last second if it is over the limit."""
        now = self._clock.monotonic()
        self._times.append(now)
        while now - self._times[0] >= 1.0:
            self._times.popleft()
        return len(self._times) if len(self._times) > self.limit else None
