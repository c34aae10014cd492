"""Unit tests of actors.history_plan: chunks IBKR accepts, covering the range with no gaps."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from actors.history_plan import fit_duration, largest_duration, plan_chunks
from core.barsize import BAR_SIZES, bar_size
from core.errors import ValidationError
from core.ibrules import duration_allowed

START = datetime(2019, 1, 1, tzinfo=UTC)
END = datetime(2024, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("name", list(BAR_SIZES))
def test_plan_chunks_cover_the_range_without_gaps_in_allowed_durations(name: str) -> None:
    bar = bar_size(name)
    end = START + timedelta(days=40) if bar.seconds < 60 else END
    chunks = plan_chunks(bar, START, end)
    assert chunks[0].end == end and chunks[-1].start <= START
    for newer, older in itertools.pairwise(chunks):
        assert older.end >= newer.start  # touching or overlapping: never a gap
        assert older.end <= newer.end
    assert all(duration_allowed(c.duration, bar) for c in chunks)


def test_plan_chunks_use_the_largest_chunk_then_a_fitted_last_one() -> None:
    chunks = plan_chunks(bar_size("1m"), START, START + timedelta(days=2, hours=3))
    assert [str(c.duration) for c in chunks] == ["86400 S", "86400 S", "10800 S"]


def test_daily_chunks_overlap_by_a_day_and_span_up_to_ten_years() -> None:
    chunks = plan_chunks(bar_size("1d"), datetime(2005, 1, 1, tzinfo=UTC), END)
    assert str(chunks[0].duration) == "10 Y"
    assert chunks[1].end == chunks[0].start + timedelta(days=1)


def test_largest_duration_is_exact_seconds_for_minute_bars() -> None:
    assert str(largest_duration(bar_size("1m"))) == "86400 S"
    assert str(largest_duration(bar_size("5s"))) == "3600 S"
    assert str(fit_duration(90, bar_size("30s"))) == "90 S"
    assert str(fit_duration(3 * 86_400, bar_size("5m"))) == "3 D"


def test_plan_chunks_reject_naive_or_empty_ranges() -> None:
    with pytest.raises(ValidationError) as err:
        plan_chunks(bar_size("1d"), datetime(2020, 1, 1), END)
    assert err.value.field == "start"
    with pytest.raises(ValidationError, match="before"):
        plan_chunks(bar_size("1d"), END, START)
