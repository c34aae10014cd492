"""Order matching, fills, IBKR fixed-pricing commissions, positions and the account.

A plain class (:class:`Broker`) with no I/O: the server feeds it orders and the current
quotes, and turns the events it returns into openOrder / orderStatus / execDetails /
commissionReport messages. Cash, positions and P&L are kept so that
``NetLiquidation == starting cash + realized + unrealized`` holds at every step.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from ibsim.contracts import ContractInfo
from ibsim.order_records import (
    Event,
    Execution,
    FillEvent,
    OrderEvent,
    PositionState,
    Quote,
    QuoteFn,
    SimOrder,
)
from ibsim.protocol import ib_time

SUPPORTED_TYPES = frozenset({"MKT", "LMT", "STP", "STP LMT"})
AUD_USD = 0.66
"""Fixed conversion rate used to value AUD balances in the USD base currency."""
_ZERO = Decimal(0)
__all__ = [
    "AUD_USD",
    "SUPPORTED_TYPES",
    "Broker",
    "Event",
    "Execution",
    "FillEvent",
    "OrderEvent",
    "PositionState",
    "Quote",
    "QuoteFn",
    "SimOrder",
    "commission_for",
]


def commission_for(contract: ContractInfo, *, shares: Decimal, value: float) -> float:
    """IBKR fixed pricing for a whole order of ``shares`` worth ``value``.

    US: USD 0.005 per share, at least 1.00, at most 1% of trade value. ASX: 0.08% of value,
    at least AUD 5.00.
    """
    if contract.is_asx:
        return round(max(5.0, 0.0008 * value), 2)
    return round(min(max(1.0, 0.005 * float(shares)), 0.01 * value), 4)


class Broker:
    """Orders, fills, positions and cash for one simulated account."""

    def __init__(
        self,
        *,
        account: str,
        cash: float = 1_000_000.0,
        fill_chunk: Decimal = Decimal(1000),
        participation: float | None = None,
    ) -> None:
        """``fill_chunk`` caps one execution; ``participation`` (a fraction, e.g. 0.1) also
        caps what one order may take of each one-minute bar's volume (None: no cap)."""
        if participation is not None and not 0 < participation <= 1:
            raise ValueError(f"participation must be in (0, 1]; got {participation!r}")
        self.account = account
        self.starting_cash = cash
        self.fill_chunk = fill_chunk
        self.participation = participation
        self.cash: dict[str, float] = {"USD": cash}
        self.positions: dict[int, PositionState] = {}
        self.contracts: dict[int, ContractInfo] = {}
        self.orders: dict[tuple[int, int], SimOrder] = {}
        self.executions: list[Execution] = []
        self._next_perm = 1_000_001
        self._next_exec = 1
        self._reject_next: str | None = None

    def next_perm_id(self) -> int:
        """Return a fresh permanent order id."""
        self._next_perm += 1
        return self._next_perm

    def reject_next(self, reason: str) -> None:
        """Make the next placed order fail with ``reason`` (fault injection)."""
        self._reject_next = reason

    def place(self, order: SimOrder, quote: Quote, now: datetime) -> tuple[list[Event], str]:
        """Accept (or reject) a new order and try to match it at once.

        Returns:
            The events to report and a rejection reason ("" when accepted).
        """
        reason = self._rejection(order)
        if reason:
            order.finish("Cancelled", now, f"Rejected: {reason}")
            self.orders[(order.client_id, order.order_id)] = order
            return [], reason
        order.expires = quote.session_close if order.tif == "DAY" else None
        order.status = "PreSubmitted" if order.order_type.startswith("STP") else "Submitted"
        self.orders[(order.client_id, order.order_id)] = order
        self.contracts[order.contract.con_id] = order.contract
        events: list[Event] = [OrderEvent(order)]
        events += self._match_one(order, quote, now)
        return events + self._end_ioc(order, now), ""

    def refuse(self, order: SimOrder, now: datetime, reason: str) -> None:
        """Keep ``order`` as refused by IB's risk checks: ``Inactive``, nothing filled."""
        order.finish("Inactive", now, f"Rejected: {reason}")
        self.orders[(order.client_id, order.order_id)] = order

    def modify(self, change: SimOrder, quote: Quote, now: datetime) -> tuple[list[Event], int, str]:
        """Apply a placeOrder that re-sends a known order id to that order.

        The working order keeps its permId, fills, average price and commission; its
        quantity, prices, type, time in force and reference take the new values.

        Returns:
            The events to report, and an error code and text ((0, "") when modified).
        """
        order = self.orders[(change.client_id, change.order_id)]
        if order.status == "Filled":
            return [], 104, "Can't modify a filled order."
        if order.is_done:
            return [], 103, "Duplicate order id"
        if (change.action, change.contract.con_id) != (order.action, order.contract.con_id):
            return [], 105, "Order being modified does not match original order."
        reason = self._rejection(change)
        if reason:
            return [], 201, f"Order rejected - reason:{reason}"
        if change.total_qty < order.filled:
            return [], 134, "Modify order failed."
        order.total_qty, order.order_type = change.total_qty, change.order_type
        order.lmt_price, order.aux_price = change.lmt_price, change.aux_price
        order.tif, order.outside_rth, order.order_ref = (
            change.tif,
            change.outside_rth,
            change.order_ref,
        )
        order.expires = quote.session_close if order.tif == "DAY" else None
        stop_waiting = order.order_type.startswith("STP") and not order.triggered
        order.status = "PreSubmitted" if stop_waiting else "Submitted"
        if order.remaining == 0:
            order.finish("Filled", now)
            return [OrderEvent(order)], 0, ""
        events: list[Event] = [OrderEvent(order), *self._match_one(order, quote, now)]
        return events + self._end_ioc(order, now), 0, ""

    def _end_ioc(self, order: SimOrder, now: datetime) -> list[Event]:
        """Cancel what an immediate-or-cancel order could not fill at once."""
        if order.tif != "IOC" or order.is_done:
            return []
        order.finish("Cancelled", now, "Cancelled: IOC remainder")
        return [OrderEvent(order)]

    def _rejection(self, order: SimOrder) -> str:
        if self._reject_next is not None:
            reason, self._reject_next = self._reject_next, None
            return reason
        if order.order_type not in SUPPORTED_TYPES:
            return f"Order type {order.order_type} is not supported by ibsim"
        if order.total_qty <= 0:
            return "The order size must be positive"
        if order.order_type in ("LMT", "STP LMT") and not order.lmt_price:
            return "A limit price is required for this order type"
        if order.order_type.startswith("STP") and not order.aux_price:
            return "A stop price is required for this order type"
        return ""

    def cancel(self, client_id: int, order_id: int, now: datetime) -> SimOrder | None:
        """Cancel a working order; return it, or None if unknown or already done."""
        order = self.orders.get((client_id, order_id))
        if order is None or order.is_done:
            return None
        order.finish("Cancelled", now, "Cancelled by API")
        return order

    def match(self, quotes: QuoteFn, now: datetime) -> list[Event]:
        """Run one matching pass over every working order."""
        events: list[Event] = []
        for order in list(self.orders.values()):
            if order.is_done:
                continue
            if order.expires is not None and now >= order.expires:
                order.finish("Cancelled", now, "Cancelled: DAY order expired")
                events.append(OrderEvent(order))
                continue
            events += self._match_one(order, quotes(order.contract), now)
        return events

    def _match_one(self, order: SimOrder, quote: Quote, now: datetime) -> list[Event]:
        if not (quote.is_open or order.outside_rth):
            return []
        buy = order.action == "BUY"
        if order.order_type.startswith("STP") and not order.triggered:
            stop = float(order.aux_price or 0.0)
            if not (quote.last >= stop if buy else quote.last <= stop):
                return []
            order.triggered = True
        price = quote.ask if buy else quote.bid
        if order.order_type in ("LMT", "STP LMT"):
            limit = float(order.lmt_price or 0.0)
            if (buy and price > limit) or (not buy and price < limit):
                return [OrderEvent(order)] if order.status == "PreSubmitted" else []
        qty = min(order.remaining, self.fill_chunk, self._volume_room(order, quote))
        if qty <= 0:
            return []
        order.bar_taken += qty
        return [self._fill(order, qty=qty, price=price, now=now)]

    def _volume_room(self, order: SimOrder, quote: Quote) -> Decimal:
        """Shares ``order`` may still take from the current bar (participation cap)."""
        if self.participation is None:
            return order.remaining
        if quote.bar_epoch != order.bar_epoch:
            order.bar_epoch, order.bar_taken = quote.bar_epoch, _ZERO
        return Decimal(int(self.participation * quote.bar_volume)) - order.bar_taken

    def _fill(self, order: SimOrder, *, qty: Decimal, price: float, now: datetime) -> FillEvent:
        c = order.contract
        before = order.commission_paid
        value_before = order.avg_fill_price * float(order.filled)
        order.filled += qty
        order.avg_fill_price = (value_before + price * float(qty)) / float(order.filled)
        order.last_fill_price = price
        total = commission_for(
            c, shares=order.filled, value=order.avg_fill_price * float(order.filled)
        )
        commission = round(max(0.0, total - before), 4)
        order.commission_paid = before + commission
        if order.remaining == 0:
            order.finish("Filled", now)
        else:
            order.status = "Submitted"
        signed = qty if order.action == "BUY" else -qty
        realized = self._book(c, signed=signed, price=price, commission=commission)
        costs = (commission, round(realized, 4))
        execution = self._execution(order, qty=qty, price=price, now=now, costs=costs)
        self._next_exec += 1
        self.executions.append(execution)
        return FillEvent(order, execution)

    def _execution(
        self,
        order: SimOrder,
        *,
        qty: Decimal,
        price: float,
        now: datetime,
        costs: tuple[float, float],
    ) -> Execution:
        """The report of filling ``qty`` of ``order`` at ``price``; costs: commission, P&L."""
        c = order.contract
        return Execution(
            exec_id=f"0000e0d5.{self._next_exec:08x}.01.01",
            order_id=order.order_id,
            client_id=order.client_id,
            perm_id=order.perm_id,
            contract=c,
            exchange=c.primary_exchange,
            side="BOT" if order.action == "BUY" else "SLD",
            shares=qty,
            price=price,
            time=ib_time(now),
            moment=now,
            account=self.account,
            cum_qty=order.filled,
            avg_price=round(order.avg_fill_price, 6),
            order_ref=order.order_ref,
            commission=costs[0],
            currency=c.currency,
            realized_pnl=costs[1],
        )

    def _book(self, c: ContractInfo, *, signed: Decimal, price: float, commission: float) -> float:
        """Update cash and the position; return the realized P&L of this fill."""
        pos = self.positions.setdefault(c.con_id, PositionState())
        cash = self.cash.setdefault(c.currency, 0.0)
        self.cash[c.currency] = cash - float(signed) * price - commission
        realized = 0.0
        same_side = pos.qty == 0 or (pos.qty > 0) == (signed > 0)
        if same_side:
            basis = pos.avg_cost * float(abs(pos.qty)) + (price * float(abs(signed)))
            basis += commission if signed > 0 else -commission
            pos.qty += signed
            pos.avg_cost = basis / float(abs(pos.qty))
        else:
            closing = min(abs(signed), abs(pos.qty))
            direction = 1.0 if pos.qty > 0 else -1.0
            realized = (price - pos.avg_cost) * float(closing) * direction - commission
            pos.qty += signed
            if pos.qty != 0 and (pos.qty > 0) == (signed > 0):
                pos.avg_cost = price  # flipped through zero: the rest opened at this price
            elif pos.qty == 0:
                pos.avg_cost = 0.0
        pos.realized += realized
        return realized

    def unrealized(self, con_id: int, price: float) -> float:
        """Unrealized P&L of the position in ``con_id`` at ``price``."""
        pos = self.positions.get(con_id)
        if pos is None or pos.qty == 0:
            return 0.0
        return (price - pos.avg_cost) * float(pos.qty)

    def account_values(self, prices: dict[int, float]) -> dict[str, tuple[float, str]]:
        """Return IBKR account tags (value, currency) valued at ``prices`` (by conId)."""
        to_usd = {"USD": 1.0, "AUD": AUD_USD}
        cash = sum(v * to_usd.get(cur, 1.0) for cur, v in self.cash.items())
        gross = unreal = realized = 0.0
        for con_id, pos in self.positions.items():
            rate = to_usd.get(self.contracts[con_id].currency, 1.0)
            price = prices.get(con_id, pos.avg_cost)
            gross += abs(float(pos.qty)) * price * rate
            unreal += self.unrealized(con_id, price) * rate
            realized += pos.realized * rate
        net = cash + sum(
            float(p.qty) * prices.get(k, p.avg_cost) * to_usd[self.contracts[k].currency]
            for k, p in self.positions.items()
        )
        return {
            "NetLiquidation": (net, "USD"),
            "TotalCashValue": (cash, "USD"),
            "GrossPositionValue": (gross, "USD"),
            "UnrealizedPnL": (unreal, "USD"),
            "RealizedPnL": (realized, "USD"),
            "EquityWithLoanValue": (net, "USD"),
            "AvailableFunds": (net - 0.25 * gross, "USD"),
            "ExcessLiquidity": (net - 0.25 * gross, "USD"),
            "BuyingPower": (4 * (net - 0.25 * gross), "USD"),
        }

    def completed(self) -> list[SimOrder]:
        """Finished orders of every client, oldest completion first (reqCompletedOrders)."""
        done = [(o.done_at, o.perm_id, o) for o in self.orders.values() if o.done_at is not None]
        return [o for *_, o in sorted(done, key=lambda row: (row[0], row[1]))]

    def working(self, client_id: int | None = None) -> list[SimOrder]:
        """Orders still working, for one client or (None) all."""
        return [
            o
            for o in self.orders.values()
            if not o.is_done and (client_id is None or o.client_id == client_id)
        ]
