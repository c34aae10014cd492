"""Domain types shared by every layer.

Messages are immutable (frozen dataclasses); sides, order types and statuses are ``StrEnum``;
order and fill quantities and prices are ``Decimal``; every timestamp is timezone-aware UTC.

Constructors enforce this at the boundary: quantities and prices given as ``int``, ``float``
(through ``str``, so ``0.1`` is ``Decimal('0.1')``) or numeric strings become ``Decimal``;
NaN and infinities are refused; an aware timestamp in another zone is converted to UTC and a
naive one is refused. Every refusal is a :class:`core.errors.ValidationError` naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from numbers import Integral, Real
from typing import Any

from core.errors import ValidationError
from core.instruments import parse, venue_of


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


def _utc(obj: object, name: str, value: Any) -> None:
    """Store ``value`` on ``obj`` as a UTC datetime, or raise ValidationError naming ``name``."""
    if not isinstance(value, datetime):
        raise ValidationError(
            f"{name} must be a timezone-aware datetime (UTC); got {type(value).__name__} {value!r}",
            field=name,
        )
    if value.utcoffset() is None:
        raise ValidationError(
            f"{name} must be timezone-aware (UTC); got naive {value!r}: "
            "pass e.g. datetime(..., tzinfo=UTC) or value.replace(tzinfo=UTC) if it is UTC",
            field=name,
        )
    if value.tzinfo is not UTC:
        object.__setattr__(obj, name, value.astimezone(UTC))


def _decimal(obj: object, name: str, value: Any, *, positive: bool) -> None:
    """Store ``value`` on ``obj`` as a finite Decimal.

    Raises:
        ValidationError: naming ``name`` when ``value`` is not a finite number (or, with
            ``positive``, not above zero).
    """
    number: Decimal | None = None
    try:
        if isinstance(value, Decimal):
            number = value
        elif isinstance(value, bool):
            number = None  # True is an int, but never a quantity
        elif isinstance(value, Integral):
            number = Decimal(int(value))
        elif isinstance(value, Real):
            # Through str, so 0.1 becomes Decimal('0.1'), not 0.1000000000000000055...
            number = Decimal(str(float(value)))
        elif isinstance(value, str):
            number = Decimal(value.strip())
    except InvalidOperation:
        number = None
    if number is None or not number.is_finite():
        raise ValidationError(
            f"{name} must be a finite number (Decimal, int, float or numeric string); "
            f"got {value!r}",
            field=name,
        )
    if positive and number <= 0:
        raise ValidationError(f"{name} must be positive; got {number}", field=name)
    if number is not value:
        object.__setattr__(obj, name, number)


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

    @property
    def id(self) -> str:
        """The canonical id ``SYMBOL.VENUE`` (see :mod:`core.instruments`).

        Raises:
            ValidationError: if a SMART-routed listing has no primary exchange yet.
        """
        venue = venue_of(primary_exchange=self.primary_exchange, exchange=self.exchange)
        return f"{self.symbol.strip().upper()}.{venue}"


def _instrument(obj: object, value: Any) -> None:
    """Store the canonical spelling of the instrument id ``value`` on ``obj``."""
    canonical = str(parse(value, field="instrument"))
    if canonical != value:
        object.__setattr__(obj, "instrument", canonical)


def _con_id(value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ValidationError(
            f"con_id must be a positive int or None; got {value!r}", field="con_id"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Order:
    """An order as submitted by a strategy or a user.

    ``instrument`` is the canonical id (``VEA.ASX``), never a bare ticker; ``con_id`` is IB's
    contract id when known, so the order reaches exactly that listing.
    """

    instrument: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    tif: TimeInForce = TimeInForce.DAY
    con_id: int | None = None
    order_ref: str = ""
    deployment_id: int | None = None
    created_at: datetime = field(default_factory=utcnow)

    def __post_init__(self) -> None:
        """Coerce quantities and prices to Decimal and ``created_at`` to UTC; check the rest.

        Raises:
            ValidationError: naming the field, for a non-positive or non-finite quantity or
                price, a missing limit or stop price, or a naive ``created_at``.
        """
        _instrument(self, self.instrument)
        _con_id(self.con_id)
        _decimal(self, "quantity", self.quantity, positive=True)
        needs_limit = self.order_type in (
            OrderType.LIMIT,
            OrderType.STOP_LIMIT,
            OrderType.LIMIT_ON_CLOSE,
        )
        if needs_limit and self.limit_price is None:
            raise ValidationError(
                f"limit_price is required for {self.order_type} orders", field="limit_price"
            )
        if self.order_type in (OrderType.STOP, OrderType.STOP_LIMIT) and self.stop_price is None:
            raise ValidationError(
                f"stop_price is required for {self.order_type} orders", field="stop_price"
            )
        for name, price in (("limit_price", self.limit_price), ("stop_price", self.stop_price)):
            if price is not None:
                _decimal(self, name, price, positive=True)
        _utc(self, "created_at", self.created_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """One execution of (part of) an order."""

    exec_id: str
    order_ref: str
    instrument: str
    side: Side
    quantity: Decimal
    price: Decimal
    commission: Decimal
    time: datetime
    con_id: int | None = None

    def __post_init__(self) -> None:
        """Coerce quantity, price and commission to Decimal and ``time`` to UTC.

        Raises:
            ValidationError: naming the field, for a non-positive or non-finite quantity or
                price, a non-finite commission, a naive ``time`` or a malformed instrument.
        """
        _instrument(self, self.instrument)
        _con_id(self.con_id)
        _decimal(self, "quantity", self.quantity, positive=True)
        _decimal(self, "price", self.price, positive=True)
        _decimal(self, "commission", self.commission, positive=False)
        _utc(self, "time", self.time)


@dataclass(frozen=True, slots=True, kw_only=True)
class Position:
    """A holding: signed quantity (negative is short) and average cost per share."""

    instrument: str
    quantity: Decimal
    avg_cost: Decimal
    account: str = ""
    con_id: int | None = None

    def __post_init__(self) -> None:
        """Check the instrument id and contract id."""
        _instrument(self, self.instrument)
        _con_id(self.con_id)

    @property
    def is_flat(self) -> bool:
        """True when nothing is held."""
        return self.quantity == 0
