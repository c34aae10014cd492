"""Reconciliation with the broker, and the emergency flatten, for :mod:`actors.order_manager`.

Also the helpers both share: :func:`status_path` (how a stored order reaches the status the
broker reports, through :mod:`core.orders`' table) and :func:`fill_detail`.

:func:`reconcile` runs at start and after every (re)connect of the gateway:

1. the broker's executions of the day (``reqExecutions``) are written to the catalog; those
   it did not hold (missed while disconnected) are *recovered*, each exactly once;
2. every order the catalog holds open is looked up at the broker (the gateway's
   :class:`actors.order_finder.OrderFinder`: this session, IB's open and completed orders);
   one IB no longer knows is judged from its stored executions
   (:func:`actors.order_acks.lookup_ack`: ``Filled`` when they cover it, else ``Inactive``);
3. the broker's positions are compared with the positions the stored executions make; a
   difference cannot be repaired from here, so each is recorded as a risk event
   (``reconcile_mismatch``) and returned in the report, never ignored.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Protocol

from actors.order_acks import OrderAck, lookup_ack
from actors.order_finder import OrderKey
from actors.positions import PositionBook
from core.errors import NotFound, ScizorError
from core.orders import TERMINAL, TRANSITIONS, can_transition
from core.types import Fill, Order, OrderStatus, OrderType, Position, Side
from storage.catalog.records import OrderRecord

if TYPE_CHECKING:
    from storage.catalog import Catalog

__all__ = [
    "FlattenReport",
    "GatewayLike",
    "PositionMismatch",
    "ReconcileReport",
    "fill_detail",
    "flatten",
    "flatten_order",
    "reconcile",
    "status_path",
]

MISMATCH_EVENT = "reconcile_mismatch"


class GatewayLike(Protocol):
    """What the order manager needs of the gateway (:class:`actors.gateway.GatewayActor`)."""

    def place_order(self, order: Order) -> OrderAck: ...
    def cancel_order(self, order_id: int) -> OrderAck: ...
    def order_status(self, order: OrderKey) -> OrderAck: ...
    def positions(self) -> list[Position]: ...
    def executions(self) -> list[Fill]: ...


class Manager(Protocol):
    """What reconciliation needs of :class:`actors.order_manager.OrderManager`."""

    catalog: Catalog
    gateway: GatewayLike

    def now(self) -> datetime: ...
    def on_fill(self, fill: Fill) -> bool: ...
    def apply_ack(self, ack: OrderAck) -> OrderRecord | None: ...
    def cancel(self, order_ref: str) -> OrderRecord: ...
    def send_unchecked(self, order: Order) -> OrderRecord: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionMismatch:
    """A position the broker holds differently from what the stored executions make."""

    instrument: str
    broker: Decimal
    catalog: Decimal

    @property
    def difference(self) -> Decimal:
        """``broker - catalog``."""
        return self.broker - self.catalog

    def to_mapping(self) -> dict[str, str]:
        """Return JSON-ready values (for the risk event's detail)."""
        return {
            "instrument": self.instrument,
            "broker_quantity": str(self.broker),
            "catalog_quantity": str(self.catalog),
            "difference": str(self.difference),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileReport:
    """What one reconciliation found and repaired.

    Attributes:
        at: When it ran.
        broker_executions: How many executions the broker reported.
        recovered: Fills the catalog did not hold, now written (each once).
        updated: Orders whose stored state changed to the broker's.
        mismatches: Positions that differ (each recorded as a ``reconcile_mismatch`` event).
        problems: Executions or orders that could not be applied, with the reason (each
            recorded as a risk event too).
    """

    at: datetime
    broker_executions: int = 0
    recovered: tuple[Fill, ...] = ()
    updated: tuple[OrderRecord, ...] = ()
    mismatches: tuple[PositionMismatch, ...] = ()
    problems: tuple[str, ...] = field(default_factory=tuple)

    @property
    def clean(self) -> bool:
        """True when the broker and the catalog agree on every position and nothing failed."""
        return not self.mismatches and not self.problems


@dataclass(frozen=True, slots=True, kw_only=True)
class FlattenReport:
    """What the emergency flatten did: orders cancelled, flatten orders sent, failures."""

    cancelled: tuple[OrderRecord, ...] = ()
    orders: tuple[OrderRecord, ...] = ()
    failures: tuple[str, ...] = ()


def reconcile(om: Manager) -> ReconcileReport:
    """Bring the catalog up to date with the broker; report what cannot be repaired.

    Raises:
        BrokerError: if the gateway cannot answer (NotConnected without a connection);
            what was written before stays written (each step is idempotent).
    """
    at = om.now()
    catalog = om.catalog
    problems: list[str] = []
    open_before = catalog.orders.list(open_only=True)
    known = {f.exec_id for f in catalog.executions.list()}
    broker_fills = om.gateway.executions()
    recovered = []
    for fill in broker_fills:
        if fill.exec_id in known:
            continue
        if om.on_fill(fill):
            recovered.append(fill)
            known.add(fill.exec_id)
        else:
            problems.append(f"execution {fill.exec_id} of {fill.order_ref!r} not recorded")
    updated = []
    for record in open_before:
        current = catalog.orders.get(record.order_ref)
        done = current.status in TERMINAL  # finished by a recovered fill
        after = current if done else _bring_up_to_date(om, current, problems)
        if after is not None and after.status != record.status:
            updated.append(after)
    mismatches = position_mismatches(om.gateway.positions(), catalog.executions.list())
    for mismatch in mismatches:
        catalog.risk.add_event(MISMATCH_EVENT, detail=mismatch.to_mapping(), at=at)
    return ReconcileReport(
        at=at,
        broker_executions=len(broker_fills),
        recovered=tuple(recovered),
        updated=tuple(updated),
        mismatches=tuple(mismatches),
        problems=tuple(problems),
    )


def _bring_up_to_date(om: Manager, record: OrderRecord, problems: list[str]) -> OrderRecord | None:
    try:
        ack = om.gateway.order_status(record.order_ref)
    except NotFound:  # IB forgot it (or never got it): judge it by its stored executions
        ack = lookup_ack(record.order, fills=om.catalog.executions.list(order_ref=record.order_ref))
    except ScizorError as exc:
        problems.append(f"order {record.order_ref!r}: {exc}")
        return None
    return om.apply_ack(ack)


def position_mismatches(
    broker: Iterable[Position], fills: Iterable[Fill]
) -> list[PositionMismatch]:
    """Return the instruments whose broker quantity differs from what ``fills`` make."""
    held: dict[str, Decimal] = {}
    for position in broker:
        held[position.instrument] = held.get(position.instrument, Decimal(0)) + position.quantity
    implied = PositionBook.from_fills(fills).quantities()
    return [
        PositionMismatch(
            instrument=instrument,
            broker=held.get(instrument, Decimal(0)),
            catalog=implied.get(instrument, Decimal(0)),
        )
        for instrument in sorted(held.keys() | implied.keys())
        if held.get(instrument, Decimal(0)) != implied.get(instrument, Decimal(0))
    ]


def flatten(om: Manager, *, reason: str) -> FlattenReport:
    """Cancel every open order, then send market orders bringing every broker position to 0.

    Every step is attempted; a failure is reported (and recorded in the risk event
    ``emergency_flatten``), never stops the rest.
    """
    cancelled, sent, failures = [], [], []
    for record in om.catalog.orders.list(open_only=True):
        try:
            cancelled.append(om.cancel(record.order_ref))
        except ScizorError as exc:
            failures.append(f"cancel {record.order_ref!r}: {exc}")
    try:
        held = om.gateway.positions()
    except ScizorError as exc:
        failures.append(f"positions: {exc}")
        held = []
    totals: dict[str, Position] = {}
    for p in held:
        known = totals.get(p.instrument)
        quantity = p.quantity + (known.quantity if known else Decimal(0))
        totals[p.instrument] = Position(
            instrument=p.instrument, quantity=quantity, avg_cost=p.avg_cost, con_id=p.con_id
        )
    for position in totals.values():
        if position.quantity == 0:
            continue
        order = flatten_order(position, order_ref=f"flatten-{uuid.uuid4().hex[:16]}")
        try:
            sent.append(om.send_unchecked(order))
        except ScizorError as exc:
            failures.append(f"flatten {position.instrument} ({order.order_ref}): {exc}")
    om.catalog.risk.add_event(
        "emergency_flatten",
        detail={
            "reason": reason,
            "cancelled": [r.order_ref for r in cancelled],
            "orders": [r.order_ref for r in sent],
            "failures": failures,
        },
    )
    return FlattenReport(cancelled=tuple(cancelled), orders=tuple(sent), failures=tuple(failures))


def flatten_order(position: Position, *, order_ref: str) -> Order:
    """Return the market order that brings ``position`` to zero."""
    return Order(
        instrument=position.instrument,
        con_id=position.con_id,
        side=Side.SELL if position.quantity > 0 else Side.BUY,
        quantity=abs(position.quantity),
        order_type=OrderType.MARKET,
        order_ref=order_ref,
    )


def fill_detail(fill: Fill) -> dict[str, object]:
    """Return a fill as JSON-ready values (for a risk event's detail)."""
    return {
        "exec_id": fill.exec_id,
        "order_ref": fill.order_ref,
        "instrument": fill.instrument,
        "side": str(fill.side),
        "quantity": str(fill.quantity),
        "price": str(fill.price),
        "commission": str(fill.commission),
        "time": fill.time.isoformat(),
    }


def status_path(current: OrderStatus, target: OrderStatus) -> list[OrderStatus]:
    """The statuses to write to move from ``current`` to ``target`` ([] to stay).

    A legal move is one step. A final ``target`` the table does not allow directly is
    reached by the shortest path through it (Inactive -> Submitted -> Filled); any other
    illegal move is a stale report, and the order stays where it is.
    """
    if current == target:
        return []
    if can_transition(current, target):
        return [target]
    if target not in TERMINAL:
        return []
    paths: deque[list[OrderStatus]] = deque([[current]])
    seen = {current}
    while paths:
        path = paths.popleft()
        for nxt in sorted(TRANSITIONS[path[-1]]):
            if nxt == target:
                return [*path[1:], nxt]
            if nxt not in seen:
                seen.add(nxt)
                paths.append([*path, nxt])
    return []
