"""Split a historical-bar range into the requests IBKR allows (pure functions, no I/O).

IBKR caps how much history one request may cover for each bar size (its duration/bar-size
step table, in :mod:`core.ibrules`). The gateway walks backwards from the end of the range in
the largest allowed chunks; the last (oldest) chunk is shortened to what is left, in a
duration IBKR accepts for that bar size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.barsize import BarSize
from core.errors import ValidationError
from core.ibrules import Duration, duration_allowed, max_chunk

_DAY = 86_400
_YEAR = 365 * _DAY


@dataclass(frozen=True, slots=True, kw_only=True)
class Chunk:
    """One historical request: ``duration`` of bars ending at ``end``."""

    end: datetime
    duration: Duration

    @property
    def start(self) -> datetime:
        """Nominal start of the chunk (``end`` minus the duration's nominal length)."""
        return self.end - timedelta(seconds=self.duration.seconds)


def check_range(start: datetime, end: datetime) -> None:
    """Reject naive or empty ranges.

    Raises:
        ValidationError: naming ``start`` or ``end`` and the fix.
    """
    for name, value in (("start", start), ("end", end)):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError(
                f"{name} must be timezone-aware (UTC); got naive {value!r}", field=name
            )
    if start >= end:
        raise ValidationError(f"start {start} must be before end {end}", field="start")


def largest_duration(bar: BarSize) -> Duration:
    """Return the longest request for ``bar`` bars, in seconds when it is a day or less.

    A duration in seconds is an exact window at IBKR; ``"1 D"`` means "the last trading
    session", which would leave gaps between chunks that end mid-session.
    """
    largest = max_chunk(bar)
    if not bar.is_daily and largest.seconds <= _DAY:
        return Duration(count=largest.seconds, unit="S")
    return largest


def fit_duration(seconds: float, bar: BarSize) -> Duration:
    """Return the shortest duration IBKR accepts for ``bar`` bars covering ``seconds``."""
    largest = largest_duration(bar)
    if seconds >= largest.seconds:
        return largest
    candidates: list[Duration] = []
    if seconds <= _DAY and not bar.is_daily:
        candidates.append(Duration(count=max(1, math.ceil(seconds)), unit="S"))
    days = max(1, math.ceil(seconds / _DAY))
    if days <= 365:
        candidates.append(Duration(count=days, unit="D"))
    candidates.append(Duration(count=max(1, math.ceil(seconds / _YEAR)), unit="Y"))
    for duration in candidates:
        if duration.seconds <= largest.seconds and duration_allowed(duration, bar):
            return duration
    return largest


def plan_chunks(bar: BarSize, start: datetime, end: datetime) -> list[Chunk]:
    """Return the requests covering ``[start, end)``, newest first, with no gaps.

    Daily chunks overlap by one day, and the oldest reaches a day before ``start``: a server
    counts a session in a chunk only when it has closed before the chunk's end and leaves out
    the session on the boundary day, so exact-length chunks could skip a day. The caller
    drops the overlap's duplicates and what falls before ``start``.

    Raises:
        ValidationError: if the range is naive or empty.
    """
    check_range(start, end)
    overlap = timedelta(days=1) if bar.is_daily else timedelta(0)
    chunks: list[Chunk] = []
    cursor = end
    while cursor > start:
        # The same overlap pads the oldest chunk: "N Y" back from the end leaves out the
        # session on the boundary day itself.
        duration = fit_duration((cursor - start + overlap).total_seconds(), bar)
        chunk = Chunk(end=cursor, duration=duration)
        chunks.append(chunk)
        if chunk.start <= start:
            break
        cursor = chunk.start + overlap
    return chunks
