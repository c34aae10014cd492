"""Column types that behave the same on SQLite and PostgreSQL.

- :class:`UTCDateTime` stores timezone-aware datetimes and always returns them in UTC. SQLite
  has no time zones, so values are converted to UTC before they are written (naive values are
  refused) and tagged as UTC when they are read back.
- :class:`Money` is ``NUMERIC(20, 8)`` returned as :class:`~decimal.Decimal` quantized to 8
  places. PostgreSQL stores it exactly; SQLite stores NUMERIC as a float, which is exact to 15
  significant digits, so a value that would lose digits there is refused instead of rounded.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import DateTime, Dialect, Numeric
from sqlalchemy.types import TypeDecorator, TypeEngine

from core.errors import ValidationError

SCALE = 8
PRECISION = 20
_QUANTUM = Decimal(1).scaleb(-SCALE)
_SQLITE_DIGITS = 15


class UTCDateTime(TypeDecorator[datetime]):
    """``TIMESTAMP WITH TIME ZONE`` that refuses naive datetimes and returns UTC."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime) or value.utcoffset() is None:
            raise ValidationError(
                f"timestamps must be timezone-aware datetimes (UTC); got {value!r}: "
                "pass datetime(..., tzinfo=UTC)",
                field="timestamp",
            )
        utc = value.astimezone(UTC)
        # SQLite drops the offset when it formats the value: write naive UTC explicitly.
        return utc.replace(tzinfo=None) if dialect.name == "sqlite" else utc

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def to_money(value: Any, *, field: str) -> Decimal:
    """Return ``value`` as a Decimal rounded (half-even) to 8 places.

    Raises:
        ValidationError: if ``value`` is not a finite number or does not fit NUMERIC(20, 8).
    """
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
        quantized = number.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
    except (InvalidOperation, ValueError, TypeError) as exc:
        raise ValidationError(
            f"{field} must be a finite decimal number; got {value!r}", field=field
        ) from exc
    if not quantized.is_finite():
        raise ValidationError(
            f"{field} must be a finite decimal number; got {value!r}", field=field
        )
    if len(quantized.as_tuple().digits) > PRECISION:
        raise ValidationError(
            f"{field}={value!r} does not fit NUMERIC({PRECISION}, {SCALE})", field=field
        )
    return quantized


class Money(TypeDecorator[Decimal]):
    """``NUMERIC(20, 8)`` for prices, quantities and money, returned as ``Decimal``."""

    impl = Numeric(PRECISION, SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            # We convert floats to Decimal ourselves (see process_result_value).
            return dialect.type_descriptor(Numeric(PRECISION, SCALE, asdecimal=False))
        return dialect.type_descriptor(Numeric(PRECISION, SCALE))

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        money = to_money(value, field="amount")
        if dialect.name != "sqlite":
            return money
        if len(money.normalize().as_tuple().digits) > _SQLITE_DIGITS:
            raise ValidationError(
                f"{value!r} has more than {_SQLITE_DIGITS} significant digits, which SQLite "
                "cannot store exactly: use PostgreSQL (SCIZOR_DATABASE_URL) or round it",
                field="amount",
            )
        return float(money)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        if isinstance(value, float):
            # repr() gives the shortest string that round-trips, i.e. the digits we wrote.
            return Decimal(repr(value)).quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
        return Decimal(value).quantize(_QUANTUM, rounding=ROUND_HALF_EVEN)
