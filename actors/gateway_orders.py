"""Orders through the gateway: send once, wait for IB's first answer, detect rejections."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import ib_async

from actors import ib_convert as conv
from actors.pacing import Priority
from core.errors import NotConnected, NotFound, OrderRejected
from core.types import Order

if TYPE_CHECKING:
    from actors.gateway_service import GatewayService

_PENDING = frozenset({"PendingSubmit", "ApiPending"})


async def place(svc: GatewayService, order: Order, *, wait: float) -> conv.OrderAck:
    """Send ``order`` once (never retried) and return its state after IB's first answer.

    Raises:
        OrderRejected: if IB refused the order.
        NotConnected: if there is no connection.
    """
    inst = svc.known_instrument(order.symbol)
    await svc.conn.ensure_connected(svc.request_timeout)
    async with svc.pacer.message(Priority.LIVE):
        svc.observer.request("place_order")
        try:
            trade = svc.ib.placeOrder(
                conv.to_contract(inst), conv.to_ib_order(order, account=svc.account)
            )
        except ConnectionError as exc:
            raise NotConnected(f"order not sent: connection lost ({exc})") from exc
    await _settled(trade, wait)
    ack = conv.trade_ack(trade)
    reason = _rejection(trade)
    if reason:
        raise OrderRejected(
            f"IB rejected order {ack.order_id} ({order.side} {order.quantity} "
            f"{order.symbol}): {reason}"
        )
    return ack


async def cancel(svc: GatewayService, order_id: int) -> conv.OrderAck:
    """Ask IB to cancel order ``order_id``; return its state.

    Raises:
        NotFound: if this session knows no such order.
    """
    trade = find(svc.ib, order_id)
    await svc.conn.ensure_connected(svc.request_timeout)
    async with svc.pacer.message(Priority.LIVE):
        svc.observer.request("cancel_order")
        svc.ib.cancelOrder(trade.order)
    return conv.trade_ack(trade)


def find(ib: ib_async.IB, order_id: int) -> ib_async.Trade:
    """Return the trade of order ``order_id`` in this session.

    Raises:
        NotFound: if there is none.
    """
    for trade in ib.trades():
        if trade.order.orderId == order_id:
            return trade
    raise NotFound(f"order {order_id} is unknown to this gateway session")


async def _settled(trade: ib_async.Trade, wait: float) -> None:
    """Wait up to ``wait`` s for IB's first answer to a new order (never blocks the loop)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    changed = asyncio.Event()

    def on_status(*_: object) -> None:
        changed.set()

    trade.statusEvent += on_status
    try:
        while trade.orderStatus.status in _PENDING and not trade.log[-1].errorCode:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            changed.clear()
            try:
                await asyncio.wait_for(changed.wait(), remaining)
            except TimeoutError:
                return
    finally:
        trade.statusEvent -= on_status


def _rejection(trade: ib_async.Trade) -> str:
    """Return IB's reason when it refused a new order ("" when it did not)."""
    if trade.orderStatus.status not in ("Cancelled", "ApiCancelled", "Inactive"):
        return ""
    errors = [e for e in trade.log if e.errorCode and e.errorCode != 202]
    return f"error {errors[-1].errorCode}: {errors[-1].message}" if errors else ""
