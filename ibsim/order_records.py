"""The records of ibsim's order book: quotes, orders, executions, positions and the events
the broker returns (the matching itself is :mod:`ibsim.orders`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from ibsim.contracts import ContractInfo
from ibsim.protocol import ib_time

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Quote:
    """What the market shows for one contract at one moment."""

    bid: float
    ask: float
    last: float
    bid_size: float = 100.0
    ask_size: float = 100.0
    volume: float = 0.0
    is_open: bool = True
    session_close: datetime | None = None
    """End of the current (or next) regular session: when DAY orders expire."""
    bar_volume: float = 0.0
    """Volume of the current one-minute bar (0 outside the session)."""
    bar_epoch: int = 0
    """Start of the current one-minute bar (epoch seconds): a new bar, new volume to take."""


@dataclass(slots=True, kw_only=True)
class SimOrder:
    """A working or finished order, mutable as it fills."""

    order_id: int
    client_id: int
    perm_id: int
    contract: ContractInfo
    exchange: str
    action: str
    total_qty: Decimal
    order_type: str
    lmt_price: float | None = None
    aux_price: float | None = None
    tif: str = "DAY"
    account: str = ""
    outside_rth: bool = False
    order_ref: str = ""
    parent_id: int = 0
    status: str = "PendingSubmit"
    filled: Decimal = _ZERO
    avg_fill_price: float = 0.0
    last_fill_price: float = 0.0
    triggered: bool = False
    commission_paid: float = 0.0
    expires: datetime | None = None
    done_at: datetime | None = None
    """When the order reached its final state (None while it can still fill)."""
    done_reason: str = ""
    """Why it ended, as completedOrder's completedStatus reports it."""
    bar_epoch: int = -1
    """The one-minute bar the order last took volume from (volume participation)."""
    bar_taken: Decimal = _ZERO
    """Shares the order took from that bar."""

    @property
    def is_done(self) -> bool:
        """True once the order can no longer fill."""
        return self.status in ("Filled", "Cancelled", "ApiCancelled", "Inactive")

    @property
    def completed_time(self) -> str:
        """The completion time as completedOrder carries it (blank while working)."""
        return "" if self.done_at is None else ib_time(self.done_at)

    @property
    def completed_status(self) -> str:
        """completedOrder's completedStatus: the status, or the reason an order ended."""
        return self.done_reason or self.status

    def finish(self, status: str, now: datetime, reason: str = "") -> None:
        """Move the order to the final ``status`` at ``now``."""
        self.status = status
        self.done_at = now
        self.done_reason = reason

    @property
    def remaining(self) -> Decimal:
        """Quantity still to fill."""
        return self.total_qty - self.filled


@dataclass(frozen=True, slots=True, kw_only=True)
class Execution:
    """One fill, as reported by execDetails and commissionReport."""

    exec_id: str
    order_id: int
    client_id: int
    perm_id: int
    contract: ContractInfo
    exchange: str
    side: str
    shares: Decimal
    price: float
    time: str
    moment: datetime
    account: str
    cum_qty: Decimal
    avg_price: float
    order_ref: str
    commission: float
    currency: str
    realized_pnl: float


@dataclass(slots=True)
class PositionState:
    """Quantity, average cost (commission included, as IBKR reports it) and realized P&L."""

    qty: Decimal = _ZERO
    avg_cost: float = 0.0
    realized: float = 0.0


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """The order's status changed: send openOrder and orderStatus."""

    order: SimOrder


@dataclass(frozen=True, slots=True)
class FillEvent:
    """The order filled (partly): send execDetails, commissionReport and orderStatus."""

    order: SimOrder
    execution: Execution


Event = OrderEvent | FillEvent
QuoteFn = Callable[[ContractInfo], Quote]
