"""Find where an order stands, also after the gateway restarted and forgot its trades.

An order is named by its ``order_ref`` (SCIZOR's reference, unique per order) or by an IB
id: an orderId of this connection or a permId. :class:`OrderFinder` looks in this order:

1. this connection's trades (placed by it, or synced by ib_async when it connected) when
   they are still followed live or already final;
2. IB's open orders of every client (``reqAllOpenOrders``);
3. IB's completed orders of the day (``reqCompletedOrders``);
4. the injected :data:`OrderLookup` (SCIZOR's own records; an order manager backs it with
   the catalog), which maps an ``order_ref`` to the :class:`core.types.Order` it sent.

The answer's :attr:`actors.order_acks.OrderAck.source` says where it was found. An order
only the lookup knows is ``Filled`` when IB's executions still cover it, else ``Inactive``.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

import ib_async

from actors.contract_resolver import ContractResolver
from actors.fill_feed import FillFeed
from actors.ib_link import IBLink
from actors.order_acks import AckSource, OrderAck, lookup_ack, trade_ack
from core.errors import Conflict, NotFound
from core.types import Order

OrderLookup = Callable[[str], Order | Awaitable[Order | None] | None]
"""``order_lookup(order_ref) -> Order | None`` (sync or async): the order SCIZOR sent
under ``order_ref``, or None if it knows none."""

OrderKey = str | int
"""An ``order_ref`` (str), or an IB orderId of this connection or a permId (int)."""


class OrderFinder:
    """Look orders up in this session, at IB, and in SCIZOR's records.

    Args:
        link: The paced request path.
        resolver: Names each order's listing by canonical id.
        fills: The gateway's fills (for average prices and lookup-only orders).
        lookup: SCIZOR's own records of the orders it sent (optional).
    """

    def __init__(
        self,
        link: IBLink,
        resolver: ContractResolver,
        *,
        fills: FillFeed,
        lookup: OrderLookup | None = None,
    ) -> None:
        self._link = link
        self._resolver = resolver
        self._fills = fills
        self._lookup = lookup

    async def status(self, key: OrderKey) -> OrderAck:
        """Return where the order ``key`` names stands.

        Raises:
            NotFound: if neither IB nor the lookup knows the order.
            Conflict: if several IB orders carry the same ``order_ref``.
            BrokerError: if IB does not answer (NotConnected without a connection).
        """
        ib = self._link.ib
        session = [t for t in ib.trades() if self._followed(t)]
        found = _one(key, session)
        source = AckSource.SESSION
        if found is None:
            found, source = await self._at_ib(key)
        if found is not None:
            return await self._ack(found, source)
        order = await self._looked_up(key)
        if order is None:
            raise NotFound(f"no order {key!r} at IB or in SCIZOR's records (order_ref/permId)")
        return lookup_ack(order, fills=await self._fills.executions())

    async def _at_ib(self, key: OrderKey) -> tuple[ib_async.Trade | None, AckSource]:
        ib = self._link.ib
        open_now = await self._link.paced_request("open_orders", ib.reqAllOpenOrdersAsync)
        found = _one(key, open_now, by_order_id=False)
        if found is not None:
            return found, AckSource.OPEN_ORDERS
        done = await self._link.paced_request(
            "completed_orders", lambda: ib.reqCompletedOrdersAsync(False)
        )
        return _one(key, done, by_order_id=False), AckSource.COMPLETED_ORDERS

    async def _ack(self, trade: ib_async.Trade, source: AckSource) -> OrderAck:
        instrument = await self._resolver.instrument_id(trade.contract)
        ref = trade.order.orderRef
        fills = [f for f in await self._fills.executions() if ref and f.order_ref == ref]
        return trade_ack(trade, instrument=instrument, source=source, fills=fills)

    async def _looked_up(self, key: OrderKey) -> Order | None:
        if self._lookup is None or not isinstance(key, str):
            return None
        found = self._lookup(key)
        return await found if inspect.isawaitable(found) else found

    def _followed(self, trade: ib_async.Trade) -> bool:
        """True for a trade whose status this connection keeps up to date (or final)."""
        own = trade.order.clientId == self._link.ib.client.clientId and trade.order.orderId > 0
        return own or trade.orderStatus.status in _FINAL


_FINAL = frozenset({"Filled", "Cancelled", "ApiCancelled", "Inactive"})
"""IB statuses after which an order changes no more (a snapshot of it stays true)."""


def _one(
    key: OrderKey, trades: list[ib_async.Trade], *, by_order_id: bool = True
) -> ib_async.Trade | None:
    """The trade ``key`` names among ``trades``, or None.

    Raises:
        Conflict: if an order_ref names several orders (distinct permIds).
    """
    if isinstance(key, str):
        matches = [t for t in trades if key and t.order.orderRef == key]
    else:
        matches = [
            t for t in trades if t.order.permId == key or (by_order_id and t.order.orderId == key)
        ]
    perm_ids = {t.order.permId or id(t) for t in matches}
    if len(perm_ids) > 1:
        raise Conflict(
            f"order_ref {key!r} names several IB orders (permIds {sorted(map(str, perm_ids))})"
        )
    return matches[-1] if matches else None
