"""Exchange trading calendars for the bar store's gap finder.

IBKR names exchanges (``NASDAQ``, ``NYSE``, ``ARCA``, ``SMART``, ``ASX``); ``exchange_calendars``
names calendars by ISO MIC (``XNAS``, ``XNYS``, ``XASX``). :func:`calendar_for` translates the
first into the second, and :func:`sessions` lists the trading sessions of a range.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from core.errors import ValidationError

# IBKR exchange names (and a few common aliases) -> ISO MIC calendar code. SMART routes a US
# stock to whichever venue is best; every US equity venue follows the NYSE session.
_EXCHANGE_CALENDARS: dict[str, str] = {
    "NYSE": "XNYS",
    "ARCA": "XNYS",
    "NYSEARCA": "XNYS",
    "AMEX": "XNYS",
    "NYSEAMERICAN": "XNYS",
    "BATS": "XNYS",
    "IEX": "XNYS",
    "SMART": "XNYS",
    "NASDAQ": "XNAS",
    "ISLAND": "XNAS",
    "ASX": "XASX",
}

# Calendars are built once from this date; older ranges are refused rather than guessed.
_CALENDAR_START = pd.Timestamp("1990-01-02")


def calendar_for(exchange: str) -> str:
    """Return the exchange_calendars code for an IBKR exchange name.

    Args:
        exchange: An IBKR exchange (``"NASDAQ"``, ``"NYSE"``, ``"ARCA"``, ``"SMART"``,
            ``"ASX"``, ...) or a calendar code such as ``"XNYS"``; case-insensitive.

    Returns:
        The calendar code, e.g. ``"XNYS"``.

    Raises:
        ValidationError: if the exchange is neither a known IBKR name nor a calendar code.
    """
    name = exchange.strip().upper()
    if name in _EXCHANGE_CALENDARS:
        return _EXCHANGE_CALENDARS[name]
    if name in _calendar_names():
        return name
    known = ", ".join(sorted(_EXCHANGE_CALENDARS))
    raise ValidationError(
        f"exchange {exchange!r} has no trading calendar; use one of {known} "
        "or an exchange_calendars code such as XNYS",
        field="exchange",
    )


@lru_cache(maxsize=1)
def _calendar_names() -> frozenset[str]:
    return frozenset(xcals.get_calendar_names(include_aliases=True))


@lru_cache(maxsize=16)
def _calendar(code: str) -> xcals.ExchangeCalendar:
    # Building a calendar costs ~0.1 s; cache it per process.
    return xcals.get_calendar(code, start=_CALENDAR_START)


@dataclass(frozen=True, slots=True, kw_only=True)
class Sessions:
    """Trading sessions of a range as parallel int64 arrays of UTC nanoseconds.

    Attributes:
        dates: Session dates at 00:00 UTC (how daily bars are stamped).
        opens: Session open instants.
        closes: Session close instants.
        break_starts: Lunch-break start, or equal to ``closes`` when there is no break.
        break_ends: Lunch-break end, or equal to ``closes`` when there is no break.
    """

    dates: np.ndarray
    opens: np.ndarray
    closes: np.ndarray
    break_starts: np.ndarray
    break_ends: np.ndarray


def sessions(calendar: str, start: pd.Timestamp, end: pd.Timestamp) -> Sessions:
    """Return the sessions of ``calendar`` whose date lies in ``[start.date(), end)``.

    Args:
        calendar: An exchange name or calendar code (see :func:`calendar_for`).
        start: Inclusive UTC start.
        end: Exclusive UTC end.

    Raises:
        ValidationError: if the range begins before the calendar's first session.
    """
    cal = _calendar(calendar_for(calendar))
    first = start.tz_convert(None).normalize()
    last = (end - pd.Timedelta(1, "ns")).tz_convert(None).normalize()
    if first < cal.first_session:
        raise ValidationError(
            f"start {start} is before the {cal.name} calendar's first session "
            f"{cal.first_session.date()}; ask for a later start",
            field="start",
        )
    last = min(last, cal.last_session)
    if last < first:
        empty = np.empty(0, dtype=np.int64)
        return Sessions(
            dates=empty, opens=empty, closes=empty, break_starts=empty, break_ends=empty
        )
    sched = cal.schedule.loc[first:last]
    closes = _ns(sched["close"])
    has_break = sched["break_start"].notna().to_numpy()
    return Sessions(
        dates=sched.index.to_numpy().astype("datetime64[ns]").view(np.int64),
        opens=_ns(sched["open"]),
        closes=closes,
        break_starts=np.where(has_break, _ns(sched["break_start"]), closes),
        break_ends=np.where(has_break, _ns(sched["break_end"]), closes),
    )


def _ns(column: pd.Series) -> np.ndarray:
    values: np.ndarray = column.dt.tz_convert(None).to_numpy().astype("datetime64[ns]")
    return values.view(np.int64)
