"""The pacer: schedules every IB API request under IBKR's pacing rules.

IBKR refuses historical-data requests that break its pacing rules (error 162) and disconnects
clients that send more than 50 messages per second (error 100). The pacer makes callers wait
*before* sending instead, so a well-paced gateway never sees either error:

- at most 60 historical requests (weighted) in any rolling ten minutes, for bars of 30 s or less;
- no identical historical request within 15 s (bars of 30 s or less);
- at most 5 requests (weighted) per contract/exchange/tick type within 2 s (30 s bars or less);
- at most 50 historical requests open at once (a slot held until the request completes);
- at most 45 API messages in any one second (every historical request is a message too);
- a ``BID_ASK`` request counts twice against the weighted limits.

Waiting requests are served in priority order, then first come first served. A waiter that is
blocked only by a rule of its own (its contract, its identical twin) does not hold up others;
a waiter blocked by a shared limit (the rolling window, the open cap, the message rate) holds
that limit for itself, so later or lower-priority requests cannot starve it. A
:attr:`Priority.LIVE` order message therefore never waits behind backfill requests, which
only compete with it for message tokens, and those are handed out highest priority first.

The server times a request when it *arrives*, which may be later than the pacer released it
(a busy event loop, the network), so the hard-paced windows of a request are timed from its
*completion* (the answer has arrived, so the request had arrived before): a request still
open holds its place in every window, and its windows start when it completes. No guess of
the network's lag is needed, and a loaded machine cannot make the pacer release early.

The pacer is a plain class with no Ray and no ib_async; it reads time from a
:class:`core.clock.Clock`, so tests drive it with :class:`core.clock.ManualClock`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
from collections import deque
from collections.abc import AsyncIterator, Callable, Hashable
from dataclasses import dataclass

from actors.pacing_rules import (
    GrantEvent,
    PacerStats,
    PacingRules,
    Priority,
    RequestKey,
    lower_bound_seconds,
)
from core.clock import Clock
from core.errors import ValidationError

__all__ = [
    "GrantEvent",
    "Pacer",
    "PacerStats",
    "PacingRules",
    "Priority",
    "RequestKey",
    "lower_bound_seconds",
]

_MSG = "messages"
_OPEN = "open"
_ROLLING = "rolling"


@dataclass(slots=True, kw_only=True)
class _Waiter:
    kind: str
    key: RequestKey | None
    priority: Priority
    seq: int
    weight: int
    needs: frozenset[Hashable]
    enqueued_at: float
    future: asyncio.Future[None]


class _Window:
    """Timestamps with weights inside a sliding window, plus the weight still open.

    Open weight belongs to requests sent but not answered yet: it counts against the limit
    and cannot expire until :meth:`close` gives it its completion time.
    """

    __slots__ = ("entries", "open", "total")

    def __init__(self) -> None:
        self.entries: deque[tuple[float, int]] = deque()
        self.total = 0
        self.open = 0

    def prune(self, now: float, window: float) -> None:
        while self.entries and self.entries[0][0] + window <= now:
            self.total -= self.entries.popleft()[1]

    def add(self, at: float, weight: int) -> None:
        self.entries.append((at, weight))
        self.total += weight

    def add_open(self, weight: int) -> None:
        self.open += weight

    def close(self, at: float, weight: int) -> None:
        """Time ``weight`` of open requests from ``at``, their completion."""
        self.open -= weight
        self.add(at, weight)

    def ready_at(self, *, now: float, window: float, weight: int, limit: int) -> float:
        """When ``weight`` more fits under ``limit`` (``now`` if it fits already).

        ``inf`` when only open requests could make room: they expire once completed.
        """
        excess = self.total + self.open + weight - limit
        if excess <= 0:
            return now
        for at, w in self.entries:
            excess -= w
            if excess <= 0:
                return at + window
        return math.inf


class Pacer:
    """Schedules historical requests and API messages under IBKR's pacing rules.

    Args:
        clock: Source of time and of waiting (``ManualClock`` in tests).
        rules: The limits; IBKR's by default.
        time_scale: Divide the historical-data windows by this factor, to match an ibsim
            running ``speed`` times faster than real time. The message rate is a property of
            the connection and is not scaled.
        on_grant: Called synchronously with a :class:`GrantEvent` for every release.

    Example:
        >>> pacer = Pacer(RealClock())                          # doctest: +SKIP
        >>> async with pacer.historical(RequestKey(contract=265598, bar_size="5s")):
        ...     bars = await ib.reqHistoricalDataAsync(...)
    """

    def __init__(
        self,
        clock: Clock,
        *,
        rules: PacingRules | None = None,
        time_scale: float = 1.0,
        on_grant: Callable[[GrantEvent], None] | None = None,
    ) -> None:
        if time_scale <= 0:
            raise ValidationError(
                f"time_scale must be positive; got {time_scale}", field="time_scale"
            )
        self._clock = clock
        self.rules = rules or PacingRules.ibkr()
        self.time_scale = time_scale
        self._on_grant = on_grant
        r = self.rules
        self._identical_w = r.identical_window_s / time_scale + r.margin_s
        self._contract_w = r.same_contract_window_s / time_scale + r.margin_s
        self._rolling_w = r.rolling_window_s / time_scale + r.margin_s
        self._message_w = r.message_window_s + r.margin_s
        self._rolling = _Window()
        self._messages = _Window()
        self._groups: dict[Hashable, _Window] = {}
        self._identical: dict[RequestKey, float] = {}
        self._open = 0
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._timer: asyncio.Task[None] | None = None
        self._timer_at = math.inf
        self._granted = 0
        self._waits = 0
        self._wait_seconds = 0.0
        self._waits_by_priority: dict[str, int] = {p.name: 0 for p in Priority}

    # --- public API -------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def historical(
        self, key: RequestKey, priority: Priority = Priority.BACKFILL
    ) -> AsyncIterator[None]:
        """Wait until ``key`` may be sent, hold an open-request slot, release it on exit.

        Send the request inside the block and leave the block when its answer (or error)
        has arrived: the open-request slot is held until then, and the request's pacing
        windows start then.
        """
        await self._acquire(kind="historical", key=key, priority=priority, needs=self._needs(key))
        try:
            yield
        finally:
            self._complete(key)
            self._dispatch()

    @contextlib.asynccontextmanager
    async def message(self, priority: Priority = Priority.NORMAL) -> AsyncIterator[None]:
        """Wait for one API message token (for orders, cancels, snapshots, ...)."""
        await self._acquire(kind="message", key=None, priority=priority, needs=frozenset({_MSG}))
        yield

    def next_slot_in(self, key: RequestKey) -> float:
        """Return seconds until a request for ``key`` could be released by the time rules.

        Requests already waiting and the open-request cap (which frees when requests
        complete, not with time) are not counted: this is a lower bound. It is ``inf`` while
        the rules wait for requests still open (their windows start when they complete).
        """
        now = self._clock.monotonic()
        needs = self._needs(key) - {_OPEN}
        ready = self._ready_times(self._weight(key), key, now, needs)
        return max(0.0, max(ready.values(), default=now) - now)

    def stats(self) -> PacerStats:
        """Return counters: releases, how many waited and for how long, queue depth."""
        return PacerStats(
            granted=self._granted,
            waits=self._waits,
            wait_seconds=self._wait_seconds,
            queue_depth=len(self._waiters),
            open_requests=self._open,
            waits_by_priority=dict(self._waits_by_priority),
        )

    # --- scheduling ---------------------------------------------------------------------------

    @staticmethod
    def _needs(key: RequestKey) -> frozenset[Hashable]:
        if key.hard_paced:
            return frozenset({_MSG, _OPEN, _ROLLING, ("group", key.group), ("identical", key)})
        return frozenset({_MSG, _OPEN})

    def _weight(self, key: RequestKey | None) -> int:
        if key is not None and key.what_to_show.upper() == "BID_ASK":
            return self.rules.bid_ask_weight
        return 1

    async def _acquire(
        self, *, kind: str, key: RequestKey | None, priority: Priority, needs: frozenset[Hashable]
    ) -> None:
        loop = asyncio.get_running_loop()
        waiter = _Waiter(
            kind=kind,
            key=key,
            priority=Priority(priority),
            seq=next(self._seq),
            weight=self._weight(key),
            needs=frozenset(needs),
            enqueued_at=self._clock.monotonic(),
            future=loop.create_future(),
        )
        self._waiters.append(waiter)
        self._waiters.sort(key=lambda w: (w.priority, w.seq))
        self._dispatch(now=waiter.enqueued_at)  # released now: it did not wait at all
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif kind == "historical" and key is not None:  # granted, cancelled before use
                self._complete(key)
            self._dispatch()
            raise

    def _ready_times(
        self, weight: int, key: RequestKey | None, now: float, needs: frozenset[Hashable]
    ) -> dict[Hashable, float]:
        """When each limit ``needs`` names would admit the request (inf: on completion)."""
        r = self.rules
        out: dict[Hashable, float] = {}
        if key is not None and key.hard_paced and any(isinstance(n, tuple) for n in needs):
            out.update(self._key_ready_times(weight, key, now))
        for need in needs:
            if need == _MSG:
                self._messages.prune(now, self._message_w)
                out[need] = self._messages.ready_at(
                    now=now, window=self._message_w, weight=1, limit=r.messages_per_window
                )
            elif need == _OPEN:
                out[need] = now if self._open < r.max_open else math.inf
            elif need == _ROLLING:
                self._rolling.prune(now, self._rolling_w)
                out[need] = self._rolling.ready_at(
                    now=now, window=self._rolling_w, weight=weight, limit=r.rolling_max
                )
        return out

    def _key_ready_times(self, weight: int, key: RequestKey, now: float) -> dict[Hashable, float]:
        group = self._groups.get(key.group)
        group_at = now
        if group is not None:
            group.prune(now, self._contract_w)
            group_at = group.ready_at(
                now=now, window=self._contract_w, weight=weight, limit=self.rules.same_contract_max
            )
        last = self._identical.get(key)
        identical_at = now if last is None else max(now, last + self._identical_w)
        return {("group", key.group): group_at, ("identical", key): identical_at}

    def _dispatch(self, now: float | None = None) -> None:
        """Release every waiter the rules allow now, in priority order; arm the timer."""
        now = self._clock.monotonic() if now is None else now
        blocked: set[Hashable] = set()
        next_at = math.inf
        for waiter in list(self._waiters):
            if waiter.future.done():  # cancelled while waiting
                self._waiters.remove(waiter)
                continue
            if waiter.needs & blocked:
                continue
            ready = self._ready_times(waiter.weight, waiter.key, now, waiter.needs)
            late = {need: at for need, at in ready.items() if at > now}
            if late:
                blocked |= late.keys()
                next_at = min(next_at, max(late.values()))
                continue
            self._waiters.remove(waiter)
            self._grant(waiter, now)
        self._arm_timer(next_at, now)
        self._prune_identical(now)

    def _grant(self, waiter: _Waiter, now: float) -> None:
        self._messages.add(now, 1)
        if waiter.kind == "historical":
            self._open += 1
            key = waiter.key
            if key is not None and key.hard_paced:  # timed from completion: see _complete
                self._rolling.add_open(waiter.weight)
                self._groups.setdefault(key.group, _Window()).add_open(waiter.weight)
                self._identical[key] = math.inf
        waited = max(0.0, now - waiter.enqueued_at)
        self._granted += 1
        if waited > 0:
            self._waits += 1
            self._wait_seconds += waited
            self._waits_by_priority[waiter.priority.name] += 1
        waiter.future.set_result(None)
        if self._on_grant is not None:
            self._on_grant(
                GrantEvent(
                    kind=waiter.kind,
                    key=waiter.key,
                    priority=waiter.priority,
                    at=now,
                    waited=waited,
                )
            )

    def _complete(self, key: RequestKey) -> None:
        """Free the open slot of a finished request and start its windows now."""
        self._open -= 1
        if not key.hard_paced:
            return
        now, weight = self._clock.monotonic(), self._weight(key)
        self._rolling.close(now, weight)
        self._groups.setdefault(key.group, _Window()).close(now, weight)
        self._identical[key] = now

    def _arm_timer(self, at: float, now: float) -> None:
        if math.isinf(at):
            return
        if self._timer is not None and not self._timer.done() and self._timer_at <= at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = at
        self._timer = asyncio.get_running_loop().create_task(self._wake(at - now))

    async def _wake(self, delay: float) -> None:
        await self._clock.sleep(delay)
        self._timer_at = math.inf
        self._timer = None
        self._dispatch()

    def _prune_identical(self, now: float) -> None:
        if len(self._identical) > 4096:
            horizon = now - self._identical_w
            self._identical = {k: t for k, t in self._identical.items() if t > horizon}
            self._groups = {g: w for g, w in self._groups.items() if w.entries or w.open}
