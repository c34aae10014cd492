"""Coverage manifest, range arithmetic and missing() on exchange calendars."""

from __future__ import annotations

import exchange_calendars as xcals
import numpy as np
import pandas as pd
import pytest

from core.errors import ValidationError
from storage.bars import BarStore
from storage.calendars import calendar_for
from storage.manifest import Manifest, covered_mask, merge_ranges, ranges_from_bars


def T(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def bars_at(index: pd.DatetimeIndex) -> pd.DataFrame:
    n = len(index)
    return pd.DataFrame(
        {"open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": np.full(n, 5.0)},
        index=pd.DatetimeIndex(index, name="ts").as_unit("ns"),
    )


def daily_bars(*dates: str) -> pd.DataFrame:
    return bars_at(pd.DatetimeIndex(list(dates), tz="UTC"))


def session_minutes(calendar: str, first: str, last: str) -> pd.DataFrame:
    """1-minute bars for every minute of every session from ``first`` to ``last``."""
    schedule = xcals.get_calendar(calendar).schedule.loc[first:last]
    index = [
        pd.date_range(o, c, freq="1min", inclusive="left")
        for o, c in zip(schedule["open"], schedule["close"], strict=True)
    ]
    return bars_at(index[0].append(index[1:]))


@pytest.fixture
def bar_store(tmp_path) -> BarStore:
    return BarStore(tmp_path / "bars")


# -- range arithmetic ----------------------------------------------------------------------


def test_merge_ranges_joins_overlapping_and_adjacent_and_drops_empty():
    assert merge_ranges([(5, 7), (0, 2), (2, 3), (6, 9), (10, 10), (11, 12)]) == [
        (0, 3),
        (5, 9),
        (11, 12),
    ]


def test_ranges_from_bars_break_where_a_bar_is_missing():
    assert ranges_from_bars(np.array([0, 10, 20, 40, 50]), length_ns=10) == [(0, 30), (40, 60)]


def test_covered_mask_needs_one_range_to_hold_the_whole_interval():
    ranges = [(0, 10), (10, 20), (30, 40)]
    got = covered_mask(np.array([0, 5, 25, 35, 8]), np.array([10, 15, 31, 40, 8]), ranges)
    # (5, 15) spans two unmerged ranges: callers always pass merged ranges
    assert got.tolist() == [True, False, False, True, True]
    assert covered_mask(np.array([5]), np.array([15]), merge_ranges(ranges)).tolist() == [True]


def test_manifest_json_round_trip():
    manifest = Manifest()
    manifest.add((10, 20), declared=False)
    manifest.add((20, 30), declared=True)

    again = Manifest.from_json(manifest.to_json(instrument="AAPL.NASDAQ", bar_size="1m"))

    assert again.covered == [(10, 30)]
    assert again.declared == [(20, 30)]


# -- coverage ------------------------------------------------------------------------------


def test_coverage_defaults_to_first_bar_to_end_of_last_and_merges_adjacent_writes(bar_store):
    bar_store.write(
        "AAPL.NASDAQ",
        "1m",
        bars_at(pd.date_range("2024-03-01 14:30", periods=30, freq="1min", tz="UTC")),
    )
    bar_store.write(
        "AAPL.NASDAQ",
        "1m",
        bars_at(pd.date_range("2024-03-01 15:00", periods=30, freq="1min", tz="UTC")),
    )
    bar_store.write(
        "AAPL.NASDAQ",
        "1m",
        bars_at(pd.date_range("2024-03-01 18:00", periods=10, freq="1min", tz="UTC")),
    )

    assert bar_store.coverage("aapl.nasdaq", "1m") == [
        (T("2024-03-01 14:30"), T("2024-03-01 15:30")),
        (T("2024-03-01 18:00"), T("2024-03-01 18:10")),
    ]


def test_explicit_covered_range_is_recorded_even_without_bars(bar_store):
    result = bar_store.write(
        "AAPL.NASDAQ",
        "1m",
        bars_at(pd.DatetimeIndex([])),
        covered=(T("2024-03-02"), T("2024-03-04")),
    )

    assert result.rows_received == 0
    assert bar_store.coverage("AAPL.NASDAQ", "1m") == [(T("2024-03-02"), T("2024-03-04"))]


def test_covered_range_must_contain_the_batch(bar_store):
    with pytest.raises(ValidationError) as info:
        bar_store.write(
            "AAPL.NASDAQ",
            "1d",
            daily_bars("2024-03-05"),
            covered=(T("2024-03-01"), T("2024-03-05")),
        )
    assert info.value.field == "covered"
    assert bar_store.read("AAPL.NASDAQ", "1d").empty


def test_missing_or_corrupt_manifest_is_rebuilt_from_data(bar_store, tmp_path):
    bar_store.write("AAPL.NASDAQ", "1d", daily_bars("2024-03-04", "2024-03-05", "2024-03-07"))
    manifest = tmp_path / "bars" / "bar_size=1d" / "instrument=AAPL.NASDAQ" / "_manifest.json"
    assert manifest.is_file()

    manifest.write_text("{ not json")
    assert bar_store.coverage("AAPL.NASDAQ", "1d") == [
        (T("2024-03-04"), T("2024-03-06")),
        (T("2024-03-07"), T("2024-03-08")),
    ]
    manifest.unlink()
    assert bar_store.rebuild_manifest("AAPL.NASDAQ", "1d") == bar_store.coverage(
        "AAPL.NASDAQ", "1d"
    )
    assert manifest.is_file()


# -- missing(): daily ----------------------------------------------------------------------


def test_daily_missing_on_nyse_skips_weekends_and_holidays(bar_store):
    # NYSE: closed 2024-12-25, 2025-01-01 and 2025-01-09 (national day of mourning).
    bar_store.write(
        "AAPL.NASDAQ", "1d", daily_bars("2024-12-23", "2024-12-24", "2024-12-26", "2025-01-02")
    )

    gaps = bar_store.missing("AAPL.NASDAQ", "1d", T("2024-12-23"), T("2025-01-11"))

    # Runs of missing sessions merge across closed days: one request per run, not per day.
    assert gaps == [
        (T("2024-12-27"), T("2025-01-01")),  # 27, 30, 31 (the 1st is a holiday)
        (T("2025-01-03"), T("2025-01-11")),  # 3, 6, 7, 8, 10 (the 9th is a holiday)
    ]


def test_daily_missing_on_asx_uses_australian_holidays(bar_store):
    # ASX: closed 2024-12-25, 2024-12-26 (Boxing Day), 2025-01-01, 2025-01-27 (Australia Day).
    bar_store.write(
        "BHP.ASX", "1d", daily_bars("2024-12-23", "2024-12-24", "2024-12-27", "2025-01-24")
    )

    gaps = bar_store.missing("BHP.ASX", "1d", T("2024-12-23"), T("2025-01-29"), calendar="ASX")

    assert gaps == [
        (T("2024-12-30"), T("2025-01-24")),
        (T("2025-01-28"), T("2025-01-29")),
    ]
    nyse = bar_store.missing("BHP.ASX", "1d", T("2024-12-23"), T("2024-12-28"), calendar="NYSE")
    assert nyse == [(T("2024-12-26"), T("2024-12-27"))]  # Boxing Day trades in New York


def test_daily_missing_ignores_sessions_declared_covered(bar_store):
    bar_store.write(
        "NEW.NYSE", "1d", daily_bars("2024-03-07"), covered=(T("2024-03-01"), T("2024-03-08"))
    )

    gaps = bar_store.missing("NEW.NYSE", "1d", T("2024-02-26"), T("2024-03-12"))

    assert gaps == [(T("2024-02-26"), T("2024-03-01")), (T("2024-03-08"), T("2024-03-12"))]


def test_daily_missing_reports_a_hole_inside_stored_bars(bar_store):
    bar_store.write("AAPL.NASDAQ", "1d", daily_bars("2024-03-04", "2024-03-06"))

    assert bar_store.missing("AAPL.NASDAQ", "1d", T("2024-03-04"), T("2024-03-07")) == [
        (T("2024-03-05"), T("2024-03-06"))
    ]


def test_missing_with_nothing_stored_is_one_range_across_a_holiday(bar_store):
    gaps = bar_store.missing("NONE.NYSE", "1d", T("2024-07-01"), T("2024-07-08"))

    assert gaps == [(T("2024-07-01"), T("2024-07-06"))]  # July 4th closed, inside the run


# -- missing(): intraday -------------------------------------------------------------------


def test_intraday_missing_on_nyse_counts_early_close_as_covered(bar_store):
    # 2024-12-24 closes at 13:00 New York (18:00 UTC); 12-26 is only half fetched.
    bar_store.write("AAPL.NASDAQ", "1m", session_minutes("XNYS", "2024-12-23", "2024-12-24"))
    bar_store.write(
        "AAPL.NASDAQ",
        "1m",
        bars_at(pd.date_range("2024-12-26 14:30", "2024-12-26 17:59", freq="1min", tz="UTC")),
    )

    gaps = bar_store.missing("AAPL.NASDAQ", "1m", T("2024-12-23"), T("2024-12-28"))

    assert gaps == [(T("2024-12-26 14:30"), T("2024-12-27 21:00"))]


def test_intraday_missing_on_asx_straddles_utc_midnight(bar_store):
    # ASX sessions run 23:00-05:00 UTC in summer; 2024-12-24 closes early at 03:10 UTC.
    bar_store.write("BHP.ASX", "5m", session_minutes("XASX", "2024-12-23", "2024-12-24").iloc[::5])

    gaps = bar_store.missing("BHP.ASX", "5m", T("2024-12-22"), T("2025-01-01"), calendar="ASX")

    assert gaps == [(T("2024-12-26 23:00"), T("2024-12-31 03:10"))]  # 27, 30, 31 (early close)


def test_intraday_missing_clips_to_the_requested_range(bar_store):
    gaps = bar_store.missing("NONE.NYSE", "1h", T("2024-03-04 16:00"), T("2024-03-04 18:00"))

    assert gaps == [(T("2024-03-04 16:00"), T("2024-03-04 18:00"))]


def test_intraday_covered_range_marks_a_closed_market_fetched(bar_store):
    bar_store.write(
        "AAPL.NASDAQ",
        "1m",
        bars_at(pd.DatetimeIndex([])),
        covered=(T("2024-03-01"), T("2024-03-09")),
    )

    assert bar_store.missing("AAPL.NASDAQ", "1m", T("2024-03-01"), T("2024-03-12")) == [
        (T("2024-03-11 13:30"), T("2024-03-11 20:00"))  # DST: the US is on EDT from March 10
    ]


def test_missing_rejects_empty_or_naive_ranges(bar_store):
    with pytest.raises(ValidationError):
        bar_store.missing("AAPL.NASDAQ", "1d", T("2024-03-05"), T("2024-03-01"))
    with pytest.raises(ValidationError) as info:
        bar_store.missing("AAPL.NASDAQ", "1d", pd.Timestamp("2024-03-01"), T("2024-03-05"))
    assert info.value.field == "start"


# -- calendar_for --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("exchange", "code"),
    [
        ("NASDAQ", "XNAS"),
        ("nyse", "XNYS"),
        ("ARCA", "XNYS"),
        ("SMART", "XNYS"),
        ("ASX", "XASX"),
        ("XNYS", "XNYS"),
        ("XLON", "XLON"),
    ],
)
def test_calendar_for_maps_ibkr_exchanges(exchange, code):
    assert calendar_for(exchange) == code


def test_calendar_for_unknown_exchange_names_the_field():
    with pytest.raises(ValidationError, match="NASDAQ") as info:
        calendar_for("MOON")
    assert info.value.field == "exchange"
