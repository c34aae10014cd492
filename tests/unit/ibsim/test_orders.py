"""Matching, commissions, positions and account arithmetic of ibsim.orders.Broker."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from ibsim.orders import Broker, FillEvent, Quote, SimOrder, commission_for

NOW = datetime(2024, 3, 5, 15, tzinfo=UTC)
QUOTE = Quote(bid=99.99, ask=100.01, last=100.0)


def _order(c, *, action="BUY", qty=100, kind="MKT", lmt=None, aux=None, oid=1) -> SimOrder:
    return SimOrder(
        order_id=oid,
        client_id=1,
        perm_id=oid,
        contract=c,
        exchange="SMART",
        action=action,
        total_qty=Decimal(qty),
        order_type=kind,
        lmt_price=lmt,
        aux_price=aux,
    )


@pytest.mark.parametrize(
    ("shares", "value", "expected"),
    [(100, 10_000.0, 1.0), (1000, 100_000.0, 5.0), (100, 50.0, 0.5)],
)
def test_us_fixed_pricing_has_minimum_and_one_percent_cap(aapl, shares, value, expected) -> None:
    assert commission_for(aapl, shares=Decimal(shares), value=value) == expected


def test_market_buy_fills_at_the_ask_and_the_account_adds_up(aapl) -> None:
    broker = Broker(account="DU1")
    events, reason = broker.place(_order(aapl), QUOTE, NOW)
    assert reason == ""
    fill = next(e for e in events if isinstance(e, FillEvent))
    assert fill.execution.price == 100.01 and fill.execution.commission == 1.0
    assert broker.positions[aapl.con_id].qty == 100
    values = broker.account_values({aapl.con_id: 102.0})
    net, unreal = values["NetLiquidation"][0], values["UnrealizedPnL"][0]
    assert net == pytest.approx(1_000_000 + unreal)
    assert unreal == pytest.approx((102.0 - 100.01) * 100 - 1.0)


def test_round_trip_realizes_pnl_net_of_both_commissions(aapl) -> None:
    broker = Broker(account="DU1")
    broker.place(_order(aapl), QUOTE, NOW)
    later = Quote(bid=110.0, ask=110.02, last=110.01)
    events, _ = broker.place(_order(aapl, action="SELL", oid=2), later, NOW)
    fill = next(e for e in events if isinstance(e, FillEvent))
    assert fill.execution.realized_pnl == pytest.approx((110.0 - 100.01) * 100 - 2.0)
    assert broker.cash["USD"] == pytest.approx(1_000_000 + fill.execution.realized_pnl)


def test_limit_rests_until_the_market_reaches_it_and_can_be_cancelled(aapl) -> None:
    broker = Broker(account="DU1")
    order = _order(aapl, kind="LMT", lmt=90.0)
    events, _ = broker.place(order, QUOTE, NOW)
    assert order.status == "Submitted" and not any(isinstance(e, FillEvent) for e in events)
    assert broker.match(lambda c: QUOTE, NOW) == []
    assert broker.cancel(1, 1, NOW) is order and order.status == "Cancelled"
    assert broker.cancel(1, 1, NOW) is None
    assert (order.done_at, order.completed_status) == (NOW, "Cancelled by API")


def test_completed_lists_filled_cancelled_and_rejected_orders_in_completion_order(aapl) -> None:
    broker = Broker(account="DU1")
    resting = _order(aapl, kind="LMT", lmt=90.0, oid=1)
    broker.place(resting, QUOTE, NOW)
    filled = _order(aapl, oid=2)
    broker.place(filled, QUOTE, NOW + timedelta(seconds=1))
    broker.reject_next("No margin")
    rejected = _order(aapl, oid=3)
    broker.place(rejected, QUOTE, NOW + timedelta(seconds=2))
    assert broker.completed() == [filled, rejected]  # the resting order is still working
    broker.cancel(1, 1, NOW + timedelta(seconds=3))
    assert broker.completed() == [filled, rejected, resting]
    assert [o.completed_status for o in broker.completed()] == [
        "Filled",
        "Rejected: No margin",
        "Cancelled by API",
    ]
    assert filled.completed_time == "20240305 15:00:01 UTC"


def test_stop_triggers_when_last_crosses_then_fills(aapl) -> None:
    broker = Broker(account="DU1")
    order = _order(aapl, action="SELL", kind="STP", aux=95.0)
    broker.place(order, QUOTE, NOW)
    assert order.status == "PreSubmitted"
    broker.match(lambda c: Quote(bid=94.9, ask=95.0, last=94.95), NOW)
    assert order.status == "Filled" and order.avg_fill_price == 94.9


def test_large_order_fills_in_chunks_and_commission_totals_the_order_rate(aapl) -> None:
    broker = Broker(account="DU1", fill_chunk=Decimal(1000))
    order = _order(aapl, qty=2500)
    broker.place(order, QUOTE, NOW)
    assert order.filled == 1000 and order.status == "Submitted"
    broker.match(lambda c: QUOTE, NOW)
    broker.match(lambda c: QUOTE, NOW)
    assert order.filled == 2500 and order.status == "Filled"
    total = sum(e.commission for e in broker.executions)
    assert len(broker.executions) == 3 and total == pytest.approx(12.5)


def test_rejections_name_the_reason(aapl) -> None:
    broker = Broker(account="DU1")
    broker.reject_next("Insufficient margin")
    assert broker.place(_order(aapl), QUOTE, NOW)[1] == "Insufficient margin"
    assert "not supported" in broker.place(_order(aapl, kind="TRAIL", oid=2), QUOTE, NOW)[1]
    assert "limit price" in broker.place(_order(aapl, kind="LMT", oid=3), QUOTE, NOW)[1]


def test_closed_market_holds_orders_and_day_orders_expire(aapl) -> None:
    broker = Broker(account="DU1")
    close = datetime(2024, 3, 5, 21, tzinfo=UTC)
    closed = Quote(bid=99.0, ask=99.1, last=99.05, is_open=False, session_close=close)
    order = _order(aapl)
    broker.place(order, closed, NOW)
    assert order.filled == 0
    broker.match(lambda c: closed, close)
    assert order.status == "Cancelled"
