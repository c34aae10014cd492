"""Domain types shared by every layer.

Messages are immutable (frozen dataclasses); sides, order types and statuses are ``StrEnum``;
order and fill quantities and prices are ``Decimal``; every timestamp is timezone-aware UTC.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum


class Side(StrEnum):
    """Order side."""

    BUY = "BUY"
    SELL = "SELL"


class OrderType(StrEnum):
    """Order types the platform can route (IBKR's spelling)."""

    MARKET = "MKT"
    LIMIT = "LMT"
    STOP = "STP"
    STOP_LIMIT = "STP LMT"
    MARKET_ON_CLOSE = "MOC"
    LIMIT_ON_CLOSE = "LOC"


class TimeInForce(StrEnum):
    """How long an order stays working."""

    DAY = "DAY"
    GTC = "GTC"
    IOC = "IOC"


class OrderStatus(StrEnum):
    """Order lifecycle; legal moves are in :mod:`core.orders`."""

    PENDING_SUBMIT = "PendingSubmit"
    PRE_SUBMITTED = "PreSubmitted"
    SUBMITTED = "Submitted"
    PARTIALLY_FILLED = "PartiallyFilled"
    FILLED = "Filled"
    PENDING_CANCEL = "PendingCancel"
    CANCELLED = "Cancelled"
    REJECTED = "Rejected"
    INACTIVE = "Inactive"


class SecType(StrEnum):
    """Security types in the universe."""

    STOCK = "STK"
    ETF = "ETF"


class TradingMode(StrEnum):
    """Where a deployment sends its orders."""

    PAPER = "paper"
    LIVE = "live"


def utcnow() -> datetime:
    """Return the current time, timezone-aware UTC."""
    return datetime.now(UTC)


def _require_utc(name: str, value: datetime | None) -> None:
    if value is not None and value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware (UTC); got naive {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Instrument:
    """A tradable contract as SCIZOR knows it."""

    symbol: str
    sec_type: SecType = SecType.STOCK
    exchange: str = "SMART"
    primary_exchange: str = ""
    currency: str = "USD"
    con_id: int | None = None
    name: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    """An order as submitted by a strategy or a user."""

    symbol: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    tif: TimeInForce = TimeInForce.DAY
    order_ref: str = ""
    deployment_id: int | None = None
    created_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise ValueError(f"quantity must be positive; got {self.quantity}")
        needs_limit = self.order_type in (
            OrderType.LIMIT,
            OrderType.STOP_LIMIT,
            OrderType.LIMIT_ON_CLOSE,
        )
        if needs_limit and self.limit_price is None:
            raise ValueError(f"limit_price is required for {self.order_type} orders")
        if self.order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and self.stop_price is None:
            raise ValueError(f"stop_price is required for {self.order_type} orders")
        for name, price in (("limit_price", self.limit_price), ("stop_price", self.stop_price)):
            if price is not None and price <= 0:
                raise ValueError(f"{name} must be positive; got {price}")
        _require_utc("created_at", self.created_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """One execution of (part of) an order."""

    exec_id: str
    order_ref: str
    symbol: str
    side: Side
    quantity: Decimal
    price: Decimal
    commission: Decimal
    time: datetime

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise ValueError(f"fill quantity must be positive; got {self.quantity}")
        if self.price <= 0:
            raise ValueError(f"fill price must be positive; got {self.price}")
        _require_utc("time", self.time)


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """A holding: signed quantity (negative is short) and average cost per share."""

    symbol: str
    quantity: Decimal
    avg_cost: Decimal
    account: str = ""

    @property
    def is_flat(self) -> bool:
        """True when nothing is held."""
        return self.quantity == 0
