"""The order-status transition table: the one place that says which moves are legal."""

from __future__ import annotations

from core.errors import Conflict
from core.types import OrderStatus

S = OrderStatus

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING_SUBMIT: frozenset(
        {
            S.PRE_SUBMITTED,
            S.SUBMITTED,
            S.PARTIALLY_FILLED,
            S.FILLED,
            S.CANCELLED,
            S.REJECTED,
            S.INACTIVE,
            S.PENDING_CANCEL,
        }
    ),
    S.PRE_SUBMITTED: frozenset(
        {
            S.SUBMITTED,
            S.PARTIALLY_FILLED,
            S.FILLED,
            S.PENDING_CANCEL,
            S.CANCELLED,
            S.REJECTED,
            S.INACTIVE,
        }
    ),
    S.SUBMITTED: frozenset(
        {S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELLED, S.REJECTED, S.INACTIVE}
    ),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.PENDING_CANCEL, S.CANCELLED}),
    S.PENDING_CANCEL: frozenset({S.CANCELLED, S.FILLED, S.PARTIALLY_FILLED, S.SUBMITTED}),
    S.INACTIVE: frozenset({S.SUBMITTED, S.CANCELLED, S.REJECTED}),
    S.FILLED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REJECTED: frozenset(),
}

TERMINAL: frozenset[OrderStatus] = frozenset(s for s, nxt in TRANSITIONS.items() if not nxt)


def can_transition(current: OrderStatus, new: OrderStatus) -> bool:
    """Return True when an order may move from ``current`` to ``new``."""
    return current == new or new in TRANSITIONS[current]


def transition(current: OrderStatus, new: OrderStatus) -> OrderStatus:
    """Return ``new`` if the move is legal.

    Raises:
        Conflict: if the table forbids the move (e.g. Filled -> Submitted).
    """
    if not can_transition(current, new):
        raise Conflict(f"order status cannot move from {current} to {new}")
    return new
