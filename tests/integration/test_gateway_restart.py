"""Order status after the gateway restarts: IB's open and completed orders, then the lookup.

Real ibsim over TCP. A first gateway places orders and goes away; a new gateway with a new
connection (the same client id, as a restarted actor has, or another one) must still say
where each order stands.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from actors.gateway_service import GatewayService
from actors.ib_connection import Backoff
from actors.order_acks import AckSource
from actors.order_finder import OrderLookup
from actors.pacing import PacingRules
from core.errors import NotFound
from core.settings import IBSettings
from core.types import Order, OrderStatus, OrderType, Side
from ibsim.server import IBSim
from ibsim.testing import running_ibsim

pytestmark = pytest.mark.integration

SPEED = 300.0
US_OPEN = datetime(2024, 3, 12, 15, 0, tzinfo=UTC)
MSFT = 393556148


@pytest.fixture(scope="module")
def sim() -> Iterator[IBSim]:
    with running_ibsim(seed=19, pacing="strict", speed=SPEED, start=US_OPEN) as server:
        yield server


def service(sim: IBSim, client_id: int, lookup: OrderLookup | None = None) -> GatewayService:
    settings = IBSettings(
        host="127.0.0.1", port=sim.port, client_id=client_id, account=None, timeout=10
    )
    return GatewayService(
        settings,
        time_scale=SPEED,
        backoff=Backoff(initial=0.05, cap=0.5),
        rules=PacingRules.ibkr(),
        request_timeout=20,
        order_lookup=lookup,
    )


def run(svc: GatewayService, body: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    async def main() -> Any:
        await svc.connect()
        try:
            return await body()
        finally:
            await svc.disconnect()

    return asyncio.run(main())


def sim_fills(sim: IBSim, order_ref: str) -> tuple[Decimal, Decimal, int]:
    """ibsim's own record of an order: (filled quantity, average price, permId)."""
    found = [e for e in list(sim.broker.executions) if e.order_ref == order_ref]
    quantity = sum((e.shares for e in found), Decimal(0))
    value = sum((Decimal(repr(e.price)) * e.shares for e in found), Decimal(0))
    return quantity, value / quantity, found[0].perm_id


async def filled(svc: GatewayService, order: Order) -> None:
    ack = await svc.place_order(order)
    deadline = time.monotonic() + 15
    while (await svc.order_status(ack.order_id)).status != OrderStatus.FILLED:
        assert time.monotonic() < deadline, f"{order.order_ref} never filled"
        await asyncio.sleep(0.05)


def market(ref: str, quantity: int) -> Order:
    return Order(instrument="MSFT.NASDAQ", side=Side.BUY, quantity=Decimal(quantity), order_ref=ref)


def resting(ref: str) -> Order:
    return Order(
        instrument="MSFT.NASDAQ",
        side=Side.BUY,
        quantity=Decimal(2),
        order_type=OrderType.LIMIT,
        limit_price=Decimal("1.00"),  # far below the market: it rests
        order_ref=ref,
    )


def test_gateway_restarted_with_the_same_client_id_knows_earlier_orders(sim: IBSim) -> None:
    async def before() -> None:
        await filled(first, market("rs-fill", 1500))  # two executions of 1000 and 500
        await first.place_order(resting("rs-rest"))

    first = service(sim, 8100)
    run(first, before)
    quantity, price, perm_id = sim_fills(sim, "rs-fill")
    assert quantity == Decimal(1500)

    async def after() -> None:
        done = await again.order_status("rs-fill")
        assert (done.status, done.filled, done.remaining) == (
            OrderStatus.FILLED,
            Decimal(1500),
            Decimal(0),
        )
        assert (done.instrument, done.con_id, done.perm_id) == ("MSFT.NASDAQ", MSFT, perm_id)
        assert done.avg_fill_price == price
        assert (await again.order_status(perm_id)).order_ref == "rs-fill"
        rest = await again.order_status("rs-rest")
        assert (rest.status, rest.filled, rest.remaining) == (
            OrderStatus.SUBMITTED,
            Decimal(0),
            Decimal(2),
        )
        with pytest.raises(NotFound, match="rs-nothing"):
            await again.order_status("rs-nothing")

    again = service(sim, 8100)  # a restarted actor: new connection, same client id
    run(again, after)


def test_gateway_finds_other_clients_orders_at_ib_and_the_rest_through_the_lookup(
    sim: IBSim,
) -> None:
    ghost = market("rs-ghost", 3)  # SCIZOR recorded it, IB never got it (a crash in between)
    calls: list[str] = []

    async def lookup(order_ref: str) -> Order | None:
        calls.append(order_ref)
        return ghost if order_ref == "rs-ghost" else None

    watcher = service(sim, 8200, lookup)
    other = service(sim, 8300)

    async def body() -> None:
        await other.connect()  # another client, after the watcher synced its orders
        try:
            await filled(other, market("rs-late", 7))
            await other.place_order(resting("rs-late-rest"))
        finally:
            await other.disconnect()
        late = await watcher.order_status("rs-late")
        assert (late.status, late.filled, late.source) == (
            OrderStatus.FILLED,
            Decimal(7),
            AckSource.COMPLETED_ORDERS,
        )
        assert late.avg_fill_price == sim_fills(sim, "rs-late")[1]
        working = await watcher.order_status("rs-late-rest")
        assert (working.status, working.source) == (OrderStatus.SUBMITTED, AckSource.OPEN_ORDERS)
        assert calls == []  # IB knew both: the lookup was not asked
        gone = await watcher.order_status("rs-ghost")
        assert (gone.status, gone.source, gone.filled) == (
            OrderStatus.INACTIVE,
            AckSource.LOOKUP,
            Decimal(0),
        )
        assert (gone.instrument, gone.order_ref) == ("MSFT.NASDAQ", "rs-ghost")
        with pytest.raises(NotFound):
            await watcher.order_status("rs-unknown")
        assert calls == ["rs-ghost", "rs-unknown"]

    run(watcher, body)
