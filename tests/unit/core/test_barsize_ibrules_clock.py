import asyncio

import pytest

from core.barsize import BAR_SIZES, bar_size, from_ib
from core.clock import ManualClock, ScaledClock
from core.errors import ValidationError
from core.ibrules import duration_allowed, max_chunk, parse_duration


def test_bar_sizes_are_the_documented_spellings():
    assert list(BAR_SIZES) == ["1s", "5s", "30s", "1m", "5m", "15m", "30m", "1h", "1d"]


def test_bar_size_round_trips_through_ibkr_strings():
    for b in BAR_SIZES.values():
        assert from_ib(b.ib) is b
    assert from_ib("5  mins").name == "5m"


def test_unknown_bar_size_error_lists_valid_ones():
    with pytest.raises(ValidationError, match="1s 5s 30s 1m 5m 15m 30m 1h 1d") as info:
        bar_size("2m")
    assert info.value.field == "bar_size"


def test_only_bars_of_30_seconds_or_less_are_hard_paced():
    assert [b.name for b in BAR_SIZES.values() if b.hard_paced] == ["1s", "5s", "30s"]


@pytest.mark.parametrize(
    ("duration", "bar", "allowed"),
    [
        ("60 S", "1s", True),
        ("1800 S", "1s", True),
        ("3600 S", "1s", False),
        ("3600 S", "5s", True),
        ("1 D", "1m", True),
        ("1 D", "30s", False),
        ("2 D", "1m", False),
        ("1 W", "5m", True),
        ("1 M", "30m", True),
        ("1 M", "15m", False),
        ("1 Y", "1d", True),
        ("5 Y", "1d", True),
        ("5 Y", "1h", False),
    ],
)
def test_ibkr_step_table(duration, bar, allowed):
    assert duration_allowed(parse_duration(duration), bar_size(bar)) is allowed


def test_max_chunk_is_itself_allowed_and_the_largest_for_each_bar_size():
    for b in BAR_SIZES.values():
        chunk = max_chunk(b)
        assert duration_allowed(chunk, b)
    assert str(max_chunk(bar_size("1m"))) == "1 D"
    assert str(max_chunk(bar_size("1s"))) == "1800 S"


@pytest.mark.parametrize("text", ["", "5", "Y 5", "0 D", "-1 D", "3 H"])
def test_bad_duration_strings_are_rejected(text):
    with pytest.raises(ValidationError, match="durationStr"):
        parse_duration(text)


def test_manual_clock_moves_only_when_told():
    clock = ManualClock()
    t0, m0 = clock.now(), clock.monotonic()
    asyncio.run(clock.sleep(15))
    assert clock.monotonic() - m0 == 15
    assert (clock.now() - t0).total_seconds() == 15
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_scaled_clock_runs_faster_than_real_time():
    clock = ScaledClock(speed=1000)
    before = clock.monotonic()
    asyncio.run(clock.sleep(50))  # 50 simulated seconds = 0.05 real seconds
    assert clock.monotonic() - before >= 50
    with pytest.raises(ValueError):
        ScaledClock(speed=0)
