"""endDateTime in every format IBKR accepts, through ib_async over TCP, for US and ASX bars.

One instant written with a zone name, as UTC with a dash, as UTC by name, without a zone (the
TWS login zone) or blank (now) must select the same bars; an unknown zone is error 321.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from ib_async import IB, BarData, Stock

from core.clock import ManualClock
from ibsim.server import IBSim
from ibsim.testing import running_ibsim

pytestmark = pytest.mark.integration
NOW = datetime(2026, 11, 17, 15, 0, tzinfo=UTC)  # a Tuesday: 10:00 in New York
NEW_YORK, SYDNEY = ZoneInfo("America/New_York"), ZoneInfo("Australia/Sydney")
US_ENDS = (
    "20261117 10:00:00 US/Eastern",
    "20261117 10:00:00 America/New_York",
    "20261117 15:00:00 UTC",
    "20261117-15:00:00",
    "20261117 15:00:00",  # no zone: the login zone, UTC unless ibsim is told otherwise
    "",  # now
)
ASX_ENDS = (  # 10:30 in Sydney (AEDT, UTC+11) is 23:30 UTC the day before
    "20261117 10:30:00 Australia/Sydney",
    "20261116-23:30:00",
    "20261116 23:30:00 UTC",
    "20261116 23:30:00",
)


@pytest.fixture(scope="module")
def sim() -> Iterator[IBSim]:
    with running_ibsim(clock=ManualClock(NOW), pacing="off") as handle:
        yield handle


def _history(
    port: int, contract: Stock, ends: tuple[str, ...], *, timeout: float = 10
) -> tuple[list[list[BarData]], list[tuple[int, str]]]:
    async def scenario() -> tuple[list[list[BarData]], list[tuple[int, str]]]:
        ib = IB()
        await ib.connectAsync("127.0.0.1", port, 1, timeout=5)
        errors: list[tuple[int, str]] = []
        ib.errorEvent += lambda _req, code, text, *_: errors.append((code, text))
        try:
            replies = [
                list(
                    await ib.reqHistoricalDataAsync(
                        contract, end, "1800 S", "30 secs", "TRADES", True, timeout=timeout
                    )
                )
                for end in ends
            ]
        finally:
            ib.disconnect()
        return replies, errors

    return asyncio.run(scenario())


def test_every_us_end_format_names_the_same_half_hour(sim: IBSim) -> None:
    replies, errors = _history(sim.port, Stock("AAPL", "SMART", "USD"), US_ENDS)
    assert [code for code, _ in errors if code < 2100] == []
    first = replies[0]
    assert len(first) == 60 and all(reply == first for reply in replies)
    assert first[0].date == datetime(2026, 11, 17, 9, 30, tzinfo=NEW_YORK)
    assert first[-1].date == datetime(2026, 11, 17, 9, 59, 30, tzinfo=NEW_YORK)


def test_every_asx_end_format_names_the_first_half_hour_in_sydney(sim: IBSim) -> None:
    replies, errors = _history(sim.port, Stock("BHP", "ASX", "AUD"), ASX_ENDS)
    assert [code for code, _ in errors if code < 2100] == []
    first = replies[0]
    assert len(first) == 60 and all(reply == first for reply in replies)
    assert first[0].date == datetime(2026, 11, 17, 10, 0, tzinfo=SYDNEY)


def test_an_end_without_a_zone_is_read_in_the_configured_login_zone() -> None:
    with running_ibsim(clock=ManualClock(NOW), pacing="off", time_zone="Australia/Sydney") as s:
        replies, _ = _history(
            s.port, Stock("BHP", "ASX", "AUD"), ("20261117 10:30:00", ASX_ENDS[0])
        )
    local, named = replies
    assert len(local) == 60 and local == named
    assert local[0].date == datetime(2026, 11, 17, 10, 0, tzinfo=SYDNEY)


def test_an_unknown_zone_is_error_321_naming_it(sim: IBSim) -> None:
    # ib_async files 321 under warnings and lets the request run to its timeout: keep it short.
    replies, errors = _history(
        sim.port, Stock("AAPL", "SMART", "USD"), ("20261117 10:00:00 Mars/Olympus",), timeout=1
    )
    assert replies == [[]]
    (text,) = [text for code, text in errors if code == 321]
    assert "Mars/Olympus" in text
