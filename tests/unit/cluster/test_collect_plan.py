"""Collection planning and per-symbol work against a real Parquet store and a fake source."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import exchange_calendars as xcals
import pandas as pd
import pytest

from cluster import collect_plan as cp
from core.errors import BrokerError, NotFound, ParameterError, ValidationError
from core.types import Instrument
from storage.bars import BarStore

AAPL = Instrument(symbol="AAPL", primary_exchange="NASDAQ")
START = datetime(2024, 1, 1, tzinfo=UTC)
END = datetime(2024, 4, 1, tzinfo=UTC)
NO_SLEEP: Any = lambda _s: None  # noqa: E731


def sessions(start: datetime, end: datetime) -> pd.DatetimeIndex:
    first = pd.Timestamp(start).tz_convert(None)
    last = pd.Timestamp(end).tz_convert(None) - pd.Timedelta("1D")
    days = xcals.get_calendar("XNYS").sessions_in_range(first, last)
    return pd.DatetimeIndex(days).tz_localize("UTC")


def target(start: datetime = START, end: datetime = END) -> cp.Target:
    return cp.Target(instrument=AAPL, bar_size="1d", start=start, end=end)


def test_window_defaults_to_years_before_midnight_today() -> None:
    now = datetime(2025, 3, 5, 15, 30, tzinfo=UTC)
    assert cp.window(now=now, years=5) == (
        datetime(2020, 3, 5, tzinfo=UTC),
        datetime(2025, 3, 5, tzinfo=UTC),
    )


def test_window_handles_leap_day_and_explicit_bounds() -> None:
    now = datetime(2024, 2, 29, 1, tzinfo=UTC)
    assert cp.window(now=now, years=1)[0] == datetime(2023, 2, 28, tzinfo=UTC)
    assert cp.window(now=now, years=3, start=START, end=END) == (START, END)


def test_window_rejects_empty_or_naive_ranges() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    with pytest.raises(ParameterError, match="must be before"):
        cp.window(now=now, years=1, start=END, end=START)
    with pytest.raises(ParameterError, match="timezone-aware"):
        cp.window(now=now, years=1, start=datetime(2024, 1, 1))
    with pytest.raises(ParameterError, match="years must be positive"):
        cp.window(now=now, years=0)


def test_targets_check_bar_size_and_calendar_follows_listing() -> None:
    bhp = Instrument(symbol="BHP", exchange="ASX", primary_exchange="ASX", currency="AUD")
    built = cp.targets([AAPL, bhp], bar_size="1d", start=START, end=END)
    assert [t.calendar for t in built] == ["NASDAQ", "ASX"]
    with pytest.raises(ValidationError, match="bar_size"):
        cp.targets([AAPL], bar_size="2d", start=START, end=END)


@pytest.mark.parametrize(("n", "workers"), [(1, 4), (50, 4), (337, 4), (1000, 2), (9, 8)])
def test_batches_cover_every_item_once_within_size_bounds(n: int, workers: int) -> None:
    items = list(range(n))
    out = cp.batches(items, workers=workers)
    assert sorted(x for b in out for x in b) == items
    sizes = [len(b) for b in out]
    assert max(sizes) - min(sizes) <= 1
    assert max(sizes) <= 20
    if n >= 8:
        assert min(sizes) >= 7  # even split of >= 8-item batches


def test_collect_one_fetches_missing_then_nothing_on_rerun(tmp_path: Path, fake_bars: Any) -> None:
    store, source = BarStore(tmp_path), fake_bars()
    first = cp.collect_one(target(), store=store, fetch=source, sleep=NO_SLEEP)
    expected = sessions(START, END)
    assert (first.status, first.bars_written, first.ranges) == ("done", len(expected), 1)
    assert store.read("AAPL.NASDAQ", "1d").index.equals(expected.rename("ts"))
    second = cp.collect_one(target(), store=store, fetch=source, sleep=NO_SLEEP)
    assert (second.status, second.bars_written) == ("up_to_date", 0)
    assert len(source.calls) == 1


def test_collect_one_extends_only_the_new_range(tmp_path: Path, fake_bars: Any) -> None:
    store, source = BarStore(tmp_path), fake_bars()
    cp.collect_one(target(), store=store, fetch=source, sleep=NO_SLEEP)
    later = datetime(2024, 5, 1, tzinfo=UTC)
    result = cp.collect_one(target(end=later), store=store, fetch=source, sleep=NO_SLEEP)
    assert result.bars_written == len(sessions(END, later))
    assert source.calls[-1][1] == END  # asked only for April
    stored = store.read("AAPL.NASDAQ", "1d")
    assert stored.index.is_unique and stored.index.equals(sessions(START, later).rename("ts"))


def test_collect_one_retries_transient_failures_with_backoff(
    tmp_path: Path, fake_bars: Any
) -> None:
    waits: list[float] = []
    source = fake_bars(fail_first=2)
    policy = cp.RetryPolicy(attempts=3, backoff=0.5)
    result = cp.collect_one(
        target(), store=BarStore(tmp_path), fetch=source, retry=policy, sleep=waits.append
    )
    assert (result.status, result.attempts) == ("done", 3)
    assert waits == [0.5, 1.0]


def test_collect_one_gives_up_after_bounded_attempts(tmp_path: Path, fake_bars: Any) -> None:
    source = fake_bars(fail_first=10)
    policy = cp.RetryPolicy(attempts=2, backoff=0.1)
    result = cp.collect_one(
        target(), store=BarStore(tmp_path), fetch=source, retry=policy, sleep=NO_SLEEP
    )
    assert (result.status, result.attempts) == ("failed", 2)
    assert result.error is not None and "NotConnected" in result.error


@pytest.mark.parametrize(
    "error", [NotFound("AAPL: no security definition"), BrokerError(321, "bad duration")]
)
def test_collect_one_does_not_retry_permanent_errors(
    tmp_path: Path, fake_bars: Any, error: Exception
) -> None:
    source = fake_bars(error=error)
    result = cp.collect_one(target(), store=BarStore(tmp_path), fetch=source, sleep=NO_SLEEP)
    assert (result.status, result.attempts, len(source.calls)) == ("failed", 1, 1)


def test_clip_drops_bars_outside_the_requested_range(fake_bars: Any) -> None:
    frame = fake_bars()(AAPL, bar_size="1d", start=START, end=END)
    mid = datetime(2024, 2, 1, tzinfo=UTC)
    clipped = cp.clip(frame, START, mid)
    assert clipped.index.max() < pd.Timestamp(mid)
    assert len(clipped) == len(sessions(START, mid))


def test_tally_counts_statuses_bars_and_failures() -> None:
    tally = cp.Tally(total=3)
    tally.add(cp.ItemResult(instrument="A.ASX", bar_size="1d", status="done", bars_written=10))
    tally.add(cp.ItemResult(instrument="B.ASX", bar_size="1d", status="up_to_date"))
    tally.add(cp.ItemResult(instrument="C.ASX", bar_size="1d", status="failed", error="boom"))
    rows = dict(tally.rows())
    assert (rows["done"], rows["up_to_date"], rows["failed"], rows["total"]) == ("1", "1", "1", "3")
    assert rows["bars written"] == "10"
    assert tally.failures == {"C.ASX 1d": "boom"}
    assert tally.finished_items == 3 and tally.failed == 1


def test_per_session_splits_intraday_gaps_at_session_bounds() -> None:
    # Fri 2024-03-08 .. Tue 2024-03-12 (DST starts Sun 10 March: opens move 14:30 -> 13:30 UTC)
    gap = (datetime(2024, 3, 8, tzinfo=UTC), datetime(2024, 3, 13, tzinfo=UTC))
    spans = cp.per_session([gap], bar_size="1m", calendar="NASDAQ")
    assert spans == [
        (datetime(2024, 3, 8, 14, 30, tzinfo=UTC), datetime(2024, 3, 8, 21, tzinfo=UTC)),
        (datetime(2024, 3, 11, 13, 30, tzinfo=UTC), datetime(2024, 3, 11, 20, tzinfo=UTC)),
        (datetime(2024, 3, 12, 13, 30, tzinfo=UTC), datetime(2024, 3, 12, 20, tzinfo=UTC)),
    ]


def test_per_session_clips_partial_sessions_and_keeps_daily_gaps() -> None:
    gap = (datetime(2024, 3, 8, 18, tzinfo=UTC), datetime(2024, 3, 11, 15, tzinfo=UTC))
    assert cp.per_session([gap], bar_size="30s", calendar="XNYS") == [
        (datetime(2024, 3, 8, 18, tzinfo=UTC), datetime(2024, 3, 8, 21, tzinfo=UTC)),
        (datetime(2024, 3, 11, 13, 30, tzinfo=UTC), datetime(2024, 3, 11, 15, tzinfo=UTC)),
    ]
    assert cp.per_session([gap], bar_size="1d", calendar="XNYS") == [gap]
