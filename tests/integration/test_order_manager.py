"""The order manager as the cluster's named actor, over the gateway and risk actors, against
ibsim over TCP, with SQLite and PostgreSQL catalogs.

Fills are pushed (the test never polls the gateway or calls reconcile before checking them);
an order_ref sent twice reaches ibsim once; a risk rejection never reaches it; a connection
drop while an order fills is repaired by the reconcile after the reconnect, each fill written
once. ibsim's simulated time is a ManualClock, so a one-minute bar (whose volume an order may
take a fraction of) ends only when the test moves it: the fills of the drop test happen while
the gateway is disconnected, for certain.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from actors.gateway import get_gateway
from actors.ib_connection import Backoff
from actors.order_actor import get_order_manager
from actors.risk_actor import get_risk_manager
from core.clock import ManualClock
from core.settings import Settings
from core.types import Order, OrderStatus, Side
from ibsim.server import IBSim
from ibsim.testing import eventually, running_ibsim
from storage.catalog import Catalog

pytestmark = pytest.mark.integration

START = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)  # a Tuesday, NASDAQ open
PARTICIPATION = 0.01
NAMESPACE = "scizor-test"
MSFT = "MSFT.NASDAQ"
_client_ids = iter(range(7100, 8000, 10))


@dataclass
class Desk:
    om: Any
    gateway: Any
    risk: Any
    catalog: Catalog


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def sim(clock: ManualClock) -> Iterator[IBSim]:
    with running_ibsim(clock=clock, participation=PARTICIPATION) as server:
        yield server


@pytest.fixture
def desk(ray_session: None, sim: IBSim, catalog_url: str, tmp_path: Path) -> Iterator[Desk]:
    import ray

    env = {"SCIZOR_HOME": str(tmp_path), "SCIZOR_DATABASE_URL": catalog_url,
           "SCIZOR_IB_HOST": "127.0.0.1", "SCIZOR_IB_PORT": str(sim.port),
           "SCIZOR_IB_CLIENT_ID": str(next(_client_ids))}  # fmt: skip
    settings = Settings.from_env(env)
    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    names = {"gateway_name": f"gw-{tag}", "risk_name": f"risk-{tag}"}
    gateway = get_gateway(settings, name=names["gateway_name"], namespace=NAMESPACE,
                          backoff=Backoff(initial=0.05, cap=0.5), request_timeout=20)  # fmt: skip
    risk = get_risk_manager(settings, name=names["risk_name"], namespace=NAMESPACE)
    actors = [gateway, risk]
    catalog = Catalog(catalog_url)
    try:
        ray.get(
            risk.set_limits.remote("global", {"max_order_quantity": "5000"}, "test"), timeout=60
        )
        om = get_order_manager(settings, name=f"om-{tag}", namespace=NAMESPACE, **names)
        actors.append(om)
        assert ray.get(om.stats.remote(), timeout=120)["reconciles"] == 1  # subscribed, reconciled
        yield Desk(om=om, gateway=gateway, risk=risk, catalog=catalog)
    finally:
        for actor in reversed(actors):
            ray.kill(actor, no_restart=True)
        catalog.dispose()


def bar_cap(sim: IBSim, symbol: str) -> Decimal:
    """What one order may take of the current bar: the participation or the 1000 chunk."""
    info = sim.world.get(symbol)
    assert info is not None
    quote = sim.market.quote(info, sim.clock.now())
    return min(Decimal(1000), Decimal(int(PARTICIPATION * quote.bar_volume)))


def sim_executions(sim: IBSim, order_ref: str) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    """ibsim's own record: ``{exec_id: (shares, price, commission)}`` of an order."""
    return {
        e.exec_id: (e.shares, Decimal(repr(e.price)), Decimal(repr(e.commission)))
        for e in list(sim.broker.executions)
        if e.order_ref == order_ref
    }


def sim_orders(sim: IBSim, order_ref: str) -> int:
    """How many orders ibsim received under ``order_ref``."""
    return sum(1 for o in list(sim.broker.orders.values()) if o.order_ref == order_ref)


def stored(desk: Desk, order_ref: str) -> dict[str, tuple[Decimal, Decimal, Decimal]]:
    fills = desk.catalog.executions.list(order_ref=order_ref)
    assert len(fills) == len({f.exec_id for f in fills})  # never a duplicate row
    return {f.exec_id: (f.quantity, f.price, f.commission) for f in fills}


def filled(desk: Desk, order_ref: str, quantity: Decimal) -> bool:
    record = desk.catalog.orders.get(order_ref)
    return record.status == OrderStatus.FILLED and record.filled_quantity == quantity


def market(side: Side, quantity: Decimal, ref: str) -> Order:
    return Order(instrument=MSFT, side=side, quantity=quantity, order_ref=ref)


def test_order_manager_submits_once_gets_pushed_fills_and_keeps_positions(
    desk: Desk, sim: IBSim
) -> None:
    import ray

    cap = bar_cap(sim, "MSFT")
    assert cap >= 10, cap
    sent = ray.get(desk.om.submit.remote(market(Side.BUY, cap, "om-buy")), timeout=60)
    assert sent.sent and not sent.rejected
    eventually(lambda: filled(desk, "om-buy", cap), timeout=30)  # pushed: nobody polled
    again = ray.get(desk.om.submit.remote(market(Side.BUY, cap, "om-buy")), timeout=60)
    assert again.duplicate and not again.sent
    assert sim_orders(sim, "om-buy") == 1  # the same intent reached ibsim once

    sell = cap // 2
    ray.get(desk.om.submit.remote(market(Side.SELL, sell, "om-sell")), timeout=60)
    eventually(lambda: filled(desk, "om-sell", sell), timeout=30)

    refused = ray.get(desk.om.submit.remote(market(Side.BUY, Decimal(6000), "om-big")), timeout=60)
    assert refused.rejected and not refused.sent and "max_order_quantity" in refused.message
    assert sim_orders(sim, "om-big") == 0
    assert desk.catalog.orders.get("om-big").status == OrderStatus.REJECTED
    assert [e.order_ref for e in desk.catalog.risk.events(kind="rejected")] == ["om-big"]

    buys, sells = sim_executions(sim, "om-buy"), sim_executions(sim, "om-sell")
    assert stored(desk, "om-buy") == buys and stored(desk, "om-sell") == sells
    avg = sum(q * p for q, p, _ in buys.values()) / sum(q for q, _, _ in buys.values())
    realized = sum((p - avg) * q for q, p, _ in sells.values())
    commission = sum(c for _, _, c in [*buys.values(), *sells.values()])
    [pos] = ray.get(desk.om.positions.remote(), timeout=60)
    assert (pos.instrument, pos.quantity) == (MSFT, cap - sell)
    assert abs(pos.avg_cost - avg) < Decimal("1e-8") and abs(pos.realized_pnl - realized) < Decimal(
        "1e-6"
    )
    assert pos.commission == commission and commission > 0
    assert pos.unrealized_pnl is not None  # marked at the last fill's price
    record = desk.catalog.orders.get("om-buy")
    assert (
        record.broker_order_id
        and record.perm_id
        and abs(record.avg_fill_price - avg) < Decimal("1e-8")
    )
    broker = {p.instrument: p.quantity for p in ray.get(desk.gateway.positions.remote())}
    assert broker == {MSFT: cap - sell}
    report = ray.get(desk.om.reconcile.remote(), timeout=60)
    assert (
        report.clean
        and report.recovered == ()
        and report.broker_executions == len(buys) + len(sells)
    )


@pytest.mark.parametrize("fault", ["restart", "nightly_restart"])
def test_order_manager_recovers_fills_made_while_the_gateway_was_disconnected_once(
    desk: Desk, sim: IBSim, clock: ManualClock, fault: str
) -> None:
    import ray

    cap = bar_cap(sim, "MSFT")
    quantity = cap * 3  # one bar's share now, the rest over the next two bars
    ray.get(desk.om.submit.remote(market(Side.BUY, quantity, "om-drop")), timeout=60)
    eventually(lambda: sum(q for q, _, _ in stored(desk, "om-drop").values()) == cap, timeout=30)
    before = ray.get(desk.om.stats.remote(), timeout=60)["reconciles"]

    if fault == "restart":
        sim.restart(4.0)  # every connection drops; none is accepted for 4 s
    else:  # ... then clients connect to a gateway not linked to IB (1100) until 1102
        sim.nightly_restart(4.0, 1.0)
    for bar in (1, 2):  # while nobody is connected, the order fills the rest
        sim.call(lambda: clock.advance(60))
        eventually(lambda b=bar: sum(q for q, _, _ in sim_executions(sim, "om-drop").values())
                   >= cap * (1 + b), timeout=2)  # fmt: skip
    assert sim.sessions == {}  # the gateway was away for all of it
    missed = len(sim_executions(sim, "om-drop")) - 1
    assert missed >= 2

    def recovered() -> bool:
        return stored(desk, "om-drop") == sim_executions(sim, "om-drop") and filled(
            desk, "om-drop", quantity
        )

    eventually(recovered, timeout=60)
    stats = ray.get(desk.om.stats.remote(), timeout=60)
    assert stats["reconciles"] > before and stats["push_failures"] == 0
    assert stats["recovered_fills"] == missed  # by the reconcile after the reconnect, once
    [pos] = ray.get(desk.om.positions.remote(), timeout=60)
    assert pos.quantity == quantity
    report = ray.get(desk.om.reconcile.remote(), timeout=60)
    assert report.clean and report.recovered == ()  # nothing left to recover, nothing twice
    assert stored(desk, "om-drop") == sim_executions(sim, "om-drop")
    assert desk.catalog.risk.events(kind="reconcile_mismatch") == []


def test_gateway_pushes_to_subscribers_across_a_reconnect_and_drops_a_dead_one(
    ray_session: None, sim: IBSim
) -> None:
    import ray

    from core.settings import IBSettings

    @ray.remote(num_cpus=0)
    class Recorder:
        def __init__(self) -> None:
            self.seen: dict[str, list[Any]] = {"fill": [], "status": [], "connected": []}

        def on_fill(self, fill: Any) -> None:
            self.seen["fill"].append(fill)

        def on_order_status(self, ack: Any) -> None:
            self.seen["status"].append(ack)

        def on_connected(self) -> None:
            self.seen["connected"].append(True)

        def get(self) -> dict[str, list[Any]]:
            return self.seen

    tag = f"{os.getpid()}-{time.monotonic_ns()}"
    ib = IBSettings(host="127.0.0.1", port=sim.port, client_id=next(_client_ids), account=None,
                    timeout=10)  # fmt: skip
    gateway = get_gateway(ib, name=f"gw-push-{tag}", namespace=NAMESPACE,
                          backoff=Backoff(initial=0.05, cap=0.5), request_timeout=20)  # fmt: skip
    alive = Recorder.options(name=f"rec-{tag}", namespace=NAMESPACE).remote()  # type: ignore[attr-defined]
    doomed = Recorder.remote()  # type: ignore[attr-defined]
    try:
        assert ray.get(gateway.subscribe.remote(f"rec-{tag}", NAMESPACE), timeout=60) == 1
        assert ray.get(gateway.subscribe.remote(doomed), timeout=60) == 2
        assert ray.get(gateway.subscribe.remote(doomed), timeout=60) == 2  # idempotent
        sim.drop_all()  # the gateway reconnects by itself; the subscriptions stay
        for rec in (alive, doomed):
            eventually(lambda r=rec: ray.get(r.get.remote())["connected"], timeout=30)
        order = market(Side.BUY, Decimal(3), "push-1")
        ray.get(gateway.place_order.remote(order), timeout=60)
        for rec in (alive, doomed):
            eventually(lambda r=rec: ray.get(r.get.remote())["fill"], timeout=30)
        [fill] = ray.get(alive.get.remote())["fill"]
        assert (fill.order_ref, fill.quantity, fill.commission > 0) == ("push-1", 3, True)
        statuses = ray.get(alive.get.remote())["status"]
        assert {a.order_ref for a in statuses} == {"push-1"}
        assert OrderStatus.FILLED in {a.status for a in statuses}

        ray.kill(doomed, no_restart=True)
        ray.get(gateway.place_order.remote(market(Side.BUY, Decimal(2), "push-2")), timeout=60)
        eventually(lambda: len(ray.get(alive.get.remote())["fill"]) == 2, timeout=30)
        eventually(lambda: ray.get(gateway.subscribe.remote(alive), timeout=30) == 1, timeout=30)
    finally:
        for actor in (alive, gateway):
            ray.kill(actor, no_restart=True)
