"""Trading against ibsim through ib_async (and the official client) over TCP: modifying
orders, time in force, the margin check, fills against bar volume, completed orders and the
nightly restart.

Simulated time is a ManualClock moved by the test, so a one-minute bar (whose volume an order
may take a fraction of) only ends when the test says so.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from ib_async import IB, LimitOrder, MarketOrder, Stock, Trade
from ibapi.client import EClient
from ibapi.contract import Contract
from ibapi.order import Order
from ibapi.wrapper import EWrapper

from core.clock import ManualClock
from ibsim.server import IBSim
from ibsim.testing import eventually, eventually_async, running_ibsim

pytestmark = pytest.mark.integration
START = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)  # a Tuesday, NYSE open (closes 21:00 UTC)
PARTICIPATION = 0.01
MARGIN_TEXT = "Order rejected - reason:We are unable to accept your order. Your Available Funds"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def sim(clock: ManualClock) -> Iterator[IBSim]:
    with running_ibsim(clock=clock, participation=PARTICIPATION, control_port=0) as handle:
        yield handle


def advance(sim: IBSim, clock: ManualClock, seconds: float) -> None:
    """Move simulated time on the server's loop (the matching pass reads it there)."""
    sim.call(lambda: clock.advance(seconds))


def bar_cap(sim: IBSim, symbol: str) -> Decimal:
    """What one order may take of the current bar: the participation or the 1000 chunk."""
    info = sim.world.get(symbol)
    assert info is not None
    quote = sim.market.quote(info, sim.clock.now())
    return min(Decimal(1000), Decimal(int(PARTICIPATION * quote.bar_volume)))


def run(sim: IBSim, scenario: Callable[[IB], Any], client_id: int = 3) -> Any:
    async def main() -> Any:
        ib = IB()
        await ib.connectAsync("127.0.0.1", sim.port, client_id, timeout=5)
        try:
            return await scenario(ib)
        finally:
            ib.disconnect()

    return asyncio.run(main())


async def _stock(ib: IB, symbol: str) -> Stock:
    return (await ib.qualifyContractsAsync(Stock(symbol, "SMART", "USD")))[0]


def _errors(ib: IB) -> list[tuple[int, int, str]]:
    seen: list[tuple[int, int, str]] = []
    ib.errorEvent += lambda req_id, code, text, *_: seen.append((req_id, code, text))
    return seen


# ---- modification ---------------------------------------------------------------------------
def test_modifying_a_partly_filled_order_keeps_its_fills_and_permid(
    sim: IBSim, clock: ManualClock
) -> None:
    first_cap = bar_cap(sim, "SPY")

    async def scenario(ib: IB) -> tuple[Trade, int, list[float]]:
        c = await _stock(ib, "SPY")
        trade = ib.placeOrder(c, MarketOrder("BUY", float(first_cap * 5)))
        await eventually_async(lambda: trade.orderStatus.filled == float(first_cap))
        perm_id = trade.order.permId
        trade.order.totalQuantity = float(first_cap) + 7  # down to 7 more than it has
        ib.placeOrder(c, trade.order)
        await eventually_async(lambda: trade.orderStatus.remaining == 7)
        assert not trade.isDone() and len(trade.fills) == 1
        await asyncio.to_thread(advance, sim, clock, 60)  # next bar: room for the 7
        await eventually_async(trade.isDone)
        await eventually_async(lambda: all(f.commissionReport.execId for f in trade.fills))
        return trade, perm_id, [p.position for p in ib.positions()]

    trade, perm_id, positions = run(sim, scenario)
    assert trade.orderStatus.status == "Filled" and trade.order.permId == perm_id
    assert [f.execution.shares for f in trade.fills] == [float(first_cap), 7.0]
    assert [f.execution.cumQty for f in trade.fills] == [float(first_cap), float(first_cap) + 7]
    assert {f.execution.permId for f in trade.fills} == {perm_id}
    value = sum(f.execution.shares * f.execution.price for f in trade.fills)
    assert trade.orderStatus.avgFillPrice == pytest.approx(value / (float(first_cap) + 7))
    assert positions == [float(first_cap) + 7]
    assert any(entry.message == "Modify" for entry in trade.log)


def test_modifying_a_resting_limit_reprices_it_and_it_fills(sim: IBSim) -> None:
    async def scenario(ib: IB) -> tuple[Trade, int]:
        c = await _stock(ib, "AAPL")
        trade = ib.placeOrder(c, LimitOrder("BUY", 10, 1.00))
        await eventually_async(lambda: trade.orderStatus.status == "Submitted")
        perm_id = trade.order.permId
        trade.order.lmtPrice = 10_000.0
        ib.placeOrder(c, trade.order)
        await eventually_async(trade.isDone)
        return trade, perm_id

    trade, perm_id = run(sim, scenario)
    assert trade.orderStatus.status == "Filled" and trade.orderStatus.filled == 10
    assert trade.order.permId == perm_id and len(trade.fills) == 1


def test_re_sending_a_filled_order_is_refused_with_104_and_a_cancelled_one_with_103(
    sim: IBSim,
) -> None:
    async def scenario(ib: IB) -> tuple[Trade, Trade, list[tuple[int, int, str]], int]:
        errors = _errors(ib)
        c = await _stock(ib, "AAPL")
        filled = ib.placeOrder(c, MarketOrder("BUY", 20))
        cancelled = ib.placeOrder(c, LimitOrder("BUY", 5, 1.00))
        await eventually_async(
            lambda: filled.isDone() and cancelled.orderStatus.status == "Submitted"
        )
        ib.cancelOrder(cancelled.order)
        await eventually_async(cancelled.isDone)
        # ib_async's IB.placeOrder refuses to re-send a done order; its client sends it.
        filled.order.totalQuantity = 40
        ib.client.placeOrder(filled.order.orderId, c, filled.order)
        cancelled.order.lmtPrice = 10_000.0
        ib.client.placeOrder(cancelled.order.orderId, c, cancelled.order)
        await eventually_async(lambda: {103, 104} <= {code for _, code, _ in errors})
        positions = [p.position for p in ib.positions()]
        return filled, cancelled, errors, int(sum(positions))

    filled, cancelled, errors, held = run(sim, scenario)
    assert (filled.order.orderId, 104, "Can't modify a filled order.") in errors
    assert (cancelled.order.orderId, 103, "Duplicate order id") in errors
    assert filled.orderStatus.filled == 20 and len(filled.fills) == 1
    assert cancelled.orderStatus.status == "Cancelled" and cancelled.fills == []
    assert held == 20  # neither re-sent order traded


# ---- time in force ----------------------------------------------------------------------
def test_day_order_expires_at_the_close_and_gtc_stays_across_days(
    sim: IBSim, clock: ManualClock
) -> None:
    async def scenario(ib: IB) -> tuple[Trade, Trade, str]:
        c = await _stock(ib, "MSFT")
        day = ib.placeOrder(c, LimitOrder("BUY", 10, 1.00, tif="DAY"))
        gtc = ib.placeOrder(c, LimitOrder("BUY", 10, 1.00, tif="GTC"))
        await eventually_async(
            lambda: day.orderStatus.status == gtc.orderStatus.status == "Submitted"
        )
        await asyncio.to_thread(advance, sim, clock, 6 * 3600 + 60)  # 21:01 UTC
        await eventually_async(day.isDone)
        status_after_close = gtc.orderStatus.status
        await asyncio.to_thread(advance, sim, clock, 24 * 3600)  # the next day's evening
        await asyncio.sleep(0.2)  # allowed: proving nothing more happens to the GTC order
        return day, gtc, status_after_close

    day, gtc, status_after_close = run(sim, scenario)
    assert day.orderStatus.status == "Cancelled" and day.fills == []
    assert status_after_close == "Submitted" and gtc.orderStatus.status == "Submitted"
    assert not gtc.isDone()


def test_ioc_fills_what_the_bar_allows_and_cancels_the_rest_at_once(sim: IBSim) -> None:
    cap = bar_cap(sim, "SPY")

    async def scenario(ib: IB) -> tuple[Trade, Trade]:
        c = await _stock(ib, "SPY")
        big = ib.placeOrder(c, MarketOrder("BUY", float(cap) + 50, tif="IOC"))
        far = ib.placeOrder(c, LimitOrder("BUY", 10, 1.00, tif="IOC"))
        await eventually_async(lambda: big.isDone() and far.isDone())
        await eventually_async(lambda: all(f.commissionReport.execId for f in big.fills))
        return big, far

    big, far = run(sim, scenario)
    assert big.orderStatus.status == "Cancelled"
    assert (big.orderStatus.filled, big.orderStatus.remaining) == (float(cap), 50.0)
    assert [f.execution.shares for f in big.fills] == [float(cap)]
    assert far.orderStatus.status == "Cancelled" and far.fills == []


# ---- margin ---------------------------------------------------------------------------------
def test_order_beyond_the_margin_is_inactive_with_error_201_and_a_smaller_one_fills() -> None:
    clock = ManualClock(START)
    with running_ibsim(clock=clock, cash=100_000.0) as sim:

        async def scenario(ib: IB) -> tuple[Trade, Trade, list[Any], list[tuple[int, int, str]]]:
            errors = _errors(ib)
            c = await _stock(ib, "AAPL")
            price = (await ib.reqTickersAsync(c))[0].marketPrice()
            # 25% initial margin: 100k of equity carries 400k of stock, not 480k.
            too_big = ib.placeOrder(c, MarketOrder("BUY", int(480_000 / price)))
            await eventually_async(too_big.isDone)
            await eventually_async(lambda: any(code == 201 for _, code, _ in errors))
            fits = ib.placeOrder(c, MarketOrder("BUY", int(200_000 / price)))
            await eventually_async(fits.isDone)
            return too_big, fits, ib.positions(), errors

        too_big, fits, positions, errors = run(sim, scenario)
    assert too_big.orderStatus.status == "Inactive" and too_big.fills == []
    ((req_id, text),) = [(r, t) for r, code, t in errors if code == 201]
    assert req_id == too_big.order.orderId and text.startswith(MARGIN_TEXT)
    assert "Equity with Loan Value [100000.00 USD]" in text
    assert fits.orderStatus.status == "Filled"
    assert [p.position for p in positions] == [fits.order.totalQuantity]


# ---- fills against volume ------------------------------------------------------------------
def test_large_order_fills_bar_by_bar_with_execution_and_commission_each(
    sim: IBSim, clock: ManualClock
) -> None:
    caps = []

    async def scenario(ib: IB) -> tuple[Trade, list[tuple[float, float]]]:
        c = await _stock(ib, "SPY")
        caps.append(bar_cap(sim, "SPY"))
        total = float(caps[0]) * 3
        statuses: list[tuple[float, float]] = []
        trade = ib.placeOrder(c, MarketOrder("SELL", total))
        trade.statusEvent += lambda t: statuses.append(
            (t.orderStatus.filled, t.orderStatus.remaining)
        )
        seen = 0  # fills counted before each advance: the next bar's may arrive during it
        while not trade.isDone():
            await eventually_async(lambda n=seen: len(trade.fills) > n or trade.isDone())
            seen = len(trade.fills)
            if not trade.isDone():
                await asyncio.to_thread(advance, sim, clock, 60)
                caps.append(bar_cap(sim, "SPY"))
        await eventually_async(lambda: all(f.commissionReport.execId for f in trade.fills))
        return trade, statuses

    trade, statuses = run(sim, scenario)
    shares = [Decimal(str(f.execution.shares)) for f in trade.fills]
    assert len(shares) >= 2 and sum(shares) == Decimal(str(trade.order.totalQuantity))
    assert all(s <= cap for s, cap in zip(shares, caps, strict=False))
    assert shares[:-1] == caps[: len(shares) - 1]  # every bar but the last is taken in full
    assert len({f.execution.execId for f in trade.fills}) == len(shares)
    assert all(f.commissionReport.commission > 0 for f in trade.fills)
    filled = [f for f, _ in statuses]
    assert filled == sorted(filled) and statuses[-1] == (trade.order.totalQuantity, 0.0)
    assert all(f + r == trade.order.totalQuantity for f, r in statuses if f > 0)


# ---- completed orders -----------------------------------------------------------------------
def test_completed_orders_hold_modified_partial_ioc_expired_and_refused_orders(
    clock: ManualClock,
) -> None:
    with running_ibsim(clock=clock, participation=PARTICIPATION) as sim:
        cap = bar_cap(sim, "SPY")

        async def trade_the_day(ib: IB) -> None:
            c = await _stock(ib, "SPY")
            modified = ib.placeOrder(c, MarketOrder("BUY", float(cap) * 3, orderRef="mod"))
            await eventually_async(lambda: modified.orderStatus.filled == float(cap))
            modified.order.totalQuantity = float(cap)  # down to what has filled: done
            ib.placeOrder(c, modified.order)
            ioc = ib.placeOrder(
                c, LimitOrder("SELL", float(cap) * 2, 1.0, tif="IOC", orderRef="ioc")
            )
            refused = ib.placeOrder(c, MarketOrder("BUY", 1_000_000, orderRef="refused"))
            day = ib.placeOrder(c, LimitOrder("BUY", 1, 1.00, orderRef="day"))
            await eventually_async(
                lambda: (
                    all(t.isDone() for t in (modified, ioc, refused))
                    and day.orderStatus.status == "Submitted"
                )
            )
            await asyncio.to_thread(advance, sim, clock, 6 * 3600 + 60)
            await eventually_async(day.isDone)

        async def next_client(ib: IB) -> dict[str, Trade]:
            completed = await ib.reqCompletedOrdersAsync(apiOnly=True)
            return {t.order.orderRef: t for t in completed}

        run(sim, trade_the_day)
        found = run(sim, next_client, client_id=4)
    assert set(found) == {"mod", "ioc", "refused", "day"}
    mod, ioc = found["mod"], found["ioc"]
    assert mod.orderStatus.status == "Filled"
    assert (mod.order.totalQuantity, mod.order.filledQuantity) == (float(cap), float(cap))
    assert ioc.orderStatus.status == "Cancelled"
    assert 0 < ioc.order.filledQuantity < ioc.order.totalQuantity
    assert found["refused"].orderStatus.status == "Cancelled"
    assert found["refused"].order.filledQuantity == 0
    assert found["day"].orderStatus.status == "Cancelled"
    assert found["day"].order.filledQuantity == 0  # ib_async drops completedStatus itself


# ---- the nightly restart --------------------------------------------------------------------
def _control(sim: IBSim, cmd: str, **args: Any) -> dict[str, Any]:
    assert sim.control.port is not None
    with socket.create_connection(("127.0.0.1", sim.control.port), timeout=10) as sock:
        sock.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        reply: dict[str, Any] = json.loads(sock.makefile("r").readline())
    return reply


def test_nightly_restart_drops_clients_then_1100_at_reconnect_then_1102(sim: IBSim) -> None:
    async def scenario() -> tuple[list[int], list[int], set[str]]:
        before = IB()
        await before.connectAsync("127.0.0.1", sim.port, 5, timeout=5)
        c = await _stock(before, "AAPL")
        resting = before.placeOrder(c, LimitOrder("BUY", 3, 1.00, orderRef="overnight"))
        await eventually_async(lambda: resting.orderStatus.status == "Submitted")
        dropped: list[bool] = []
        before.disconnectedEvent += lambda: dropped.append(True)
        reply = await asyncio.to_thread(
            _control, sim, "nightly_restart", seconds=0.5, relink_seconds=3.0
        )
        assert reply == {"ok": True}
        await eventually_async(lambda: dropped)
        after = IB()
        codes: list[int] = []
        after.errorEvent += lambda _req, code, *_: codes.append(code)
        for _ in range(50):  # refused while the gateway restarts, as IBC's restart is
            try:
                await after.connectAsync("127.0.0.1", sim.port, 5, timeout=1)
                break
            except (ConnectionError, TimeoutError, OSError):
                await asyncio.sleep(0.1)
        at_connect = list(codes)
        status = await asyncio.to_thread(_control, sim, "status")
        assert status["link_down"] is True and status["clients"] == [5]
        await eventually_async(lambda: 2104 in codes)
        working = {t.order.orderRef for t in after.openTrades()}
        after.disconnect()
        return at_connect, codes, working

    at_connect, codes, working = asyncio.run(scenario())
    assert 1100 in at_connect and 1102 not in at_connect
    assert [c for c in codes if c in (1100, 1102, 2104)] == [1100, 1102, 2104]
    assert not {2104, 2106, 2158} & set(at_connect)  # no farm is up while the link is down
    assert working == {"overnight"}  # data maintained: the order is still working


def test_unknown_control_command_lists_nightly_restart(sim: IBSim) -> None:
    reply = _control(sim, "bogus")
    assert reply["ok"] is False and "nightly_restart" in reply["error"]


# ---- the official client ----------------------------------------------------------------------
class _App(EWrapper, EClient):  # type: ignore[misc]
    """Records orderStatus, errors and executions (camelCase names are the official
    wrapper's)."""

    def __init__(self) -> None:
        EWrapper.__init__(self)
        EClient.__init__(self, self)
        self.seen: dict[str, list[tuple[Any, ...]]] = {}
        self._lock = threading.Lock()

    def _note(self, name: str, *args: Any) -> None:
        with self._lock:
            self.seen.setdefault(name, []).append(args)

    def got(self, name: str) -> list[tuple[Any, ...]]:
        with self._lock:
            return list(self.seen.get(name, []))

    def nextValidId(self, orderId: int) -> None:
        self._note("nextValidId", orderId)

    def error(self, reqId: int, errorCode: int, errorString: str, *rest: Any) -> None:
        self._note("error", reqId, errorCode, errorString)

    def orderStatus(
        self, orderId: int, status: str, filled: Any, remaining: Any, *rest: Any
    ) -> None:
        self._note("orderStatus", orderId, status, float(filled), float(remaining))

    def execDetails(self, reqId: int, contract: Any, execution: Any) -> None:
        self._note("execDetails", execution.orderId, float(execution.shares), execution.permId)


def test_official_client_modifies_an_order_keeping_its_fill_and_is_refused_on_margin(
    clock: ManualClock,
) -> None:
    with running_ibsim(clock=clock, participation=PARTICIPATION) as sim:
        cap = float(bar_cap(sim, "SPY"))
        app = _App()
        app.connect("127.0.0.1", sim.port, clientId=8)
        reader = threading.Thread(target=app.run, name="ibapi", daemon=True)
        reader.start()
        try:
            ((order_id,),) = eventually(lambda: app.got("nextValidId"))
            spy = Contract()
            spy.symbol, spy.secType, spy.exchange, spy.currency = "SPY", "STK", "SMART", "USD"
            order = Order()
            order.action, order.orderType, order.totalQuantity = "BUY", "MKT", cap * 4
            app.placeOrder(order_id, spy, order)
            eventually(lambda: (order_id, "Submitted", cap, cap * 3) in app.got("orderStatus"))
            order.totalQuantity = cap + 2
            app.placeOrder(order_id, spy, order)  # the same id: a modification
            eventually(lambda: (order_id, "Submitted", cap, 2.0) in app.got("orderStatus"))
            advance(sim, clock, 60)
            eventually(lambda: (order_id, "Filled", cap + 2, 0.0) in app.got("orderStatus"))
            big = Order()
            big.action, big.orderType, big.totalQuantity = "BUY", "MKT", 1_000_000
            app.placeOrder(order_id + 1, spy, big)
            eventually(lambda: any(e[1] == 201 for e in app.got("error")))
        finally:
            app.disconnect()
            reader.join(10)
    fills = [(oid, shares) for oid, shares, _ in app.got("execDetails")]
    assert fills == [(order_id, cap), (order_id, 2.0)]
    assert len({perm for *_, perm in app.got("execDetails")}) == 1
    assert (order_id + 1, "Inactive", 0.0, 1_000_000.0) in app.got("orderStatus")
    ((req_id, text),) = [(r, t) for r, code, t in app.got("error") if code == 201]
    assert req_id == order_id + 1 and text.startswith(MARGIN_TEXT)
