"""Clocks: real time, or a simulated time that can run faster than real time.

Code that needs "now" or needs to wait takes a :class:`Clock`, so tests and ibsim can run
hours of market time in seconds.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Protocol


class Clock(Protocol):
    """What every clock offers."""

    def now(self) -> datetime:
        """Return the current time (timezone-aware UTC)."""
        ...

    def monotonic(self) -> float:
        """Return seconds on a monotonic scale of this clock's time."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        ...


class RealClock:
    """Wall-clock time."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))


class ScaledClock:
    """Time that starts at ``start`` and runs ``speed`` times faster than real time.

    ``speed=1`` is real time with a shifted origin; ``speed=60`` makes a minute pass per second.
    """

    def __init__(self, *, start: datetime | None = None, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError(f"speed must be positive; got {speed}")
        self._origin = start or datetime.now(UTC)
        if self._origin.utcoffset() is None:
            raise ValueError("start must be timezone-aware (UTC)")
        self._t0 = time.monotonic()
        self.speed = speed

    def now(self) -> datetime:
        return self._origin + timedelta(seconds=self.monotonic())

    def monotonic(self) -> float:
        return (time.monotonic() - self._t0) * self.speed

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) / self.speed)


class ManualClock:
    """Time that moves only when told to (for unit tests)."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2024, 1, 2, 14, 30, tzinfo=UTC)
        self._mono = 0.0

    def now(self) -> datetime:
        return self._now

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        if seconds < 0:
            raise ValueError("a clock cannot go backwards")
        self._mono += seconds
        self._now += timedelta(seconds=seconds)

    async def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))
        await asyncio.sleep(0)
