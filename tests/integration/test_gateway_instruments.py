"""GatewayService keeps listings apart by canonical id and conId (real ibsim over TCP).

``VEA`` is two listings in ibsim, as at IB: Viva Energy on the ASX (conId 577987566, AUD)
and the Vanguard FTSE Developed Markets ETF on NYSE Arca (conId 337524944, USD). The sim
runs at an ASX session time, so the ASX order fills while the Arca one rests (US closed).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import exchange_calendars as xcals
import pandas as pd
import pytest

from actors.gateway_service import GatewayService
from actors.ib_connection import Backoff
from actors.pacing import PacingRules
from core.errors import Conflict
from core.instruments import AmbiguousInstrument
from core.settings import IBSettings
from core.types import Order, OrderStatus, Side
from ibsim.server import IBSim
from ibsim.testing import running_ibsim

pytestmark = pytest.mark.integration

SPEED = 300.0
ASX_OPEN = datetime(2024, 3, 12, 0, 30, tzinfo=UTC)  # 11:30 in Sydney, a Tuesday session
VEA_ASX, VEA_ARCA = 577987566, 337524944

_client_ids = iter(range(3000, 4000, 10))


@pytest.fixture(scope="module")
def sim() -> Iterator[IBSim]:
    with running_ibsim(seed=11, pacing="strict", speed=SPEED, start=ASX_OPEN) as server:
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


def run(body: Callable[[GatewayService], Coroutine[Any, Any, Any]], svc: GatewayService) -> Any:
    async def main() -> Any:
        await svc.connect()
        try:
            return await body(svc)
        finally:
            await svc.disconnect()

    return asyncio.run(main())


async def eventually(check: Callable[[], Coroutine[Any, Any, Any]], timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := await check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        await asyncio.sleep(0.05)
    return value


def sessions(calendar: str, start: str, end: str) -> list[pd.Timestamp]:
    days = xcals.get_calendar(calendar, start="2020-01-01").sessions_in_range(start, end)
    return [pd.Timestamp(d.date(), tz=UTC) for d in days]


def sim_order_con_ids(sim: IBSim) -> dict[str, int]:
    """What ibsim itself matched each order to: ``{order_ref: conId}``."""
    return {o.order_ref: o.contract.con_id for o in list(sim.broker.orders.values())}


def test_gateway_bare_vea_is_ambiguous_and_each_id_names_its_own_listing(sim: IBSim) -> None:
    async def body(svc: GatewayService) -> None:
        found = await svc.qualify(["VEA", "VEA.ASX", "VEA.ARCA"])
        assert found["VEA"] is None  # never guessed
        assert found["VEA.ASX"] is not None and found["VEA.ASX"].con_id == VEA_ASX
        assert found["VEA.ARCA"] is not None and found["VEA.ARCA"].con_id == VEA_ARCA
        with pytest.raises(AmbiguousInstrument) as err:
            await svc.resolve("VEA")
        assert err.value.candidates == ["VEA.ARCA", "VEA.ASX"]
        asx = await svc.contract_details("VEA.ASX")
        arca = await svc.contract_details("VEA.ARCA")
        assert (asx["instrument"], asx["con_id"], asx["currency"]) == ("VEA.ASX", VEA_ASX, "AUD")
        assert (arca["instrument"], arca["con_id"], arca["currency"]) == (
            "VEA.ARCA",
            VEA_ARCA,
            "USD",
        )
        assert asx["long_name"] == "Viva Energy Group Ltd"
        assert arca["stock_type"] == "ETF"

    run(body, service(sim))


def test_gateway_history_of_each_vea_listing_follows_its_own_exchange(sim: IBSim) -> None:
    lo, hi = datetime(2023, 1, 1, tzinfo=UTC), datetime(2024, 1, 1, tzinfo=UTC)

    async def body(svc: GatewayService) -> tuple[pd.DataFrame, pd.DataFrame]:
        asx = await svc.historical_bars("VEA.ASX", bar_size="1d", start=lo, end=hi)
        arca = await svc.historical_bars("VEA.ARCA", bar_size="1d", start=lo, end=hi)
        return asx, arca

    asx, arca = run(body, service(sim))
    assert list(asx.index) == sessions("XASX", "2023-01-01", "2023-12-31")
    assert list(arca.index) == sessions("XNYS", "2023-01-01", "2023-12-31")
    common = asx.index.intersection(arca.index)
    assert len(common) > 200 and not asx.loc[common, "close"].equals(arca.loc[common, "close"])


def test_gateway_orders_reach_the_listing_their_id_and_con_id_name(sim: IBSim) -> None:
    async def body(svc: GatewayService) -> None:
        buy_asx = Order(
            instrument="VEA.ASX", side=Side.BUY, quantity=Decimal(10), order_ref="vea-asx"
        )
        # no conId: the gateway qualifies the id itself
        buy_arca = Order(
            instrument="VEA.ARCA", side=Side.BUY, quantity=Decimal(3), order_ref="vea-arca"
        )
        asx = await svc.place_order(buy_asx)
        arca = await svc.place_order(buy_arca)
        assert (asx.instrument, asx.con_id) == ("VEA.ASX", VEA_ASX)
        assert (arca.instrument, arca.con_id) == ("VEA.ARCA", VEA_ARCA)
        assert sim_order_con_ids(sim) == {"vea-asx": VEA_ASX, "vea-arca": VEA_ARCA}

        async def asx_filled() -> bool:
            return (await svc.order_status(asx.order_id)).status == OrderStatus.FILLED

        await eventually(asx_filled)
        resting = await svc.order_status(arca.order_id)  # the US market is closed
        assert resting.status == OrderStatus.SUBMITTED and resting.instrument == "VEA.ARCA"
        await svc.cancel_order(arca.order_id)

        fills = [f for f in await svc.executions() if f.order_ref == "vea-asx"]
        assert {(f.instrument, f.con_id) for f in fills} == {("VEA.ASX", VEA_ASX)}
        assert sum(f.quantity for f in fills) == Decimal(10)
        held = {p.instrument: p for p in await svc.positions()}
        assert held["VEA.ASX"].con_id == VEA_ASX and held["VEA.ASX"].quantity == Decimal(10)
        assert "VEA.ARCA" not in held

    run(body, service(sim))


def test_gateway_refuses_an_order_whose_con_id_is_the_other_listing(sim: IBSim) -> None:
    async def body(svc: GatewayService) -> None:
        wrong = Order(
            instrument="VEA.ASX",
            con_id=VEA_ARCA,
            side=Side.BUY,
            quantity=Decimal(1),
            order_ref="vea-wrong",
        )
        with pytest.raises(Conflict, match=r"VEA\.ARCA"):
            await svc.place_order(wrong)
        assert "vea-wrong" not in sim_order_con_ids(sim)  # nothing was sent
        right = Order(
            instrument="VEA.ASX",
            con_id=VEA_ASX,
            side=Side.SELL,
            quantity=Decimal(1),
            order_ref="vea-by-con-id",
        )
        ack = await svc.place_order(right)
        assert (ack.instrument, ack.con_id) == ("VEA.ASX", VEA_ASX)
        assert sim_order_con_ids(sim)["vea-by-con-id"] == VEA_ASX

    run(body, service(sim))
