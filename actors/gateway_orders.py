"""Orders through the gateway: send once, wait for IB's first answer, detect rejections.

An order names its listing by canonical id (and conId when known); :class:`OrderDesk`
resolves that to the one IB contract (qualified by conId when the order carries one) before
anything is sent, so an order for ``VEA.ASX`` can never reach NYSE Arca's ``VEA``.
"""

from __future__ import annotations

import asyncio
import dataclasses

import ib_async

from actors import ib_convert as conv
from actors.contract_resolver import ContractResolver
from actors.contracts import instrument_for_id
from actors.ib_link import IBLink
from actors.order_acks import OrderAck, trade_ack
from core.errors import Conflict, NotFound, OrderRejected
from core.types import Instrument, Order

_PENDING = frozenset({"PendingSubmit", "ApiPending"})


class OrderDesk:
    """Place, cancel and look up orders over one :class:`actors.ib_link.IBLink`.

    Args:
        link: The paced request path.
        resolver: Resolves an order's canonical id and conId to its IB contract.
    """

    def __init__(self, link: IBLink, resolver: ContractResolver) -> None:
        self._link = link
        self._resolver = resolver

    async def place(self, order: Order, *, wait: float) -> OrderAck:
        """Send ``order`` once (never retried) and return its state after IB's first answer.

        Raises:
            OrderRejected: if IB refused the order.
            NotConnected: if there is no connection.
            NotFound: if IB has no such listing.
            Conflict: if the order's conId belongs to another listing.
        """
        inst = await self.listing(order)
        contract = conv.to_contract(inst)
        ib_order = conv.to_ib_order(order, account=self._link.account)
        async with self._link.live_message("place_order"):
            trade = self._link.ib.placeOrder(contract, ib_order)
        await _settled(trade, wait)
        ack = trade_ack(trade, instrument=inst.id)
        reason = _rejection(trade)
        if reason:
            raise OrderRejected(
                f"IB rejected order {ack.order_id} ({order.side} {order.quantity} "
                f"{order.instrument}): {reason}"
            )
        return ack

    async def listing(self, order: Order) -> Instrument:
        """Return the qualified listing ``order`` is for (by conId when it has one).

        Raises:
            NotFound: if IB has no such listing.
            Conflict: if the conId is another listing's.
        """
        wanted = dataclasses.replace(instrument_for_id(order.instrument), con_id=order.con_id)
        inst = await self._resolver.resolve(wanted)
        if inst.id != order.instrument:
            raise Conflict(f"order for {order.instrument} resolved to {inst.id}; not sent")
        return inst

    async def cancel(self, order_id: int) -> OrderAck:
        """Ask IB to cancel order ``order_id``; return its state.

        Raises:
            NotFound: if this session knows no such order.
        """
        trade = self.trade(order_id)
        async with self._link.live_message("cancel_order"):
            self._link.ib.cancelOrder(trade.order)
        return await self.ack(trade)

    async def ack(self, trade: ib_async.Trade) -> OrderAck:
        """Return where ``trade`` stands, its listing named by canonical id."""
        return trade_ack(trade, instrument=await self._resolver.instrument_id(trade.contract))

    def trade(self, order_id: int) -> ib_async.Trade:
        """Return the trade of order ``order_id`` in this session.

        Raises:
            NotFound: if there is none.
        """
        for trade in self._link.ib.trades():
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
