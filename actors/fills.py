"""Executions joined with their commission reports: every fill handed out once, complete.

IB reports a fill in two messages: ``execDetails`` (what traded) and, later,
``commissionReport`` (what it cost), keyed by the same ``execId``. Recording the execution
at once with commission 0 and again when the report comes would be the same execId with two
different commissions: a conflict for anything downstream that keys fills by execId.

**The contract.** The gateway hands out a :class:`core.types.Fill` only once *both* halves
are in, so every fill it returns carries its final commission:

- :meth:`FillBook.take_new` (the gateway's ``poll_fills``) returns each complete fill exactly
  once per gateway session, in the order they completed, whatever the order the two halves
  arrived in;
- :meth:`FillBook.fills` (the gateway's ``executions``) may return a fill again, always with
  the same values;
- an execution whose commission report has not arrived yet is not returned at all; it is
  counted in :attr:`FillBook.awaiting_commission` (the gateway's health) and returned once
  the report arrives (IB sends the reports again with every executions request);
- the same execId reported again with other values is a :class:`core.errors.Conflict` and
  the first version is kept.

Downstream (the order manager, the catalog) can therefore key fills by ``exec_id`` and
insert each once, never update one. Plain Python: no ib_async, no Ray.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from core.errors import Conflict
from core.types import Fill, Side


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """What traded, as IB's ``execDetails`` reports it (no commission yet)."""

    exec_id: str
    order_ref: str
    instrument: str
    con_id: int | None
    side: Side
    quantity: Decimal
    price: Decimal
    time: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class Commission:
    """What an execution cost, as IB's ``commissionReport`` reports it."""

    exec_id: str
    commission: Decimal
    currency: str


class FillBook:
    """Join executions and commission reports by execId; hand out complete fills."""

    def __init__(self) -> None:
        self._executions: dict[str, Execution] = {}
        self._commissions: dict[str, Commission] = {}
        self._fills: dict[str, Fill] = {}
        self._new: list[str] = []

    def add_execution(self, execution: Execution) -> Fill | None:
        """Record an execution; return its fill if this completed it (else None).

        Raises:
            Conflict: if the execId is known with other execution values (the first kept).
        """
        known = self._executions.get(execution.exec_id)
        if known is not None:
            if known != execution:
                raise Conflict(
                    f"execution {execution.exec_id} reported again with other values: "
                    f"{_diff(known, execution)}; the first report is kept"
                )
            return None
        self._executions[execution.exec_id] = execution
        return self._join(execution.exec_id)

    def add_commission(self, commission: Commission) -> Fill | None:
        """Record a commission report; return the fill if this completed it (else None).

        Raises:
            Conflict: if the execId already has another commission (the first kept).
        """
        known = self._commissions.get(commission.exec_id)
        if known is not None:
            if known != commission:
                raise Conflict(
                    f"commission of execution {commission.exec_id} reported as "
                    f"{known.commission} {known.currency}, then {commission.commission} "
                    f"{commission.currency}; the first report is kept"
                )
            return None
        self._commissions[commission.exec_id] = commission
        return self._join(commission.exec_id)

    def take_new(self) -> list[Fill]:
        """Return the fills completed since the last call (each fill once, ever)."""
        new, self._new = self._new, []
        return [self._fills[exec_id] for exec_id in new]

    def fill(self, exec_id: str) -> Fill | None:
        """Return the complete fill of ``exec_id``, or None while a half is missing."""
        return self._fills.get(exec_id)

    def fills(self) -> list[Fill]:
        """Return every complete fill, in the order they completed."""
        return list(self._fills.values())

    @property
    def awaiting_commission(self) -> int:
        """Executions whose commission report has not arrived."""
        return len(self._executions.keys() - self._commissions.keys())

    @property
    def awaiting_execution(self) -> int:
        """Commission reports whose execution has not arrived."""
        return len(self._commissions.keys() - self._executions.keys())

    def _join(self, exec_id: str) -> Fill | None:
        execution, commission = self._executions.get(exec_id), self._commissions.get(exec_id)
        if execution is None or commission is None:
            return None
        fill = Fill(
            exec_id=exec_id,
            order_ref=execution.order_ref,
            instrument=execution.instrument,
            con_id=execution.con_id,
            side=execution.side,
            quantity=execution.quantity,
            price=execution.price,
            commission=commission.commission,
            time=execution.time,
        )
        self._fills[exec_id] = fill
        self._new.append(exec_id)
        return fill


def _diff(old: Execution, new: Execution) -> str:
    fields = ("order_ref", "instrument", "con_id", "side", "quantity", "price", "time")
    changed = [f for f in fields if getattr(old, f) != getattr(new, f)]
    return ", ".join(f"{f} {getattr(old, f)!r} -> {getattr(new, f)!r}" for f in changed)
