"""Orders: the trading state any actor can restart from (deployments are in
:mod:`storage.catalog.deployments`).

Order status moves follow :func:`core.orders.transition` (an illegal move is a
:class:`~core.errors.Conflict`). Executions are in :mod:`storage.catalog.executions`.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Conflict, NotFound, ValidationError
from core.instruments import parse
from core.orders import TERMINAL, transition
from core.types import Order, OrderStatus, OrderType, Side, TimeInForce, utcnow
from storage.catalog.db import Database, corrupt_row
from storage.catalog.models import OrderRow
from storage.catalog.records import OrderRecord
from storage.catalog.sqltypes import to_money


def _order(row: OrderRow) -> OrderRecord:
    """Return ``row`` as a record.

    Raises:
        StorageError: if the stored row is not a valid order (the schema's CHECKs prevent
            this since revision 0002; the message names the row so it can be repaired).
    """
    try:
        order = Order(
            instrument=row.instrument,
            con_id=row.con_id,
            side=Side(row.side),
            quantity=row.quantity,
            order_type=OrderType(row.order_type),
            limit_price=row.limit_price,
            stop_price=row.stop_price,
            tif=TimeInForce(row.tif),
            order_ref=row.order_ref,
            deployment_id=row.deployment_id,
            created_at=row.created_at,
        )
    except (ValueError, ValidationError) as exc:  # what core.types raises for a bad order
        raise corrupt_row(f"order {row.order_ref!r} (orders.id={row.id})", exc) from exc
    return OrderRecord(
        id=row.id,
        order=order,
        status=OrderStatus(row.status),
        filled_quantity=row.filled_quantity,
        avg_fill_price=row.avg_fill_price,
        broker_order_id=row.broker_order_id,
        perm_id=row.perm_id,
        updated_at=row.updated_at,
    )


def order_row(session: Session, order_ref: str, *, lock: bool = False) -> OrderRow:
    """Return the order row named ``order_ref``; ``lock`` holds it until the transaction ends.

    Raises:
        NotFound: if no order has that ``order_ref``.
    """
    stmt = select(OrderRow).where(OrderRow.order_ref == order_ref)
    if lock:  # FOR UPDATE on PostgreSQL; SQLite has a single writer anyway
        stmt = stmt.with_for_update()
    row = session.scalars(stmt).first()
    if row is None:
        raise NotFound(f"order {order_ref!r} does not exist")
    return row


class OrderRepository:
    """Orders keyed by their unique client ``order_ref``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(self, order: Order, *, status: OrderStatus = OrderStatus.PENDING_SUBMIT) -> OrderRecord:
        """Store a new order.

        Raises:
            ValidationError: if ``order.order_ref`` is empty.
            Conflict: if the ``order_ref`` exists, or ``deployment_id`` names no deployment.
        """
        if not order.order_ref:
            raise ValidationError(
                "order_ref must be set before an order is stored", field="order_ref"
            )
        row = OrderRow(
            order_ref=order.order_ref,
            deployment_id=order.deployment_id,
            instrument=order.instrument,
            con_id=order.con_id,
            side=Side(order.side).value,
            order_type=OrderType(order.order_type).value,
            quantity=order.quantity,
            limit_price=order.limit_price,
            stop_price=order.stop_price,
            tif=TimeInForce(order.tif).value,
            status=OrderStatus(status).value,
            filled_quantity=Decimal(0),
            created_at=order.created_at,
            updated_at=order.created_at,
        )
        with self._db.transaction() as session:
            session.add(row)
            session.flush()
            return _order(row)

    def get(self, order_ref: str) -> OrderRecord:
        """Return an order by ``order_ref`` (NotFound if absent)."""
        with self._db.transaction() as session:
            return _order(order_row(session, order_ref))

    def list(
        self,
        *,
        open_only: bool = False,
        deployment_id: int | None = None,
        instrument: str | None = None,
        since: datetime | None = None,
    ) -> builtins.list[OrderRecord]:
        """Return orders oldest first; ``open_only`` drops Filled/Cancelled/Rejected ones.

        Args:
            open_only: Only orders not in a terminal status.
            deployment_id: Only the orders of this deployment.
            instrument: Only orders for this instrument id.
            since: Only orders created at or after this time.
        """
        stmt = select(OrderRow).order_by(OrderRow.id)
        if since is not None:
            stmt = stmt.where(OrderRow.created_at >= since)
        if open_only:
            stmt = stmt.where(OrderRow.status.not_in([s.value for s in TERMINAL]))
        if deployment_id is not None:
            stmt = stmt.where(OrderRow.deployment_id == deployment_id)
        if instrument is not None:
            stmt = stmt.where(OrderRow.instrument == str(parse(instrument)))
        with self._db.transaction() as session:
            return [_order(row) for row in session.scalars(stmt)]

    def update_status(
        self,
        order_ref: str,
        status: OrderStatus,
        *,
        filled: Decimal | None = None,
        avg_price: Decimal | None = None,
        broker_order_id: int | None = None,
        perm_id: int | None = None,
        at: datetime | None = None,
    ) -> OrderRecord:
        """Apply a broker status update.

        Raises:
            Conflict: if :func:`core.orders.transition` forbids the move, if ``filled``
                exceeds the quantity or goes backwards; nothing is written.
        """
        with self._db.transaction() as session:
            row = order_row(session, order_ref)
            row.status = transition(OrderStatus(row.status), OrderStatus(status)).value
            if filled is not None:
                filled = to_money(filled, field="filled")
                if filled < row.filled_quantity:
                    raise Conflict(
                        f"order {order_ref!r}: filled quantity cannot go back from "
                        f"{row.filled_quantity} to {filled}"
                    )
                row.filled_quantity = filled
            if avg_price is not None:
                row.avg_fill_price = avg_price
            if broker_order_id is not None:
                row.broker_order_id = broker_order_id
            if perm_id is not None:
                row.perm_id = perm_id
            row.updated_at = at or utcnow()
            session.flush()
            return _order(row)
