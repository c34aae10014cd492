"""Where an order stands at the broker, as the gateway reports it (:class:`OrderAck`).

IB describes an order in several shapes: a trade this session follows live (orderStatus
carries filled, remaining and the average price), an order IB lists as completed
(``completedOrder`` carries only the final status and the filled quantity), or nothing at
all when IB has forgotten it and only SCIZOR's own records know it. Each becomes one
:class:`OrderAck`, whose ``source`` says which of these it came from.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

import ib_async

from actors.ib_convert import decimal
from core.types import Fill, Order, OrderStatus

_STATUS = {
    "PendingSubmit": OrderStatus.PENDING_SUBMIT,
    "ApiPending": OrderStatus.PENDING_SUBMIT,
    "PreSubmitted": OrderStatus.PRE_SUBMITTED,
    "Submitted": OrderStatus.SUBMITTED,
    "ApiUpdate": OrderStatus.SUBMITTED,
    "ValidationError": OrderStatus.SUBMITTED,  # a warning: the order is still live
    "PendingCancel": OrderStatus.PENDING_CANCEL,
    "Cancelled": OrderStatus.CANCELLED,
    "ApiCancelled": OrderStatus.CANCELLED,
    "Filled": OrderStatus.FILLED,
    "Inactive": OrderStatus.INACTIVE,
}


class AckSource(StrEnum):
    """Where the gateway found the order."""

    SESSION = "session"
    """A trade of this connection (placed by it, or synced by ib_async when it connected)."""
    OPEN_ORDERS = "open_orders"
    """IB's open orders of every client (``reqAllOpenOrders``)."""
    COMPLETED_ORDERS = "completed_orders"
    """IB's completed orders of the day (``reqCompletedOrders``)."""
    LOOKUP = "lookup"
    """Only the injected order lookup (SCIZOR's own records) knows the order."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderAck:
    """Where an order stands at the broker.

    Attributes:
        order_id: IB's order id (from nextValidId) in the connection that placed it; 0 when
            IB did not say (a completed order, or one only the lookup knows).
        perm_id: IB's permanent id (0 until the broker assigns one, or when IB forgot it).
        instrument: The canonical instrument id (``VEA.ASX``).
        con_id: IB's contract id of the listing.
        status: SCIZOR order status.
        filled: Quantity filled so far.
        remaining: Quantity still working (0 once the order is done).
        avg_fill_price: Average price of the fills, or None before the first fill.
        order_ref: The caller's reference, echoed back.
        message: The broker's last error or warning text for this order, if any.
        source: Where the gateway found the order (:class:`AckSource`).
    """

    order_id: int
    perm_id: int
    instrument: str
    con_id: int | None
    status: OrderStatus
    filled: Decimal
    remaining: Decimal
    avg_fill_price: Decimal | None
    order_ref: str = ""
    message: str = ""
    source: AckSource = AckSource.SESSION


def order_status(status: str, *, filled: float, remaining: float) -> OrderStatus:
    """Map an IB order status string to SCIZOR's, marking partial fills."""
    mapped = _STATUS.get(status, OrderStatus.SUBMITTED)
    if mapped == OrderStatus.SUBMITTED and filled > 0 and remaining > 0:
        return OrderStatus.PARTIALLY_FILLED
    return mapped


def trade_ack(
    trade: ib_async.Trade,
    *,
    instrument: str,
    source: AckSource = AckSource.SESSION,
    fills: Iterable[Fill] = (),
) -> OrderAck:
    """Return where an ib_async trade of listing ``instrument`` stands.

    A trade from IB's completed orders has no live status: its filled quantity comes from
    the order itself, and its average price from ``fills`` (the order's executions).
    """
    st, order = trade.orderStatus, trade.order
    total = _number(order.totalQuantity)
    filled = st.filled or _number(order.filledQuantity)
    tracked = st.filled > 0 or st.remaining > 0  # a live status, not a completed-order one
    remaining = st.remaining if tracked else max(0.0, total - filled)
    mapped = order_status(st.status, filled=filled, remaining=remaining)
    if mapped in (OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.INACTIVE):
        remaining = 0.0
    avg = st.avgFillPrice if tracked and _number(st.avgFillPrice) > 0 else None
    return OrderAck(
        order_id=order.orderId,
        perm_id=order.permId or st.permId,
        instrument=instrument,
        con_id=trade.contract.conId or None,
        status=mapped,
        filled=decimal(filled),
        remaining=decimal(remaining),
        avg_fill_price=decimal(avg) if avg is not None else average_price(fills),
        order_ref=order.orderRef,
        message=trade.log[-1].message if trade.log else "",
        source=source,
    )


def lookup_ack(order: Order, *, fills: Iterable[Fill]) -> OrderAck:
    """Return where an order stands that IB no longer lists but SCIZOR's records know.

    It is ``Filled`` when the executions IB still reports cover its quantity, otherwise
    ``Inactive``: whatever happened to it, it is not working at IB.
    """
    mine = [f for f in fills if f.order_ref == order.order_ref]
    filled = sum((f.quantity for f in mine), Decimal(0))
    done = filled >= order.quantity
    return OrderAck(
        order_id=0,
        perm_id=0,
        instrument=order.instrument,
        con_id=order.con_id,
        status=OrderStatus.FILLED if done else OrderStatus.INACTIVE,
        filled=filled,
        remaining=Decimal(0),
        avg_fill_price=average_price(mine),
        order_ref=order.order_ref,
        message="" if done else "IB lists no open or completed order with this reference",
        source=AckSource.LOOKUP,
    )


def average_price(fills: Iterable[Fill]) -> Decimal | None:
    """Return the quantity-weighted average price of ``fills`` (None without any)."""
    found = list(fills)
    quantity = sum((f.quantity for f in found), Decimal(0))
    if not quantity:
        return None
    return sum((f.price * f.quantity for f in found), Decimal(0)) / quantity


def _number(value: float | Decimal) -> float:
    """IB's number, or 0 for its "unset" (max float, NaN)."""
    number = float(value)
    return number if math.isfinite(number) and number < 1e300 else 0.0
