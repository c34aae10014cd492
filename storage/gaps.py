"""Find the trading sessions a symbol's stored bars do not cover yet.

Works on int64 UTC nanoseconds throughout; :class:`storage.bars.BarStore` converts at the
edges. See :meth:`storage.bars.BarStore.missing` for the rules.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from storage.calendars import sessions
from storage.manifest import Range, covered_mask

_DAY_NS = 86_400 * 1_000_000_000


def daily_gaps(
    stored: np.ndarray, declared: list[Range], lo: int, hi: int, *, calendar: str
) -> list[Range]:
    """Return missing daily sessions in ``[lo, hi)`` as merged ``[date, date + n days)`` ranges.

    Args:
        stored: Timestamps of the stored daily bars (00:00 UTC of their session dates).
        declared: Ranges callers declared fetched; sessions inside them are not missing.
        lo: Inclusive start, UTC ns.
        hi: Exclusive end, UTC ns.
        calendar: Exchange name or calendar code.
    """
    days = sessions(calendar, _stamp(lo), _stamp(hi)).dates
    days = days[(days + _DAY_NS > lo) & (days < hi)]
    starts, ends = np.maximum(days, lo), np.minimum(days + _DAY_NS, hi)
    missing = ~np.isin(days, stored) & ~covered_mask(starts, ends, declared)
    return [(int(days[a]), int(days[b]) + _DAY_NS) for a, b in _runs(missing)]


def intraday_gaps(covered: list[Range], lo: int, hi: int, *, calendar: str) -> list[Range]:
    """Return sessions whose trading hours in ``[lo, hi)`` are not all inside ``covered``.

    A lunch break (where the exchange has one) need not be covered. Consecutive missing
    sessions merge into ``[open of the first, close of the last)``, clipped to ``[lo, hi)``.
    """
    # Widen the date query by a day: a session's hours can straddle a UTC midnight.
    found = sessions(calendar, _stamp(max(lo - _DAY_NS, 0)), _stamp(hi + _DAY_NS))
    opens, closes = np.maximum(found.opens, lo), np.minimum(found.closes, hi)
    live = opens < closes
    morning_end = np.minimum(found.break_starts, closes)
    afternoon_start = np.maximum(found.break_ends, opens)
    missing = live & ~(
        covered_mask(opens, morning_end, covered) & covered_mask(afternoon_start, closes, covered)
    )
    return [(int(opens[a]), int(closes[b])) for a, b in _runs(missing)]


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Return ``(first, last)`` index pairs of each run of consecutive True values."""
    idx = np.flatnonzero(mask)
    if len(idx) == 0:
        return []
    cuts = np.flatnonzero(np.diff(idx) > 1)
    firsts = idx[np.r_[0, cuts + 1]]
    lasts = idx[np.r_[cuts, len(idx) - 1]]
    return list(zip(firsts.tolist(), lasts.tolist(), strict=True))


def _stamp(ns: int) -> pd.Timestamp:
    return pd.Timestamp(ns, tz="UTC")
