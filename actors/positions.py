"""Positions from fills: quantity, average cost and P&L per instrument (plain Python).

:class:`PositionBook` follows IB's convention: the average cost is that of the *open*
quantity (commissions are kept apart, in :attr:`PositionState.commission`). A fill on the
side of the position adds to it at a new weighted average; a fill against it closes that much
at the average cost and realizes ``(price - avg_cost) * closed`` (the sign reversed for a
short); a fill larger than the position closes all of it and opens the remainder on the other
side at the fill's price. A flat position has average cost 0.

The book is idempotent by ``exec_id`` (the same fill twice counts once), so it can be rebuilt
at any time from the catalog's executions (:meth:`PositionBook.from_fills`) and gives the
same answer after a restart as before it.

Example:
    >>> book = PositionBook.from_fills(catalog.executions.list())          # doctest: +SKIP
    >>> book.position("AAPL.NASDAQ", last_price=Decimal("190")).unrealized_pnl
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal

from core.instruments import parse
from core.types import Fill, Position, Side

__all__ = ["PositionBook", "PositionState", "last_fill_prices"]

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionState:
    """One instrument's position as the fills make it.

    Attributes:
        instrument: Canonical instrument id.
        quantity: Signed quantity held (negative is short).
        avg_cost: Average price of the open quantity (0 when flat), commissions excluded.
        realized_pnl: Profit of the closed quantity against the average cost, before
            commissions.
        commission: Commissions paid on every fill of the instrument.
        con_id: IB's contract id (from the fills), when known.
        last_price: The price the unrealized P&L is measured at, when one was given.
        unrealized_pnl: ``(last_price - avg_cost) * quantity``; None without a last price.
        fills: How many fills made the position.
    """

    instrument: str
    quantity: Decimal = _ZERO
    avg_cost: Decimal = _ZERO
    realized_pnl: Decimal = _ZERO
    commission: Decimal = _ZERO
    con_id: int | None = None
    last_price: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    fills: int = 0

    @property
    def is_flat(self) -> bool:
        """True when nothing is held."""
        return self.quantity == 0

    @property
    def net_realized_pnl(self) -> Decimal:
        """Realized P&L after commissions."""
        return self.realized_pnl - self.commission

    def marked(self, last_price: Decimal | None) -> PositionState:
        """Return this position with its unrealized P&L at ``last_price`` (None: unknown)."""
        if last_price is None:
            return replace(self, last_price=None, unrealized_pnl=None)
        price = Decimal(last_price)
        return replace(
            self, last_price=price, unrealized_pnl=(price - self.avg_cost) * self.quantity
        )

    def to_position(self) -> Position:
        """Return the holding as a :class:`core.types.Position`."""
        return Position(
            instrument=self.instrument,
            quantity=self.quantity,
            avg_cost=self.avg_cost,
            con_id=self.con_id,
        )


def _applied(state: PositionState, fill: Fill) -> PositionState:
    """Return ``state`` after ``fill`` (see the module docstring for the rules)."""
    signed = fill.quantity if fill.side == Side.BUY else -fill.quantity
    qty, avg, realized = state.quantity, state.avg_cost, state.realized_pnl
    if qty == 0 or (qty > 0) == (signed > 0):  # opens or adds on the same side
        new_qty = qty + signed
        avg = (abs(qty) * avg + fill.quantity * fill.price) / abs(new_qty)
    else:  # reduces, closes or flips
        closed = min(abs(qty), fill.quantity)
        direction = Decimal(1) if qty > 0 else Decimal(-1)
        realized += (fill.price - avg) * closed * direction
        new_qty = qty + signed
        if new_qty == 0:
            avg = _ZERO
        elif (new_qty > 0) != (qty > 0):  # flipped: the remainder opens at the fill's price
            avg = fill.price
    return replace(
        state,
        quantity=new_qty,
        avg_cost=avg,
        realized_pnl=realized,
        commission=state.commission + fill.commission,
        con_id=fill.con_id if fill.con_id is not None else state.con_id,
        fills=state.fills + 1,
    )


class PositionBook:
    """Positions per instrument from fills, idempotent by ``exec_id``.

    Args:
        fills: Fills to apply at once, in time order (e.g. ``catalog.executions.list()``).
    """

    def __init__(self, fills: Iterable[Fill] = ()) -> None:
        self._states: dict[str, PositionState] = {}
        self._seen: set[str] = set()
        for fill in fills:
            self.apply(fill)

    @classmethod
    def from_fills(cls, fills: Iterable[Fill]) -> PositionBook:
        """Return a book built from ``fills`` (apply them in time order)."""
        return cls(fills)

    def apply(self, fill: Fill) -> bool:
        """Apply ``fill``; return False (changing nothing) if its ``exec_id`` was applied."""
        if fill.exec_id in self._seen:
            return False
        self._seen.add(fill.exec_id)
        state = self._states.get(fill.instrument) or PositionState(instrument=fill.instrument)
        self._states[fill.instrument] = _applied(state, fill)
        return True

    def __contains__(self, exec_id: object) -> bool:
        """True when the fill ``exec_id`` has been applied."""
        return exec_id in self._seen

    def position(self, instrument: str, *, last_price: Decimal | None = None) -> PositionState:
        """Return the position in ``instrument`` (flat if it never traded).

        Raises:
            ValidationError: naming ``instrument`` if it is not an instrument id.
        """
        key = str(parse(instrument, field="instrument"))
        state = self._states.get(key) or PositionState(instrument=key)
        return state.marked(last_price)

    def positions(
        self,
        *,
        last_prices: Mapping[str, Decimal] | None = None,
        include_flat: bool = False,
    ) -> list[PositionState]:
        """Return every position by instrument id, marked at ``last_prices`` where given.

        Args:
            last_prices: Last price per instrument id (an instrument missing here has no
                unrealized P&L).
            include_flat: Also return instruments that traded and are flat now (their
                realized P&L and commissions remain).
        """
        prices = last_prices or {}
        return [
            state.marked(prices.get(key))
            for key, state in sorted(self._states.items())
            if include_flat or not state.is_flat
        ]

    def quantities(self) -> dict[str, Decimal]:
        """Return the signed quantity held per instrument id (flat ones left out)."""
        return {k: s.quantity for k, s in sorted(self._states.items()) if not s.is_flat}


def last_fill_prices(fills: Iterable[Fill]) -> dict[str, Decimal]:
    """Return the price of the latest of ``fills`` per instrument (a fallback mark)."""
    latest: dict[str, Fill] = {}
    for fill in fills:
        known = latest.get(fill.instrument)
        if known is None or fill.time >= known.time:
            latest[fill.instrument] = fill
    return {k: f.price for k, f in latest.items()}
