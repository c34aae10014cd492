"""IBKR's historical-data rules, stated once for ibsim (which enforces them) and the gateway
(which obeys them).

Sources: IBKR's "Historical Data Limitations" (pacing) and the duration/bar-size step table
(see ``shared/reference/tws-api-notes.md``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from core.barsize import BarSize
from core.errors import ValidationError

# --- pacing (hard limits apply to bars of 30 seconds or less) ------------------------------
IDENTICAL_WINDOW_S = 15.0
"""No identical historical request within this many seconds."""
SAME_CONTRACT_WINDOW_S = 2.0
SAME_CONTRACT_MAX = 5
"""At most this many requests for one contract/exchange/tick type per window (6 violates)."""
ROLLING_WINDOW_S = 600.0
ROLLING_MAX = 60
"""At most this many historical requests in any rolling ten minutes."""
MAX_OPEN_HISTORICAL = 50
"""Simultaneous open historical requests."""
MAX_MESSAGES_PER_S = 50
"""API messages per second over one connection (error 100 above it)."""
CLIENT_MESSAGES_PER_S = 45
"""What a well-behaved client sends at most (ib_async's own throttle)."""
BID_ASK_WEIGHT = 2
"""A BID_ASK request counts twice against the pacing limits."""
MAX_DAILY_YEARS = 10
"""Largest duration, in years, the gateway asks for in one daily-bar request."""

_UNIT_SECONDS = {"S": 1, "D": 86_400, "W": 7 * 86_400, "M": 30 * 86_400, "Y": 365 * 86_400}


@dataclass(frozen=True, slots=True, kw_only=True)
class Duration:
    """An IBKR ``durationStr`` such as ``"5 Y"`` or ``"1800 S"``."""

    count: int
    unit: str

    @property
    def seconds(self) -> int:
        """Nominal length in seconds (months are 30 days, years 365)."""
        return self.count * _UNIT_SECONDS[self.unit]

    def __str__(self) -> str:
        return f"{self.count} {self.unit}"


def parse_duration(text: str) -> Duration:
    """Parse an IBKR ``durationStr``.

    Raises:
        ValidationError: if it is not ``<positive int> <S|D|W|M|Y>``.
    """
    match = re.fullmatch(r"\s*(\d+)\s*([SDWMY])\s*", text)
    if not match or int(match.group(1)) <= 0:
        raise ValidationError(
            f"durationStr {text!r} is invalid; use '<count> <unit>' with unit S, D, W, M or Y",
            field="duration",
        )
    return Duration(count=int(match.group(1)), unit=match.group(2))


# (largest duration in seconds, smallest bar seconds, largest bar seconds) per IBKR's table.
_STEP_TABLE: tuple[tuple[int, int, int], ...] = (
    (60, 1, 60),
    (120, 1, 120),
    (1800, 1, 1800),
    (3600, 5, 3600),
    (14_400, 10, 3 * 3600),
    (28_800, 30, 8 * 3600),
    (86_400, 60, 86_400),
    (2 * 86_400, 120, 86_400),
    (7 * 86_400, 180, 7 * 86_400),
    (30 * 86_400, 1800, 30 * 86_400),
    (365 * 86_400, 86_400, 30 * 86_400),
)


def duration_allowed(duration: Duration, bar: BarSize) -> bool:
    """True when IBKR accepts ``bar`` bars over ``duration`` (its step table).

    Durations longer than a year are accepted for daily (and longer) bars only.
    """
    for max_seconds, smallest, largest in _STEP_TABLE:
        if duration.seconds <= max_seconds:
            return smallest <= bar.seconds <= largest
    return bar.seconds >= 86_400


def max_chunk(bar: BarSize) -> Duration:
    """The longest single request IBKR allows for ``bar`` bars.

    Long ranges are split into chunks of this size by the gateway.
    """
    if bar.seconds >= 86_400:
        # IBKR serves multi-year daily histories in one request ("10 Y").
        return Duration(count=MAX_DAILY_YEARS, unit="Y")
    best: Duration | None = None
    for max_seconds, smallest, largest in _STEP_TABLE:
        if smallest <= bar.seconds <= largest:
            best = _as_duration(max_seconds)
    if best is None:  # pragma: no cover - every supported bar size appears in the table
        raise ValidationError(f"no IBKR duration allows {bar} bars", field="bar_size")
    return best


def _as_duration(seconds: int) -> Duration:
    if seconds < 86_400:
        return Duration(count=seconds, unit="S")
    if seconds % (365 * 86_400) == 0:
        return Duration(count=seconds // (365 * 86_400), unit="Y")
    if seconds % (30 * 86_400) == 0:
        return Duration(count=seconds // (30 * 86_400), unit="M")
    if seconds % (7 * 86_400) == 0:
        return Duration(count=seconds // (7 * 86_400), unit="W")
    return Duration(count=seconds // 86_400, unit="D")
