"""endDateTime parsing: every format IBKR accepts, zones honoured, bad input refused."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ibsim.history import HistoryError, parse_end

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
US_OPEN = datetime(2026, 11, 17, 15, 0, tzinfo=UTC)  # 10:00 in New York (EST, UTC-5)
ASX = datetime(2026, 11, 16, 23, 0, tzinfo=UTC)  # 10:00 in Sydney (AEDT, UTC+11)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("20261117 10:00:00 US/Eastern", US_OPEN),
        ("20261117 10:00:00 America/New_York", US_OPEN),
        ("20261117 15:00:00 UTC", US_OPEN),
        ("20261117-15:00:00", US_OPEN),
        ("20261117 15:00:00", US_OPEN),  # no zone: the login zone, UTC by default
        ("20261117 10:00:00 Australia/Sydney", ASX),
        ("20261116-23:00:00", ASX),
        ("  20261117 15:00:00 UTC  ", US_OPEN),
    ],
)
def test_end_formats_ibkr_accepts_name_the_same_instant(text: str, expected: datetime) -> None:
    assert parse_end(text, NOW) == expected


def test_blank_end_is_now() -> None:
    assert parse_end("", NOW) == NOW
    assert parse_end("   ", NOW) == NOW


def test_end_without_a_zone_is_read_in_the_login_zone() -> None:
    assert parse_end("20261117 10:00:00", NOW, login_zone="US/Eastern") == US_OPEN
    assert parse_end("20261117 10:00:00", NOW, login_zone="Australia/Sydney") == ASX
    # the dash form is UTC whatever the login zone
    assert parse_end("20261117-15:00:00", NOW, login_zone="Australia/Sydney") == US_OPEN


def test_a_bare_date_ends_at_midnight_after_it_in_the_login_zone() -> None:
    assert parse_end("20261117", NOW) == datetime(2026, 11, 18, tzinfo=UTC)
    assert parse_end("20261117", NOW, login_zone="US/Eastern") == datetime(
        2026, 11, 18, 5, tzinfo=UTC
    )


@pytest.mark.parametrize("zone", ["Mars/Olympus", "America", "Eastern/US", "../etc/passwd"])
def test_an_unknown_zone_is_error_321_naming_the_zone(zone: str) -> None:
    with pytest.raises(HistoryError) as caught:
        parse_end(f"20261117 10:00:00 {zone}", NOW)
    assert caught.value.code == 321 and f"unknown time zone '{zone}'" in caught.value.text


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-17 10:00:00",
        "20261117 10:00",
        "20261117-15:00:00 UTC",
        "20261317 10:00:00 UTC",
        "20261117 25:00:00 UTC",
        "yesterday",
    ],
)
def test_other_shapes_are_error_321_quoting_the_text(text: str) -> None:
    with pytest.raises(HistoryError) as caught:
        parse_end(text, NOW)
    assert caught.value.code == 321 and repr(text.strip()) in caught.value.text
