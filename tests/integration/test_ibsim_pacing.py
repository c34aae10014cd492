"""IBKR historical pacing, enforced by ibsim and observed through ib_async's errorEvent.

Every test drives ibsim's simulated clock by hand (a ManualClock): requests made while it
stands still are "at once" however slowly a loaded machine sends them, and the windows slide
only when the test advances the clock. So the tests assert order and counts, never timings.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from ib_async import IB, Stock

from core.clock import ManualClock
from ibsim.server import IBSim
from ibsim.testing import running_ibsim

pytestmark = pytest.mark.integration
START = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
DURATIONS = ("60 S", "120 S", "300 S", "600 S", "900 S", "1200 S", "1800 S")


async def _connect(sim: IBSim) -> tuple[IB, list[tuple[int, int]]]:
    ib = IB()
    await ib.connectAsync("127.0.0.1", sim.port, 1, timeout=5)
    codes: list[tuple[int, int]] = []
    ib.errorEvent += lambda req_id, code, *_: codes.append((req_id, code))
    return ib, codes


async def _history(ib: IB, symbol: str, duration: str, bar: str = "5 secs") -> int:
    bars = await ib.reqHistoricalDataAsync(
        Stock(symbol, "SMART", "USD"), "", duration, bar, "TRADES", True, timeout=10
    )
    return len(bars)


def _pacing(codes: list[tuple[int, int]]) -> int:
    return sum(1 for _, code in codes if code == 162)


def test_identical_request_within_15_seconds_gets_162_and_later_succeeds() -> None:
    clock = ManualClock(START)

    async def scenario(sim: IBSim) -> tuple[int, int, int, int, int]:
        ib, codes = await _connect(sim)
        first = await _history(ib, "AAPL", "300 S")
        repeat = await _history(ib, "AAPL", "300 S")
        violations = _pacing(codes)
        clock.advance(14.9)
        still = await _history(ib, "AAPL", "300 S")
        clock.advance(0.2)  # now 15.1 s after the first request
        later = await _history(ib, "AAPL", "300 S")
        ib.disconnect()
        return first, repeat, violations, still, later + 1000 * (_pacing(codes) - violations)

    with running_ibsim(clock=clock) as sim:
        first, repeat, violations, still, later = asyncio.run(scenario(sim))
    assert first == 60 and repeat == 0 and violations == 1 and still == 0
    assert later // 1000 == 1 and later % 1000 == 60  # only the 14.9 s repeat was refused


def test_five_quick_requests_pass_and_the_sixth_for_one_contract_gets_162() -> None:
    clock = ManualClock(START)

    async def scenario(sim: IBSim) -> tuple[list[int], int, int, int, int, int]:
        ib, codes = await _connect(sim)
        sizes = [await _history(ib, "MSFT", d) for d in DURATIONS[:5]]
        after_five = _pacing(codes)
        sixth = await _history(ib, "MSFT", DURATIONS[5])
        other = await _history(ib, "NVDA", DURATIONS[5])  # another contract is fine
        clock.advance(2.0)  # the two-second window has passed
        seventh = await _history(ib, "MSFT", DURATIONS[6])
        ib.disconnect()
        return sizes, after_five, sixth, other, seventh, _pacing(codes)

    with running_ibsim(clock=clock) as sim:
        sizes, after_five, sixth, other, seventh, violations = asyncio.run(scenario(sim))
    assert all(n > 0 for n in sizes) and after_five == 0
    assert sixth == 0 and other > 0 and seventh > 0 and violations == 1


def test_sixty_first_request_in_ten_minutes_gets_162() -> None:
    symbols = [
        "AAPL",
        "MSFT",
        "NVDA",
        "AMZN",
        "META",
        "GOOGL",
        "AVGO",
        "TSLA",
        "COST",
        "NFLX",
        "AMD",
        "PEP",
        "ADBE",
    ]
    plan = [(s, d) for s in symbols for d in DURATIONS[:5]][:61]

    clock = ManualClock(START)

    async def scenario(sim: IBSim) -> tuple[int, int, int, int]:
        ib, codes = await _connect(sim)
        for symbol, duration in plan[:60]:
            await _history(ib, symbol, duration, bar="30 secs")
        before = _pacing(codes)
        refused = await _history(ib, *plan[60], bar="30 secs")
        after = _pacing(codes)
        clock.advance(600.0)  # the first sixty are ten minutes old
        again = await _history(ib, *plan[60], bar="30 secs")
        ib.disconnect()
        return before, after, refused, again

    with running_ibsim(clock=clock) as sim:
        before, after, refused, again = asyncio.run(scenario(sim))
    assert (before, after, refused) == (0, 1, 0) and again > 0


def test_one_minute_bars_are_never_hard_paced() -> None:
    async def scenario(sim: IBSim) -> tuple[int, list[int]]:
        ib, codes = await _connect(sim)
        sizes = [await _history(ib, "AAPL", "1 D", bar="1 min") for _ in range(12)]
        ib.disconnect()
        return _pacing(codes), sizes

    with running_ibsim(clock=ManualClock(START)) as sim:
        violations, sizes = asyncio.run(scenario(sim))
    assert violations == 0 and all(n == 30 for n in sizes)


def test_pacing_off_allows_everything() -> None:
    async def scenario(sim: IBSim) -> int:
        ib, codes = await _connect(sim)
        for _ in range(8):
            await _history(ib, "AAPL", "300 S")
        ib.disconnect()
        return _pacing(codes)

    with running_ibsim(clock=ManualClock(START), pacing="off") as sim:
        assert asyncio.run(scenario(sim)) == 0


def test_bad_duration_for_bar_size_gets_error_321() -> None:
    async def scenario(sim: IBSim) -> list[int]:
        ib, codes = await _connect(sim)
        bars = await ib.reqHistoricalDataAsync(
            Stock("AAPL", "SMART", "USD"), "", "1 Y", "1 min", "TRADES", True, timeout=1
        )
        ib.disconnect()
        assert not bars
        return [code for _, code in codes]

    with running_ibsim(clock=ManualClock(START)) as sim:
        assert 321 in asyncio.run(scenario(sim))
