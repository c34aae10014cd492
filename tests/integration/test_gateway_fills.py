"""Fills through GatewayService against ibsim: handed out complete, once, with IB's commission.

ibsim fills at most 1000 shares per execution, so a 1500-share order is two executions, each
reported as execDetails and then commissionReport, as IBKR does.
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
from actors.pacing import PacingRules
from core.settings import IBSettings
from core.types import Fill, Order, Side
from ibsim.server import IBSim
from ibsim.testing import running_ibsim

pytestmark = pytest.mark.integration

SPEED = 300.0
US_OPEN = datetime(2024, 3, 12, 15, 0, tzinfo=UTC)  # 11:00 in New York
_client_ids = iter(range(5000, 6000, 10))


@pytest.fixture(scope="module")
def sim() -> Iterator[IBSim]:
    with running_ibsim(seed=13, pacing="strict", speed=SPEED, start=US_OPEN) as server:
        yield server


def service(sim: IBSim) -> GatewayService:
    settings = IBSettings(
        host="127.0.0.1", port=sim.port, client_id=next(_client_ids), account=None, timeout=10
    )
    return GatewayService(
        settings,
        time_scale=SPEED,
        backoff=Backoff(initial=0.05, cap=0.5),
        rules=PacingRules.ibkr(),
        request_timeout=20,
    )


async def connected(svc: GatewayService, body: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    await svc.connect()
    try:
        return await body()
    finally:
        await svc.disconnect()


def sim_commissions(sim: IBSim, order_ref: str) -> dict[str, Decimal]:
    """ibsim's own record: ``{exec_id: commission}`` of the order's executions."""
    found = list(sim.broker.executions)
    return {e.exec_id: Decimal(repr(e.commission)) for e in found if e.order_ref == order_ref}


async def poll_until_filled(svc: GatewayService, ref: str, quantity: Decimal) -> list[Fill]:
    seen: list[Fill] = []
    deadline = time.monotonic() + 15
    while sum(f.quantity for f in seen if f.order_ref == ref) < quantity:
        assert time.monotonic() < deadline, f"fills of {ref} never arrived: {seen}"
        seen += await svc.poll_fills()
        await asyncio.sleep(0.05)
    return [f for f in seen if f.order_ref == ref]


def test_gateway_hands_out_each_fill_once_with_its_reported_commission(sim: IBSim) -> None:
    svc = service(sim)
    order = Order(
        instrument="MSFT.NASDAQ", side=Side.BUY, quantity=Decimal(1500), order_ref="f-msft"
    )

    async def body() -> None:
        await svc.place_order(order)
        fills = await poll_until_filled(svc, "f-msft", Decimal(1500))
        assert len(fills) == 2 and len({f.exec_id for f in fills}) == 2
        assert {f.exec_id: f.commission for f in fills} == sim_commissions(sim, "f-msft")
        assert all(f.commission > 0 for f in fills)
        assert {(f.instrument, f.con_id) for f in fills} == {("MSFT.NASDAQ", 393556148)}
        # asked again (twice), IB repeats both halves: the same fills, never commission 0
        first = [f for f in await svc.executions() if f.order_ref == "f-msft"]
        again = [f for f in await svc.executions() if f.order_ref == "f-msft"]
        assert sorted(first, key=lambda f: f.exec_id) == sorted(fills, key=lambda f: f.exec_id)
        assert again == first
        assert [f for f in await svc.poll_fills() if f.order_ref == "f-msft"] == []
        health = svc.health()
        assert (health.fills_awaiting_commission, health.fill_conflicts) == (0, 0)

    asyncio.run(connected(svc, body))

    fresh = service(sim)  # a restarted gateway: no live events, listings unknown

    async def after_restart() -> None:
        found = [f for f in await fresh.executions() if f.order_ref == "f-msft"]
        assert {f.exec_id: f.commission for f in found} == sim_commissions(sim, "f-msft")
        assert {(f.instrument, f.con_id) for f in found} == {("MSFT.NASDAQ", 393556148)}
        polled = [f for f in await fresh.poll_fills() if f.order_ref == "f-msft"]
        assert sorted(polled, key=lambda f: f.exec_id) == sorted(found, key=lambda f: f.exec_id)

    asyncio.run(connected(fresh, after_restart))


def test_gateway_fill_of_the_arca_vea_comes_back_as_that_listing(sim: IBSim) -> None:
    svc = service(sim)
    order = Order(instrument="VEA.ARCA", side=Side.BUY, quantity=Decimal(5), order_ref="f-vea")

    async def body() -> None:
        await svc.place_order(order)
        fills = await poll_until_filled(svc, "f-vea", Decimal(5))
        assert {(f.instrument, f.con_id) for f in fills} == {("VEA.ARCA", 337524944)}
        assert {f.exec_id: f.commission for f in fills} == sim_commissions(sim, "f-vea")
        held = {p.instrument: p for p in await svc.positions()}
        assert held["VEA.ARCA"].quantity == Decimal(5) and held["VEA.ARCA"].con_id == 337524944

    asyncio.run(connected(svc, body))
