"""Executions (fills): idempotent by ``exec_id``, each fitting its order.

IB re-sends execDetails after a reconnect or on ``reqExecutions``, so adding the same fill
twice is a no-op that returns False; the same ``exec_id`` with *different* content is a
:class:`~core.errors.Conflict`, except that a fill stored before its commission report (with
commission 0) takes the commission when it comes. A fill must also fit its order: same
instrument (and contract id, when both are known) and side, and all of the order's fills
together no more than its quantity (checked in the same transaction, with the order row
locked).
"""

from __future__ import annotations

import builtins
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Conflict, ValidationError
from core.types import Fill, Side
from storage.catalog.db import Database, corrupt_row
from storage.catalog.models import ExecutionRow, OrderRow
from storage.catalog.sqltypes import to_money
from storage.catalog.trading import order_row


def _fill(row: ExecutionRow, order_ref: str) -> Fill:
    """Return ``row`` as a fill.

    Raises:
        StorageError: naming the row, if it is not a valid fill (e.g. a bare symbol that
            revision 0003 kept because it named several listings).
    """
    try:
        return Fill(
            exec_id=row.exec_id,
            order_ref=order_ref,
            instrument=row.instrument,
            con_id=row.con_id,
            side=Side(row.side),
            quantity=row.quantity,
            price=row.price,
            commission=row.commission,
            time=row.time,
        )
    except (ValueError, ValidationError) as exc:  # what core.types raises for a bad fill
        where = f"execution {row.exec_id!r} of order {order_ref!r} (executions.id={row.id})"
        raise corrupt_row(where, exc) from exc


class ExecutionRepository:
    """Fills, idempotent by ``exec_id`` (see the module docstring)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, fill: Fill) -> bool:
        """Store a fill; return False when it is already stored.

        A fill stored with commission 0 whose ``exec_id`` comes back with a commission (IB's
        commission report follows its execution) gets that commission, and True is returned.

        Raises:
            NotFound: if ``fill.order_ref`` names no order.
            Conflict: if the ``exec_id`` is stored with different content (or for another
                order); if the fill's instrument, contract id or side differ from its
                order's; or if the order's stored fills plus this one exceed the order
                quantity. Nothing is written.
        """
        normalised = _normalised(fill)
        with self._db.transaction() as session:
            order = order_row(session, fill.order_ref, lock=True)
            existing = session.scalars(
                select(ExecutionRow).where(ExecutionRow.exec_id == fill.exec_id)
            ).first()
            if existing is not None:
                return _merge_commission(existing, order, normalised)
            _check_fill_matches_order(session, normalised, order)
            session.add(
                ExecutionRow(
                    exec_id=fill.exec_id,
                    order_id=order.id,
                    instrument=normalised.instrument,
                    con_id=normalised.con_id,
                    side=normalised.side.value,
                    quantity=fill.quantity,
                    price=fill.price,
                    commission=fill.commission,
                    time=fill.time,
                )
            )
            session.flush()
            return True

    def list(
        self, *, order_ref: str | None = None, since: datetime | None = None
    ) -> builtins.list[Fill]:
        """Return fills in time order, optionally of one order and/or since a time."""
        stmt = (
            select(ExecutionRow, OrderRow.order_ref)
            .join(OrderRow, ExecutionRow.order_id == OrderRow.id)
            .order_by(ExecutionRow.time, ExecutionRow.id)
        )
        if order_ref is not None:
            stmt = stmt.where(OrderRow.order_ref == order_ref)
        if since is not None:
            stmt = stmt.where(ExecutionRow.time >= since)
        with self._db.transaction() as session:
            return [_fill(row, ref) for row, ref in session.execute(stmt)]


_COMPARED = ("instrument", "con_id", "side", "quantity", "price", "commission", "time")


def _merge_commission(existing: ExecutionRow, order: OrderRow, fill: Fill) -> bool:
    """Take the commission of a fill seen again; return True when it changed the row.

    IB sends an execution before its commission report, so a fill first stored with
    commission 0 is completed when the same ``exec_id`` comes back with the commission; a
    replay without the commission (0) changes nothing.

    Raises:
        Conflict: naming the fields, if anything but a missing commission differs
            (executions are immutable), or if the ``exec_id`` belongs to another order.
    """
    if existing.order_id != order.id:
        raise Conflict(
            f"exec_id {fill.exec_id!r} is already stored for another order; an execution "
            f"belongs to one order, so it cannot also be one of {order.order_ref!r}"
        )
    stored = _fill(existing, order.order_ref)
    differ = [name for name in _COMPARED if getattr(stored, name) != getattr(fill, name)]
    if not differ or (differ == ["commission"] and fill.commission == 0):
        return False  # seen before (a replay without its commission report changes nothing)
    if differ == ["commission"] and stored.commission == 0:
        existing.commission = fill.commission
        return True
    shown = ", ".join(f"{n} {getattr(stored, n)} (now {getattr(fill, n)})" for n in differ)
    raise Conflict(
        f"exec_id {fill.exec_id!r} is already stored with different details: {shown}; "
        "executions are immutable once their commission is known"
    )


def _check_fill_matches_order(session: Session, fill: Fill, order: OrderRow) -> None:
    """Raise Conflict, naming the field, if ``fill`` cannot be an execution of ``order``."""
    where = f"fill {fill.exec_id!r} of order {order.order_ref!r}"
    if fill.instrument != order.instrument:
        raise Conflict(
            f"{where}: instrument {fill.instrument} differs from the order's "
            f"{order.instrument}; a fill must be for its order's instrument"
        )
    if fill.con_id is not None and order.con_id is not None and fill.con_id != order.con_id:
        raise Conflict(
            f"{where}: con_id {fill.con_id} differs from the order's {order.con_id}; a fill "
            "must be for its order's contract"
        )
    if fill.side.value != order.side:
        raise Conflict(
            f"{where}: side {fill.side} differs from the order's {order.side}; "
            "a fill must be on its order's side"
        )
    stored = session.scalars(
        select(ExecutionRow.quantity).where(ExecutionRow.order_id == order.id)
    ).all()
    filled = sum(stored, Decimal(0))
    if filled + fill.quantity > order.quantity:
        raise Conflict(
            f"{where}: quantity {fill.quantity} on top of the {filled} already executed exceeds "
            f"the order quantity {order.quantity}; a fill cannot overfill its order"
        )


def _normalised(fill: Fill) -> Fill:
    """Return ``fill`` as it reads back from the database (8-place decimals, UTC)."""
    return Fill(
        exec_id=fill.exec_id,
        order_ref=fill.order_ref,
        instrument=fill.instrument,
        con_id=fill.con_id,
        side=Side(fill.side),
        quantity=to_money(fill.quantity, field="quantity"),
        price=to_money(fill.price, field="price"),
        commission=to_money(fill.commission, field="commission"),
        time=fill.time.astimezone(UTC),
    )
