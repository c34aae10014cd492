"""OrderManager over a real SQLite catalog and the real RiskManager; a hand-written fake gateway."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal as D
from itertools import count
from pathlib import Path

import pytest

from actors.halt import EquityWatch, halt_trading
from actors.order_acks import OrderAck
from actors.order_finder import OrderKey
from actors.order_manager import OrderManager
from actors.risk_manager import RiskManager
from actors.risk_state import KillSwitchEvent
from core.errors import Conflict, NotConnected, NotFound, OrderRejected, ValidationError
from core.types import Fill, Order, OrderStatus, OrderType, Position, Side
from storage.catalog import Catalog

T0 = datetime(2025, 3, 3, 15, tzinfo=UTC)
AAPL = "AAPL.NASDAQ"


class FakeGateway:
    """Acknowledges orders Submitted; fills and broker state are scripted by the test."""

    def __init__(self) -> None:
        self.placed: list[Order] = []
        self.cancelled: list[int] = []
        self.broker_fills: list[Fill] = []
        self.broker_positions: list[Position] = []
        self.statuses: dict[str, OrderAck] = {}
        self.reject: str | None = None
        self.down = False
        self._ids = count(1)

    def ack(self, order: Order, status: OrderStatus, filled: str = "0", **kw: object) -> OrderAck:
        placed = [i for i, o in enumerate(self.placed, 1) if o.order_ref == order.order_ref]
        fields: dict[str, object] = dict(
            order_id=placed[0] if placed else 0, perm_id=1000 + (placed[0] if placed else 0),
            instrument=order.instrument, con_id=None, status=status, filled=D(filled),
            remaining=order.quantity - D(filled), avg_fill_price=None, order_ref=order.order_ref,
        )  # fmt: skip
        return OrderAck(**{**fields, **kw})  # type: ignore[arg-type]

    def place_order(self, order: Order) -> OrderAck:
        if self.down:
            raise NotConnected()
        self.placed.append(order)
        if self.reject:
            raise OrderRejected(f"IB rejected order: {self.reject}")
        next(self._ids)
        return self.ack(order, OrderStatus.SUBMITTED)

    def cancel_order(self, order_id: int) -> OrderAck:
        self.cancelled.append(order_id)
        return self.ack(self.placed[order_id - 1], OrderStatus.CANCELLED)

    def order_status(self, order: OrderKey) -> OrderAck:
        if isinstance(order, str) and order in self.statuses:
            return self.statuses[order]
        raise NotFound(f"no order {order!r}")

    def positions(self) -> list[Position]:
        return list(self.broker_positions)

    def executions(self) -> list[Fill]:
        return list(self.broker_fills)


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[Catalog]:
    cat = Catalog(f"sqlite:///{tmp_path}/c.db")
    cat.upgrade()
    yield cat
    cat.dispose()


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
def om(catalog: Catalog, gateway: FakeGateway) -> OrderManager:
    return OrderManager(catalog, gateway, RiskManager(catalog.risk))


_exec = count(1)


def fill_of(order: Order, qty: str, price: str, commission: str = "1") -> Fill:
    n = next(_exec)
    return Fill(exec_id=f"x{n}", order_ref=order.order_ref, instrument=order.instrument,
                side=order.side, quantity=D(qty), price=D(price), commission=D(commission),
                time=T0 + timedelta(minutes=n))  # fmt: skip


def held(instrument: str, qty: str, cost: str) -> Position:
    return Position(instrument=instrument, quantity=D(qty), avg_cost=D(cost))


def buy(qty: str = "100", ref: str = "", **kw: object) -> Order:
    return Order(instrument=AAPL, side=Side.BUY, quantity=D(qty), order_ref=ref, **kw)  # type: ignore[arg-type]


def test_submit_assigns_a_ref_stores_before_sending_and_applies_the_ack(om, gateway, catalog):
    seen_stored: list[OrderStatus] = []
    place = gateway.place_order

    def place_checking(order: Order) -> OrderAck:
        seen_stored.append(catalog.orders.get(order.order_ref).status)
        return place(order)

    gateway.place_order = place_checking
    sub = om.submit(buy())
    assert sub.sent and not sub.duplicate and sub.order_ref.startswith("om-")
    assert seen_stored == [OrderStatus.PENDING_SUBMIT]  # stored before it was sent
    stored = catalog.orders.get(sub.order_ref)
    assert (stored.status, stored.broker_order_id, stored.perm_id) == (
        OrderStatus.SUBMITTED,
        1,
        1001,
    )


def test_submit_of_a_stored_order_ref_returns_it_without_sending_again(om, gateway):
    first = om.submit(buy(ref="intent-1"))
    again = om.submit(buy(qty="5", ref="intent-1"))
    assert first.sent and not again.sent and again.duplicate
    assert [o.order_ref for o in gateway.placed] == ["intent-1"]
    assert again.record.order.quantity == D(100)


def test_submit_refuses_an_order_ref_the_catalog_cannot_keep(om, gateway):
    with pytest.raises(ValidationError, match="order_ref") as caught:
        om.submit(buy(ref="x" * 65))
    assert caught.value.field == "order_ref" and gateway.placed == []


def test_submit_refused_by_risk_is_stored_rejected_never_sent_and_recorded(om, gateway, catalog):
    RiskManager(catalog.risk).set_limits("global", {"max_order_quantity": "50"}, by="ops")
    om.risk.reload()
    sub = om.submit(buy(ref="too-big"))
    assert sub.rejected and not sub.sent and gateway.placed == []
    assert sub.decision is not None and "max_order_quantity" in sub.message
    assert catalog.orders.get("too-big").status == OrderStatus.REJECTED
    [event] = catalog.risk.events(kind="rejected")
    assert event.order_ref == "too-big"
    assert om.submit(buy(qty="1", ref="too-big")).duplicate and gateway.placed == []


def test_submit_counts_recent_orders_for_the_rate_limit(om, gateway, catalog):
    om.risk.set_limits("global", {"max_orders_per_minute": 2}, by="ops")
    assert om.submit(buy("1")).sent and om.submit(buy("1")).sent
    third = om.submit(buy("1"))
    assert third.rejected and "max_orders_per_minute" in third.message
    assert len(gateway.placed) == 2


def test_submit_refused_by_the_broker_is_rejected(om, gateway, catalog):
    gateway.reject = "error 201: margin"
    sub = om.submit(buy(ref="no-margin"))
    assert sub.sent and sub.rejected and "margin" in sub.message
    assert catalog.orders.get("no-margin").status == OrderStatus.REJECTED


def test_submit_without_a_connection_stores_inactive_and_raises(om, gateway, catalog):
    gateway.down = True
    with pytest.raises(NotConnected):
        om.submit(buy(ref="offline"))
    assert catalog.orders.get("offline").status == OrderStatus.INACTIVE


def test_on_fill_writes_once_and_follows_the_order_to_filled(om, catalog):
    order = om.submit(buy("150", ref="f-1")).record.order
    first, second = fill_of(order, "100", "10", "1"), fill_of(order, "50", "13", "0.5")
    assert om.on_fill(first) and not om.on_fill(first)
    rec = catalog.orders.get("f-1")
    assert (rec.status, rec.filled_quantity, rec.avg_fill_price) == (
        OrderStatus.PARTIALLY_FILLED, D(100), D(10)
    )  # fmt: skip
    assert om.on_fill(second)
    rec = catalog.orders.get("f-1")
    assert (rec.status, rec.filled_quantity, rec.avg_fill_price) == (
        OrderStatus.FILLED, D(150), D(11)
    )  # fmt: skip
    [pos] = om.positions()
    # no mark: the last fill's price (13) marks it: (13 - 11) * 150 = 300
    assert (pos.quantity, pos.avg_cost, pos.commission, pos.unrealized_pnl) == (
        D(150), D(11), D("1.5"), D(300)
    )  # fmt: skip
    om.mark({AAPL: D(12)})
    assert om.positions()[0].unrealized_pnl == D(150)
    assert [f.exec_id for f in om.executions(order_ref="f-1")] == [first.exec_id, second.exec_id]


def test_stale_status_after_the_fill_is_ignored(om, gateway):
    order = om.submit(buy("10", ref="s-1")).record.order
    om.on_fill(fill_of(order, "10", "5"))
    after = om.on_order_status(gateway.ack(order, OrderStatus.SUBMITTED))
    assert after is not None and after.status == OrderStatus.FILLED and after.filled_quantity == 10


def test_a_final_status_is_reached_through_the_transition_table(om, gateway, catalog):
    gateway.down = True
    with pytest.raises(NotConnected):
        om.submit(buy("10", ref="late"))
    gateway.down = False
    order = catalog.orders.get("late").order
    om.on_fill(fill_of(order, "10", "5"))  # Inactive -> Submitted -> Filled
    assert catalog.orders.get("late").status == OrderStatus.FILLED


def test_unknown_or_clashing_fills_become_risk_events(om, catalog):
    ghost = Fill(exec_id="g1", order_ref="nobody", instrument=AAPL, side=Side.BUY,
                 quantity=D(1), price=D(1), commission=D(0), time=T0)  # fmt: skip
    assert om.on_fill(ghost) is False
    order = om.submit(buy("10", ref="c-1")).record.order
    good = fill_of(order, "5", "5")
    om.on_fill(good)
    assert om.on_fill(replace(good, price=D(6))) is False
    kinds = sorted(e.kind for e in catalog.risk.events())
    assert kinds == ["execution_conflict", "unknown_execution"]
    assert len(om.errors) == 2


def test_cancel_sends_the_broker_order_id_and_a_done_order_is_left_alone(om, gateway, catalog):
    om.submit(buy("10", ref="k-1", order_type=OrderType.LIMIT, limit_price=D(1)))
    assert om.cancel("k-1").status == OrderStatus.CANCELLED and gateway.cancelled == [1]
    assert om.cancel("k-1").status == OrderStatus.CANCELLED and gateway.cancelled == [1]
    with pytest.raises(NotFound):
        om.cancel("nothing")


def test_reconcile_recovers_missed_fills_once_updates_orders_and_reports_mismatches(
    om, gateway, catalog
):
    a = om.submit(buy("10", ref="r-a")).record.order
    b = om.submit(buy("4", ref="r-b")).record.order
    missed = [fill_of(a, "6", "10"), fill_of(a, "4", "11")]
    om.on_fill(missed[0])
    gateway.broker_fills = missed
    gateway.statuses["r-a"] = gateway.ack(a, OrderStatus.FILLED, "10", avg_fill_price=D("10.4"))
    # r-b: IB knows nothing of it and no execution covers it -> Inactive
    gateway.broker_positions = [held(AAPL, "10", "10.4"), held("BHP.ASX", "3", "40")]
    report = om.reconcile()
    assert [f.exec_id for f in report.recovered] == [missed[1].exec_id]
    assert {r.order_ref: r.status for r in report.updated} == {
        "r-a": OrderStatus.FILLED, "r-b": OrderStatus.INACTIVE
    }  # fmt: skip
    assert [(m.instrument, m.broker, m.catalog) for m in report.mismatches] == [
        ("BHP.ASX", D(3), D(0))
    ]
    assert not report.clean
    [event] = catalog.risk.events(kind="reconcile_mismatch")
    assert event.detail["instrument"] == "BHP.ASX" and event.detail["difference"] == "3"
    again = om.reconcile()  # nothing new to recover; the mismatch is recorded again
    assert again.recovered == () and again.updated == () and len(again.mismatches) == 1
    assert len(om.executions(order_ref="r-a")) == 2
    assert catalog.orders.get("r-a").avg_fill_price == D("10.4")
    assert b.order_ref == "r-b"


def test_emergency_flatten_cancels_open_orders_and_sends_market_orders_to_zero(
    om, gateway, catalog
):
    om.submit(buy("10", ref="open-1", order_type=OrderType.LIMIT, limit_price=D(1)))
    om.risk.emergency_stop("drill", by="ops")  # a halted switch does not stop the flatten
    gateway.broker_positions = [
        held(AAPL, "7", "10"),
        held("BHP.ASX", "-3", "40"),
        held("CBA.ASX", "0", "0"),
    ]
    report = om.emergency_flatten(reason="drill")
    assert [r.order_ref for r in report.cancelled] == ["open-1"] and report.failures == ()
    sent = {(o.instrument, o.side, o.quantity, o.order_type) for o in gateway.placed[1:]}
    assert sent == {(AAPL, Side.SELL, D(7), OrderType.MARKET),
                    ("BHP.ASX", Side.BUY, D(3), OrderType.MARKET)}  # fmt: skip
    assert all(r.order_ref.startswith("flatten-") for r in report.orders)
    assert all(
        catalog.orders.get(r.order_ref).status == OrderStatus.SUBMITTED for r in report.orders
    )
    assert om.submit(buy("1")).rejected  # ordinary orders still meet the halt
    [event] = catalog.risk.events(kind="emergency_flatten")
    assert event.detail["cancelled"] == ["open-1"]


def test_apply_ack_never_moves_filled_back(om, gateway, catalog):
    order = om.submit(buy("10", ref="b-1")).record.order
    om.on_fill(fill_of(order, "6", "5"))
    stale = gateway.ack(order, OrderStatus.PARTIALLY_FILLED, "2")
    assert om.apply_ack(stale).filled_quantity == D(6)
    with pytest.raises(Conflict):
        catalog.orders.update_status("b-1", OrderStatus.PARTIALLY_FILLED, filled=D(1))


# --- the kill switch acting on its own ---------------------------------------------------------


class Broker:
    """The broker's NetLiquidation, as the test sets it (None: the gateway reports none)."""

    def __init__(self, value: str | None) -> None:
        self.value = None if value is None else D(value)

    def __call__(self) -> D | None:
        return self.value


def watched(catalog: Catalog, gateway: FakeGateway, *, net: Broker, base: str | None = None,
            halts: list[KillSwitchEvent] | None = None) -> OrderManager:  # fmt: skip
    risk = RiskManager(catalog.risk)
    reacted = halts if halts is not None else []
    watch = EquityWatch(risk, net_liquidation=net, base_equity=None if base is None else D(base),
                        on_halt=reacted.append)  # fmt: skip
    return OrderManager(catalog, gateway, risk, equity=watch)


def test_a_fill_that_breaches_the_daily_loss_halts_with_the_brokers_net_liquidation(
    catalog, gateway
):
    net, halts = Broker("100000"), []
    om = watched(catalog, gateway, net=net, halts=halts)
    om.risk.set_limits("global", {"max_daily_loss": "500"}, by="ops")
    om.reconcile()  # the day's first equity: 100000
    order = om.submit(buy("100", ref="loser")).record.order
    net.value = D("99600")
    assert om.on_fill(fill_of(order, "50", "10")) and halts == []  # 400 down: allowed
    net.value = D("99400")
    om.on_fill(fill_of(order, "50", "10"))
    [event] = halts  # 600 down: tripped once, by this fill
    assert (event.kind, event.limit) == ("halted", "max_daily_loss")
    assert om.risk.state().halted and om.equity is not None
    assert om.equity.last is not None and om.equity.last.source == "net_liquidation"
    [row] = catalog.risk.events(kind="halted")
    assert row.limit_name == "max_daily_loss" and "daily loss 600.00" in row.detail["reason"]
    om.mark({AAPL: D(9)})  # still halted: observed again, no second trip
    assert len(halts) == 1 and om.submit(buy("1")).rejected


def test_without_net_liquidation_the_equity_is_the_base_plus_the_net_pnl(catalog, gateway):
    halts: list[KillSwitchEvent] = []
    om = watched(catalog, gateway, net=Broker(None), base="10000", halts=halts)
    om.risk.set_limits("global", {"max_drawdown_pct": "1"}, by="ops")
    om.mark({})
    order = om.submit(buy("100", ref="dd")).record.order
    om.on_fill(fill_of(order, "100", "10", "1"))  # bought at 10, marked at the fill: -1
    assert om.equity is not None and om.equity.last is not None
    assert (om.equity.last.equity, om.equity.last.source) == (D(9999), "base_plus_pnl")
    assert halts == []
    om.mark({AAPL: D("8.9")})  # (8.9 - 10) * 100 - 1 = -111: 1.11 % below 10000
    assert om.equity.last.equity == D(9889) and om.equity.last.net_pnl == D(-111)
    [event] = halts
    assert event.limit == "max_drawdown_pct" and om.risk.state().halted


def test_the_base_is_learnt_from_the_last_net_liquidation(catalog, gateway):
    net = Broker("50000")
    om = watched(catalog, gateway, net=net)
    order = om.submit(buy("10", ref="b")).record.order
    om.on_fill(fill_of(order, "10", "10", "2"))  # net P&L -2 at NetLiquidation 50000
    assert om.equity is not None and om.equity.base == D(50002)
    net.value = None  # the gateway stops answering
    om.mark({AAPL: D(12)})  # +20 - 2
    assert om.equity.last is not None
    assert (om.equity.last.equity, om.equity.last.source) == (D(50020), "base_plus_pnl")


def test_an_unknown_equity_is_not_observed(catalog, gateway):
    om = watched(catalog, gateway, net=Broker(None))
    om.mark({AAPL: D(1)})
    assert om.equity is not None and om.equity.last is None
    assert om.risk.state().marks is None


def test_halt_trading_pauses_running_deployments_cancels_open_orders_and_records_it(
    catalog, gateway
):
    from actors.deployments import DeploymentSpec, create_deployment
    from storage.catalog import DeploymentStatus

    spec = DeploymentSpec(strategy="sma_cross", params={"fast": 2, "slow": 3},
                          instruments=[AAPL], capital=10_000, account="DU1")  # fmt: skip
    running, idle = create_deployment(catalog, spec), create_deployment(catalog, spec)
    catalog.deployments.set_status(running.id, DeploymentStatus.RUNNING)
    told: list[int] = []
    halts: list[dict[str, object]] = []

    def react(event: KillSwitchEvent) -> None:
        halts.append(halt_trading(event, catalog=catalog, orders=om, tell_runner=told.append))

    net = Broker("20000")
    risk = RiskManager(catalog.risk)
    om = OrderManager(catalog, gateway, risk, equity=EquityWatch(risk, net_liquidation=net,
                                                                 on_halt=react))  # fmt: skip
    risk.set_limits("global", {"max_daily_loss": "100"}, by="ops")
    om.reconcile()
    om.submit(buy("10", ref="resting", order_type=OrderType.LIMIT, limit_price=D(1)))
    order = om.submit(buy("10", ref="hit")).record.order
    net.value = D("19800")
    om.on_fill(fill_of(order, "10", "10"))
    [done] = halts
    assert done["paused"] == [running.id] and told == [running.id]
    assert done["cancelled"] == ["resting"] and done["failures"] == []
    assert catalog.deployments.get(running.id).status is DeploymentStatus.PAUSED
    assert catalog.deployments.get(idle.id).status is DeploymentStatus.CREATED
    assert catalog.orders.get("resting").status == OrderStatus.CANCELLED
    [row] = catalog.risk.events(kind="halt_actions")
    assert row.detail["paused"] == [running.id] and row.detail["cancelled"] == ["resting"]
    assert row.limit_name == "max_daily_loss"
