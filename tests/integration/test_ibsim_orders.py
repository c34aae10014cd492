"""Orders through ib_async against ibsim: fills, commissions, positions, cancels, partials."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from ib_async import IB, LimitOrder, MarketOrder, Stock

from ibsim.server import IBSim
from ibsim.testing import eventually_async, running_ibsim

pytestmark = pytest.mark.integration
START = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)


@pytest.fixture
def sim() -> Iterator[IBSim]:
    with running_ibsim(start=START, speed=10) as handle:
        yield handle


def run(sim: IBSim, scenario):  # type: ignore[no-untyped-def]
    async def main():  # type: ignore[no-untyped-def]
        ib = IB()
        await ib.connectAsync("127.0.0.1", sim.port, 3, timeout=5)
        try:
            return await scenario(ib)
        finally:
            ib.disconnect()

    return asyncio.run(main())


def test_market_order_fills_with_fixed_commission_and_updates_positions(sim: IBSim) -> None:
    async def scenario(ib: IB):  # type: ignore[no-untyped-def]
        c = (await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD")))[0]
        trade = ib.placeOrder(c, MarketOrder("BUY", 300))
        await eventually_async(trade.isDone)

        def cash_after_the_fill() -> bool:  # the connect snapshot already has values
            cash = [v for v in ib.accountValues() if v.tag == "TotalCashValue"]
            return bool(ib.positions() and cash and float(cash[0].value) < 1_000_000)

        await eventually_async(cash_after_the_fill)
        values = {
            v.tag: float(v.value)
            for v in ib.accountValues()
            if v.currency == "USD" and v.tag != "Currency"
        }
        return trade, ib.positions(), values

    trade, positions, values = run(sim, scenario)
    assert trade.orderStatus.status == "Filled" and trade.orderStatus.filled == 300
    (fill,) = trade.fills
    assert fill.commissionReport.commission == pytest.approx(1.5)  # 300 x 0.005
    assert fill.commissionReport.currency == "USD"
    (position,) = positions
    assert position.position == 300
    assert position.avgCost == pytest.approx(fill.execution.price + 1.5 / 300)
    assert values["NetLiquidation"] == pytest.approx(1_000_000 + values["UnrealizedPnL"], abs=0.02)
    assert values["TotalCashValue"] == pytest.approx(
        1_000_000 - 300 * fill.execution.price - 1.5, abs=0.02
    )


def test_limit_order_rests_then_cancel_ends_cancelled(sim: IBSim) -> None:
    async def scenario(ib: IB):  # type: ignore[no-untyped-def]
        c = (await ib.qualifyContractsAsync(Stock("MSFT", "SMART", "USD")))[0]
        trade = ib.placeOrder(c, LimitOrder("BUY", 10, 1.00))
        await eventually_async(lambda: trade.orderStatus.status == "Submitted")
        ib.cancelOrder(trade.order)
        await eventually_async(trade.isDone)
        return trade

    trade = run(sim, scenario)
    assert trade.orderStatus.status == "Cancelled" and trade.fills == []
    assert any(entry.errorCode == 202 for entry in trade.log)


def test_large_order_fills_in_several_partial_executions(sim: IBSim) -> None:
    async def scenario(ib: IB):  # type: ignore[no-untyped-def]
        c = (await ib.qualifyContractsAsync(Stock("SPY", "SMART", "USD")))[0]
        statuses: list[tuple[str, float]] = []
        trade = ib.placeOrder(c, MarketOrder("SELL", 2500))
        trade.statusEvent += lambda t: statuses.append((t.orderStatus.status, t.orderStatus.filled))
        await eventually_async(trade.isDone)
        await eventually_async(lambda: all(f.commissionReport.execId for f in trade.fills))
        return trade, statuses

    trade, statuses = run(sim, scenario)
    assert [f.execution.shares for f in trade.fills] == [1000, 1000, 500]
    assert ("Submitted", 1000.0) in statuses or ("Submitted", 2000.0) in statuses
    assert trade.orderStatus.status == "Filled"
    assert sum(f.commissionReport.commission for f in trade.fills) == pytest.approx(12.5)


def test_completed_orders_of_an_earlier_session_are_found_by_a_restarted_client(
    sim: IBSim,
) -> None:
    async def first_session(ib: IB):  # type: ignore[no-untyped-def]
        c = (await ib.qualifyContractsAsync(Stock("AAPL", "SMART", "USD")))[0]
        filled = ib.placeOrder(c, MarketOrder("BUY", 20, orderRef="gw-1"))
        resting = ib.placeOrder(c, LimitOrder("BUY", 5, 1.00, orderRef="gw-2"))
        await eventually_async(
            lambda: filled.isDone() and resting.orderStatus.status == "Submitted"
        )
        ib.cancelOrder(resting.order)
        await eventually_async(resting.isDone)
        return {t.order.orderRef: t.order.permId for t in (filled, resting)}

    async def restarted(ib: IB):  # type: ignore[no-untyped-def]
        at_connect = {t.order.orderRef for t in ib.trades()}  # ib_async asks at connect too
        return at_connect, await ib.reqCompletedOrdersAsync(apiOnly=False)

    perm_ids = run(sim, first_session)
    at_connect, completed = run(sim, restarted)  # a new connection, as after a restart
    found = {t.order.orderRef: t for t in completed}
    assert set(found) == {"gw-1", "gw-2"} and at_connect == {"gw-1", "gw-2"}
    assert {ref: t.order.permId for ref, t in found.items()} == perm_ids
    assert found["gw-1"].orderStatus.status == "Filled"
    assert found["gw-1"].order.filledQuantity == 20
    assert found["gw-2"].orderStatus.status == "Cancelled"
    assert found["gw-2"].order.filledQuantity == 0
    assert all(t.contract.symbol == "AAPL" for t in completed)
