"""An unmodified ib_async client against ibsim over TCP: connect, contracts, history, streams."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, date, datetime

import pytest
from ib_async import IB, Stock

from ibsim.server import IBSim
from ibsim.testing import eventually_async, running_ibsim

pytestmark = pytest.mark.integration
START = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)  # a Tuesday, NYSE open


@pytest.fixture(scope="module")
def sim() -> Iterator[IBSim]:
    with running_ibsim(start=START, speed=60, account="DU7654321", pacing="off") as handle:
        yield handle


def run(sim: IBSim, scenario, client_id: int = 1):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        ib = IB()
        await ib.connectAsync("127.0.0.1", sim.port, client_id, timeout=5)
        try:
            return await scenario(ib)
        finally:
            ib.disconnect()

    return asyncio.run(main())


def test_connect_is_prompt_and_reports_the_managed_account(sim: IBSim) -> None:
    async def scenario(ib: IB):  # type: ignore[no-untyped-def]
        return ib.isConnected(), ib.managedAccounts(), ib.client.serverVersion()

    assert run(sim, scenario) == (True, ["DU7654321"], 178)


def test_qualify_gets_con_ids_and_unknown_symbols_get_error_200(sim: IBSim) -> None:
    async def scenario(ib: IB):  # type: ignore[no-untyped-def]
        errors: list[tuple[int, int]] = []
        ib.errorEvent += lambda req_id, code, *_: errors.append((req_id, code))
        found = await ib.qualifyContractsAsync(
            Stock("AAPL", "SMART", "USD"),
            Stock("NOSUCH", "SMART", "USD"),
            Stock("BHP", "ASX", "AUD"),
        )
        return found, errors

    (aapl, unknown, bhp), errors = run(sim, scenario)
    assert aapl.conId > 0 and aapl.primaryExchange == "NASDAQ"
    assert unknown is None and any(code == 200 for _, code in errors)
    assert (bhp.exchange, bhp.currency, bhp.primaryExchange) == ("ASX", "AUD", "ASX")


def test_five_years_of_daily_bars_are_realistic_and_deterministic(sim: IBSim) -> None:
    async def scenario(ib: IB):  # type: ignore[no-untyped-def]
        c = Stock("MSFT", "SMART", "USD")
        first = await ib.reqHistoricalDataAsync(c, "", "5 Y", "1 day", "TRADES", True)
        second = await ib.reqHistoricalDataAsync(c, "", "5 Y", "1 day", "TRADES", True)
        return list(first), list(second)

    first, second = run(sim, scenario)
    assert 1240 <= len(first) <= 1270 and first == second
    assert all(b.high >= max(b.open, b.close) and b.low <= min(b.open, b.close) for b in first)
    assert all(isinstance(b.date, date) and b.date.weekday() < 5 for b in first)
    assert all(b.volume > 0 for b in first)


def test_one_minute_bars_for_a_day_with_epoch_dates(sim: IBSim) -> None:
    async def scenario(ib: IB):  # type: ignore[no-untyped-def]
        c = Stock("SPY", "SMART", "USD")
        end = datetime(2024, 3, 4, 21, 0, tzinfo=UTC)
        return list(
            await ib.reqHistoricalDataAsync(c, end, "1 D", "1 min", "TRADES", True, formatDate=2)
        )

    bars = run(sim, scenario)
    assert len(bars) == 390  # a full regular session
    assert bars[0].date == datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
    assert bars[-1].date == datetime(2024, 3, 4, 20, 59, tzinfo=UTC)


def test_keep_up_to_date_bars_stream_at_speed(sim: IBSim) -> None:
    async def scenario(ib: IB):  # type: ignore[no-untyped-def]
        c = Stock("QQQ", "SMART", "USD")
        bars = await ib.reqHistoricalDataAsync(
            c, "", "1800 S", "5 secs", "TRADES", True, keepUpToDate=True
        )
        initial_last = bars[-1].date
        updates: list[bool] = []
        bars.updateEvent += lambda _bars, has_new: updates.append(has_new)
        await eventually_async(lambda: sum(updates) >= 3, timeout=10)
        ib.cancelHistoricalData(bars)
        return initial_last, bars[-1].date, updates

    initial_last, final_last, updates = run(sim, scenario)
    assert final_last > initial_last and sum(updates) >= 3


def test_market_data_ticks_stream_and_snapshots_end(sim: IBSim) -> None:
    async def scenario(ib: IB):  # type: ignore[no-untyped-def]
        c = (await ib.qualifyContractsAsync(Stock("NVDA", "SMART", "USD")))[0]
        ticker = ib.reqMktData(c)
        seen: list[float] = []
        ticker.updateEvent += lambda t: seen.append(t.last)
        await eventually_async(lambda: len(set(seen)) >= 3, timeout=10)
        ib.cancelMktData(c)
        snap = await ib.reqTickersAsync(c)
        return ticker, snap[0]

    ticker, snap = run(sim, scenario)
    assert ticker.bid < ticker.ask and ticker.last > 0
    assert snap.bid > 0 and snap.ask > snap.bid
