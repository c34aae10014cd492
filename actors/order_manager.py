"""The order manager: every order passes the risk manager, is stored, then goes to the gateway.

:class:`OrderManager` is a plain class over the catalog, a gateway and a risk manager (plain
objects with the methods of :class:`GatewayLike` and :class:`RiskLike`; the Ray actor in
:mod:`actors.order_actor` passes adapters over the cluster's actor handles). It holds no
state of its own that matters: orders and executions live in the catalog, positions are
rebuilt from the executions (:class:`actors.positions.PositionBook`), so a restarted manager
picks up where the last one stopped and :meth:`reconcile` repairs what it missed.

The contract callers rely on:

- :meth:`submit` is idempotent by ``order_ref``: an order whose reference is stored is
  returned as stored and never sent again (a retry or a restart never places the same intent
  twice). A new order is checked by the risk manager first (a refusal is stored ``Rejected``
  and never sent), then stored ``PendingSubmit`` *before* it is sent.
- Fills and status changes are pushed by the gateway (:meth:`on_fill`,
  :meth:`on_order_status`); a fill is written once (by ``exec_id``) and its order's filled
  quantity, average price and status follow from the order's stored executions.
- Status moves follow :mod:`core.orders`: a stale status (a ``Submitted`` arriving after the
  fill) is ignored; a final one from the broker (``Filled``, ``Cancelled``) is reached through
  the table's intermediate statuses when the stored one cannot move to it directly.
- With an :class:`actors.halt.EquityWatch`, the account's equity goes to the risk manager's
  kill switch after every new fill, every :meth:`reconcile` and every :meth:`mark`
  (:meth:`observe_equity`); a breached loss limit halts trading and the watch's ``on_halt``
  reacts (the actor pauses every runner and cancels every open order).

Example:
    >>> om = OrderManager(catalog, gateway, risk)                          # doctest: +SKIP
    >>> om.submit(Order(instrument="AAPL.NASDAQ", side=Side.BUY, quantity=10)).record.status
"""

from __future__ import annotations

import dataclasses
import logging
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from actors.halt import EquityWatch
from actors.order_acks import OrderAck, average_price
from actors.positions import PositionBook, PositionState, last_fill_prices
from actors.reconcile import (
    FlattenReport,
    GatewayLike,
    ReconcileReport,
    fill_detail,
    flatten,
    reconcile,
    status_path,
)
from actors.risk_rules import ORDER_WINDOW, Decision, RiskContext
from actors.risk_state import KillSwitchEvent
from core.errors import (
    Conflict,
    NotConnected,
    NotFound,
    OrderRejected,
    ScizorError,
    ValidationError,
)
from core.instruments import parse
from core.orders import TERMINAL
from core.types import Fill, Order, OrderStatus, utcnow
from storage.catalog.records import OrderRecord

if TYPE_CHECKING:
    from storage.catalog import Catalog

__all__ = ["GatewayLike", "OrderManager", "RiskLike", "Submission", "new_order_ref"]

log = logging.getLogger(__name__)

MAX_ORDER_REF = 64
"""The longest ``order_ref`` the catalog (and IB's orderRef) keeps."""


class RiskLike(Protocol):
    """What the order manager needs of the risk manager (``RiskManager.check``)."""

    def check(self, order: Order, context: RiskContext) -> Decision: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Submission:
    """What :meth:`OrderManager.submit` did with an order.

    Attributes:
        record: The order as stored now.
        sent: True when this call sent the order to the broker.
        duplicate: True when the ``order_ref`` was already stored (nothing was done).
        decision: The risk manager's verdict (None for a duplicate or a flatten order).
        message: ``"sent"``, the risk breaches, the broker's refusal, or why nothing was done.
    """

    record: OrderRecord
    sent: bool
    duplicate: bool = False
    decision: Decision | None = None
    message: str = ""

    @property
    def order_ref(self) -> str:
        """The order's reference (assigned by :meth:`OrderManager.submit` if it had none)."""
        return self.record.order_ref

    @property
    def rejected(self) -> bool:
        """True when the order stands ``Rejected`` (by the risk manager or the broker)."""
        return self.record.status == OrderStatus.REJECTED


def new_order_ref(prefix: str = "om") -> str:
    """Return a fresh, unique order reference (``<prefix>-<16 hex digits>``)."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


class OrderManager:
    """Submit, cancel and follow orders; keep executions and positions in the catalog.

    Args:
        catalog: The SQL catalog (orders, executions, risk events).
        gateway: The broker side (see :class:`GatewayLike`).
        risk: The pre-trade check (see :class:`RiskLike`).
        clock: Now, in UTC.
        price_source: ``instrument -> last price or None``, asked before each risk check
            (e.g. the gateway's snapshot); without it, or when it has none, the check uses
            the last :meth:`mark`, else the last fill's price.
        equity: Feeds the account's equity to the kill switch (see :meth:`observe_equity`).
    """

    def __init__(
        self,
        catalog: Catalog,
        gateway: GatewayLike,
        risk: RiskLike,
        *,
        clock: Callable[[], datetime] = utcnow,
        price_source: Callable[[str], Decimal | None] | None = None,
        equity: EquityWatch | None = None,
    ) -> None:
        self.catalog = catalog
        self.gateway = gateway
        self.risk = risk
        self._clock = clock
        self._price_source = price_source
        self._marks: dict[str, Decimal] = {}
        self.equity = equity
        self.errors: deque[str] = deque(maxlen=100)
        """The latest problems met while applying pushed events (also logged)."""

    def now(self) -> datetime:
        """Return the manager's clock's time (UTC)."""
        return self._clock()

    # --- orders -----------------------------------------------------------------------------

    def submit(self, order: Order) -> Submission:
        """Check, store and send ``order`` once; return what was done.

        An empty ``order_ref`` gets a fresh one. A stored ``order_ref`` returns the stored
        order without any check or sending.

        Raises:
            ValidationError: naming ``order_ref`` if it is longer than 64 characters.
            NotConnected: if the gateway has no connection (the order is stored
                ``Inactive`` and not sent; submit it again under a new ``order_ref``).
        """
        if not order.order_ref:
            order = dataclasses.replace(order, order_ref=new_order_ref())
        if len(order.order_ref) > MAX_ORDER_REF:
            raise ValidationError(
                f"order_ref may have at most {MAX_ORDER_REF} characters; got "
                f"{len(order.order_ref)} ({order.order_ref[:20]}...)",
                field="order_ref",
            )
        stored = self._stored(order.order_ref)
        if stored is not None:
            return Submission(
                record=stored, sent=False, duplicate=True, message="order_ref already stored"
            )
        decision = self.risk.check(order, self.risk_context(order))
        if not decision.accepted:
            try:
                record = self.catalog.orders.add(order, status=OrderStatus.REJECTED)
            except Conflict:  # stored meanwhile by another submit of the same intent
                return self._duplicate(order.order_ref)
            return Submission(
                record=record, sent=False, decision=decision, message=decision.message
            )
        return self._send(order, decision=decision)

    def cancel(self, order_ref: str) -> OrderRecord:
        """Ask the broker to cancel an open order; return it as stored after IB's answer.

        A finished order is returned unchanged.

        Raises:
            NotFound: if no order has ``order_ref``, or the gateway cannot find it.
            Conflict: if the broker never acknowledged the order (no IB order id to cancel).
        """
        record = self.catalog.orders.get(order_ref)
        if record.status in TERMINAL:
            return record
        order_id = record.broker_order_id
        if not order_id:
            ack = self.gateway.order_status(order_ref)
            record = self.apply_ack(ack) or record
            order_id = ack.order_id
        if not order_id:
            raise Conflict(
                f"order {order_ref!r} has no IB order id in this gateway session "
                f"(status {record.status}); it cannot be cancelled from here"
            )
        return self.apply_ack(self.gateway.cancel_order(order_id)) or record

    def orders(
        self,
        *,
        open_only: bool = False,
        deployment_id: int | None = None,
        instrument: str | None = None,
        since: datetime | None = None,
    ) -> list[OrderRecord]:
        """Return stored orders oldest first (see ``OrderRepository.list``)."""
        return self.catalog.orders.list(
            open_only=open_only, deployment_id=deployment_id, instrument=instrument, since=since
        )

    def order(self, order_ref: str) -> OrderRecord:
        """Return one stored order.

        Raises:
            NotFound: if no order has ``order_ref``.
        """
        return self.catalog.orders.get(order_ref)

    def executions(
        self, *, order_ref: str | None = None, since: datetime | None = None
    ) -> list[Fill]:
        """Return stored fills in time order, optionally of one order and/or since a time."""
        return self.catalog.executions.list(order_ref=order_ref, since=since)

    # --- positions and prices -----------------------------------------------------------------

    def mark(self, prices: Mapping[str, Decimal]) -> None:
        """Record last prices (for unrealized P&L and the risk checks' notional)."""
        for instrument, price in prices.items():
            self._marks[str(parse(instrument, field="prices"))] = Decimal(price)
        self.observe_equity()

    def last_prices(self, fills: list[Fill] | None = None) -> dict[str, Decimal]:
        """Return the known last prices: marks, else the latest fill's price."""
        found = fills if fills is not None else self.catalog.executions.list()
        return {**last_fill_prices(found), **self._marks}

    def book(self) -> PositionBook:
        """Return the positions the stored executions make (rebuilt from the catalog)."""
        return PositionBook.from_fills(self.catalog.executions.list())

    def positions(self, *, include_flat: bool = False) -> list[PositionState]:
        """Return positions from the stored executions, marked at the last known prices."""
        fills = self.catalog.executions.list()
        book = PositionBook.from_fills(fills)
        return book.positions(last_prices=self.last_prices(fills), include_flat=include_flat)

    def risk_context(self, order: Order) -> RiskContext:
        """Return the snapshot ``order`` is checked against: positions, prices, recent orders."""
        now = self._clock()
        fills = self.catalog.executions.list()
        prices = self.last_prices(fills)
        if self._price_source is not None:  # a fresh quote beats an old mark
            price = self._price_source(order.instrument)
            if price is not None:
                prices[order.instrument] = Decimal(price)
        recent: dict[int | None, list[datetime]] = {}
        for record in self.catalog.orders.list(since=now - ORDER_WINDOW):
            if record.status != OrderStatus.REJECTED:
                recent.setdefault(record.order.deployment_id, []).append(record.order.created_at)
        return RiskContext(
            now=now,
            positions=PositionBook.from_fills(fills).quantities(),
            last_prices=prices,
            recent_orders=recent,
        )

    # --- pushed by the gateway ------------------------------------------------------------------

    def on_fill(self, fill: Fill) -> bool:
        """Write a fill once and bring its order up to date; return True if it was new.

        A fill of no stored order, or one that clashes with a stored execution, is recorded
        as a risk event (``unknown_execution``, ``execution_conflict``) and False returned.
        """
        try:
            new = self.catalog.executions.add(fill)
        except NotFound:
            self._problem(
                "unknown_execution", f"fill {fill.exec_id} names no stored order", fill=fill
            )
            return False
        except Conflict as exc:
            self._problem("execution_conflict", str(exc), fill=fill)
            return False
        self._follow_fills(fill.order_ref)
        if new:
            self.observe_equity()
        return new

    def on_order_status(self, ack: OrderAck) -> OrderRecord | None:
        """Apply a status the broker reported; None for an order SCIZOR did not store."""
        if not ack.order_ref or self._stored(ack.order_ref) is None:
            return None
        return self.apply_ack(ack)

    def apply_ack(self, ack: OrderAck) -> OrderRecord | None:
        """Bring the stored order ``ack.order_ref`` to where the broker says it stands.

        The filled quantity never goes back; a stale status is ignored (see the module
        docstring). Returns the order as stored, or None if it is not stored.
        """
        record = self._stored(ack.order_ref) if ack.order_ref else None
        if record is None:
            return None
        filled = max(record.filled_quantity, ack.filled)
        ahead = ack.filled >= record.filled_quantity and ack.avg_fill_price is not None
        return self._move(
            record,
            ack.status,
            filled=filled,
            avg_price=ack.avg_fill_price if ahead else None,
            broker_order_id=ack.order_id or None,
            perm_id=ack.perm_id or None,
        )

    # --- reconciliation and the emergency flatten ------------------------------------------------

    def reconcile(self) -> ReconcileReport:
        """Compare the broker's executions, orders and positions with the catalog; repair.

        See :func:`actors.reconcile.reconcile`. The equity is observed afterwards.
        """
        report = reconcile(self)
        self.observe_equity()
        return report

    def observe_equity(self) -> KillSwitchEvent | None:
        """Feed the account's equity to the kill switch; return the trip, if this was one.

        Without an :class:`~actors.halt.EquityWatch` nothing happens. A failure (the risk
        manager or the gateway unreachable, a reaction to the trip that failed) is logged in
        :attr:`errors` and None returned: the next fill, reconcile or mark tries again.
        """
        if self.equity is None:
            return None
        try:
            return self.equity.observe(self.positions())
        except ScizorError as exc:
            log.error("equity not observed: %s", exc)
            self.errors.append(f"equity: {exc}")
            return None

    def emergency_flatten(self, *, reason: str = "emergency flatten") -> FlattenReport:
        """Cancel every open order and send market orders that bring every position to zero.

        The flatten orders bypass the risk check (a halted switch too) but are stored with
        their own ``order_ref`` (``flatten-...``) like any order. See
        :func:`actors.reconcile.flatten`.
        """
        return flatten(self, reason=reason)

    def send_unchecked(self, order: Order) -> OrderRecord:
        """Store and send ``order`` without a risk check (the emergency flatten's path).

        Raises:
            NotConnected: if the gateway has no connection (stored ``Inactive``).
        """
        return self._send(order, decision=None).record

    # --- internals --------------------------------------------------------------------------------

    def _send(self, order: Order, *, decision: Decision | None) -> Submission:
        try:
            record = self.catalog.orders.add(order, status=OrderStatus.PENDING_SUBMIT)
        except Conflict:
            return self._duplicate(order.order_ref)
        try:
            ack = self.gateway.place_order(order)
        except OrderRejected as exc:
            record = self._move(record, OrderStatus.REJECTED)
            return Submission(record=record, sent=True, decision=decision, message=str(exc))
        except NotConnected:
            self._move(record, OrderStatus.INACTIVE)
            raise
        record = self.apply_ack(dataclasses.replace(ack, order_ref=order.order_ref)) or record
        return Submission(record=record, sent=True, decision=decision, message="sent")

    def _duplicate(self, order_ref: str) -> Submission:
        record = self.catalog.orders.get(order_ref)
        return Submission(record=record, sent=False, duplicate=True, message="order_ref stored")

    def _stored(self, order_ref: str) -> OrderRecord | None:
        try:
            return self.catalog.orders.get(order_ref)
        except NotFound:
            return None

    def _follow_fills(self, order_ref: str) -> None:
        """Set an order's filled quantity, average price and status from its executions."""
        record = self.catalog.orders.get(order_ref)
        fills = self.catalog.executions.list(order_ref=order_ref)
        executed = sum((f.quantity for f in fills), Decimal(0))
        done = executed >= record.order.quantity
        status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
        ahead = executed >= record.filled_quantity
        self._move(
            record,
            status,
            filled=max(executed, record.filled_quantity),
            avg_price=average_price(fills) if ahead else None,
        )

    def _move(
        self,
        record: OrderRecord,
        status: OrderStatus,
        *,
        filled: Decimal | None = None,
        avg_price: Decimal | None = None,
        broker_order_id: int | None = None,
        perm_id: int | None = None,
    ) -> OrderRecord:
        """Write ``status`` (through :mod:`core.orders`' table) and the broker's numbers."""
        steps = status_path(record.status, status)
        for step in steps[:-1]:
            record = self.catalog.orders.update_status(record.order_ref, step)
        final = steps[-1] if steps else record.status
        unchanged = (
            final == record.status
            and (filled is None or filled == record.filled_quantity)
            and (avg_price is None or avg_price == record.avg_fill_price)
            and (broker_order_id is None or broker_order_id == record.broker_order_id)
            and (perm_id is None or perm_id == record.perm_id)
        )
        if unchanged:
            return record
        return self.catalog.orders.update_status(
            record.order_ref,
            final,
            filled=filled,
            avg_price=avg_price,
            broker_order_id=broker_order_id,
            perm_id=perm_id,
        )

    def _problem(self, kind: str, message: str, *, fill: Fill | None = None) -> None:
        log.error("%s: %s", kind, message)
        self.errors.append(f"{kind}: {message}")
        detail: dict[str, object] = {"message": message}
        if fill is not None:
            detail |= fill_detail(fill)
        self.catalog.risk.add_event(
            kind, detail=detail, order_ref=fill.order_ref if fill else None, at=self._clock()
        )
