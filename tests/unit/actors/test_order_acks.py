"""Unit tests of actors.order_acks: one OrderAck from live, completed and lookup-only orders."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import ib_async

from actors.order_acks import AckSource, average_price, lookup_ack, trade_ack
from core.types import Fill, Order, OrderStatus, Side

WHEN = datetime(2024, 3, 12, 15, 1, tzinfo=UTC)


def fill(exec_id: str, quantity: int, price: str, ref: str = "r1") -> Fill:
    return Fill(
        exec_id=exec_id,
        order_ref=ref,
        instrument="MSFT.NASDAQ",
        side=Side.BUY,
        quantity=quantity,
        price=price,
        commission=Decimal(1),
        time=WHEN,
    )


def test_trade_ack_of_a_live_trade_uses_its_order_status() -> None:
    trade = ib_async.Trade(
        contract=ib_async.Contract(conId=393556148, symbol="MSFT"),
        order=ib_async.Order(orderId=7, permId=99, totalQuantity=10, orderRef="r1"),
        orderStatus=ib_async.OrderStatus(
            status="Submitted", filled=4, remaining=6, avgFillPrice=101.5
        ),
    )
    ack = trade_ack(trade, instrument="MSFT.NASDAQ")
    assert (ack.status, ack.filled, ack.remaining) == (
        OrderStatus.PARTIALLY_FILLED,
        Decimal(4),
        Decimal(6),
    )
    assert (ack.avg_fill_price, ack.perm_id, ack.source) == (
        Decimal("101.5"),
        99,
        AckSource.SESSION,
    )


def test_trade_ack_of_a_completed_order_takes_filled_from_the_order_and_price_from_fills() -> None:
    # what ib_async builds from completedOrder: only the status, no filled/remaining/price
    trade = ib_async.Trade(
        contract=ib_async.Contract(conId=393556148, symbol="MSFT", exchange="SMART"),
        order=ib_async.Order(permId=99, totalQuantity=1500, filledQuantity=1500, orderRef="r1"),
        orderStatus=ib_async.OrderStatus(status="Filled"),
    )
    fills = [fill("e1", 1000, "100"), fill("e2", 500, "103")]
    ack = trade_ack(trade, instrument="MSFT.NASDAQ", source=AckSource.COMPLETED_ORDERS, fills=fills)
    assert (ack.status, ack.filled, ack.remaining) == (
        OrderStatus.FILLED,
        Decimal(1500),
        Decimal(0),
    )
    assert ack.avg_fill_price == Decimal(101) and ack.source == AckSource.COMPLETED_ORDERS
    assert ack.order_id == 0 and ack.con_id == 393556148


def test_trade_ack_of_a_completed_order_ib_left_unfilled_has_no_price() -> None:
    trade = ib_async.Trade(
        contract=ib_async.Contract(conId=1, symbol="X"),
        order=ib_async.Order(permId=5, totalQuantity=3, orderRef="r9"),  # filledQuantity unset
        orderStatus=ib_async.OrderStatus(status="Cancelled"),
    )
    ack = trade_ack(trade, instrument="X.NYSE", source=AckSource.COMPLETED_ORDERS)
    assert (ack.status, ack.filled, ack.remaining, ack.avg_fill_price) == (
        OrderStatus.CANCELLED,
        Decimal(0),
        Decimal(0),
        None,
    )


def test_lookup_ack_is_filled_when_fills_cover_the_order_else_inactive() -> None:
    order = Order(instrument="MSFT.NASDAQ", side=Side.BUY, quantity=3, order_ref="r1")
    done = lookup_ack(
        order, fills=[fill("e1", 2, "10"), fill("e2", 1, "13"), fill("x", 5, "1", "r2")]
    )
    assert (done.status, done.filled, done.avg_fill_price, done.source) == (
        OrderStatus.FILLED,
        Decimal(3),
        Decimal(11),
        AckSource.LOOKUP,
    )
    part = lookup_ack(order, fills=[fill("e1", 2, "10")])
    assert (part.status, part.filled, part.remaining) == (
        OrderStatus.INACTIVE,
        Decimal(2),
        Decimal(0),
    )
    assert "no open or completed order" in part.message
    assert average_price([]) is None
