"""Fakes for collection unit tests: a deterministic bar source shaped like the gateway."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import pytest

from core.errors import NotConnected
from core.types import Instrument

COLUMNS = ["open", "high", "low", "close", "volume", "wap", "bar_count"]


class FakeBars:
    """Daily bars on the XNYS calendar (00:00 UTC of each session), recording every request.

    ``fail_first`` makes the first N calls raise ``NotConnected`` (a dropped gateway).
    """

    def __init__(self, *, fail_first: int = 0, error: Exception | None = None) -> None:
        self.calls: list[tuple[str, datetime, datetime]] = []
        self.fail_first = fail_first
        self.error = error
        self._cal = xcals.get_calendar("XNYS")

    def __call__(
        self, instrument: Instrument, *, bar_size: str, start: datetime, end: datetime
    ) -> pd.DataFrame:
        self.calls.append((instrument.symbol, start, end))
        if self.error is not None:
            raise self.error
        if self.fail_first > 0:
            self.fail_first -= 1
            raise NotConnected("gateway dropped the connection")
        first = pd.Timestamp(start).tz_convert(None).normalize()
        last = (pd.Timestamp(end) - pd.Timedelta(days=1)).tz_convert(None).normalize()
        days = self._cal.sessions_in_range(first, last)
        index = pd.DatetimeIndex(days).tz_localize("UTC").rename("ts")
        n = len(index)
        close = 100.0 + np.arange(n, dtype=float)
        return pd.DataFrame(
            {
                "open": close,
                "high": close + 1,
                "low": close - 1,
                "close": close,
                "volume": np.full(n, 1000.0),
                "wap": close,
                "bar_count": np.full(n, 10, dtype=np.int64),
            },
            index=index,
        )


@pytest.fixture
def fake_bars() -> Callable[..., FakeBars]:
    """Build a :class:`FakeBars` source."""
    return FakeBars
