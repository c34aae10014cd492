"""IBKR's pacing rules as plain bookkeeping classes.

Historical-data windows are measured on a :class:`core.clock.Clock`'s own monotonic scale, so
under a :class:`~core.clock.ScaledClock` running at speed 600 the ten-minute window lasts one
real second and tests stay fast. The message-rate limit (:class:`MessageRate`) is the
exception: it counts real seconds, as TWS does, whatever the simulation speed.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from core import ibrules
from core.clock import Clock

PACING_TEXT = (
    "Historical Market Data Service error message:Historical data request pacing violation"
)
OPEN_LIMIT_TEXT = (
    "Historical Market Data Service error message:"
    "Max number of simultaneous historical data requests exceeded (50)"
)
RATE_TEXT = "Max rate of messages per second has been exceeded:max=%d rec=%d (1)"


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


@dataclass(frozen=True, slots=True, kw_only=True)
class RateExcess:
    """A message that broke the message-rate limit: warn with error 100, maybe disconnect."""

    count: int
    """Messages received within the trailing second, this one included (error 100's rec=)."""
    close: bool
    """True when the excess has lasted long enough to drop the connection."""


class MessageRate:
    """Count a connection's inbound messages per real second, as TWS does (error 100).

    The rule ibsim applies is a token bucket: a connection holds up to ``limit`` message
    credits and earns ``limit`` per second; a message arriving with no credit left is over
    the rate. So a client may send ``limit`` messages at once, or any steady rate up to
    ``limit`` per second, however its sends bunch up (ib_async's own throttle sends up to 45
    in a burst, then the next 45 a second later). The first excess message in each one-second
    window (consecutive seconds from the first message) gets error 100; the others in that
    window are served without another warning. A connection over the rate in ``close_after``
    consecutive windows is closed: a single burst is only warned about, a client that keeps
    flooding for about ``close_after`` seconds is dropped.

    Args:
        clock: Monotonic seconds of real time (``time.monotonic``; tests pass a fake). Never
            the simulated clock: the limit is per real second whatever the simulation speed.
        limit: Messages allowed per second, and at once (IBKR: 50).
        close_after: Consecutive windows over the rate that close the connection.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        limit: int = ibrules.MAX_MESSAGES_PER_S,
        close_after: int = 3,
    ) -> None:
        self._clock = clock
        self.limit = limit
        self.close_after = close_after
        self._credit = float(limit)
        self._last: float | None = None
        self._origin = 0.0
        self._times: deque[float] = deque()
        self._strikes: deque[int] = deque(maxlen=close_after)

    def record(self) -> RateExcess | None:
        """Record one arriving message; return an excess to report, or None."""
        now = self._clock()
        if self._last is None:
            self._origin = self._last = now
        self._credit = min(self.limit, self._credit + (now - self._last) * self.limit)
        self._last = now
        self._times.append(now)
        while now - self._times[0] >= 1.0:
            self._times.popleft()
        if self._credit >= 1.0 - 1e-9:  # float sums of refills must not cost a credit
            self._credit -= 1.0
            return None
        window = int(now - self._origin)
        if self._strikes and self._strikes[-1] == window:
            return None  # already warned in this window
        self._strikes.append(window)
        first = self._strikes[0]
        sustained = list(self._strikes) == list(range(first, first + self.close_after))
        return RateExcess(count=len(self._times), close=sustained)
