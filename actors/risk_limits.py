"""Risk limits: what the pre-trade checks and the kill switch enforce, and how they are read.

Plain Python (no Ray, no SQL). Every limit is optional; ``None`` (or ``False`` for
``trading_hours``) means no limit. :meth:`RiskLimits.from_mapping` is the boundary where
limits arrive from the HTTP API or the catalog: a bad value is refused with a
:class:`core.errors.ValidationError` naming the field (``limits.max_order_notional``).
A :class:`LimitBook` holds the account's global limits and per-deployment overrides.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from decimal import Decimal, InvalidOperation
from typing import Any

from core.errors import ValidationError
from core.instruments import parse

__all__ = ["LimitBook", "RiskLimits", "plain"]

_AMOUNTS = (
    "max_order_quantity",
    "max_order_notional",
    "max_position",
    "max_gross_exposure",
    "max_net_exposure",
    "max_daily_loss",
    "max_drawdown_pct",
    "price_band_pct",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskLimits:
    """One set of limits (the account's global ones, or a deployment's override).

    Money is in the instrument's price currency (notional, exposure) or the account's
    currency (losses); see :mod:`actors.risk_rules`. A value exactly at a limit is allowed.

    Attributes:
        max_order_quantity: Shares in one order.
        max_order_notional: Quantity times the limit price (or the last price) of one order.
        max_position: Absolute shares held in one instrument after the order.
        max_gross_exposure: Sum of ``|quantity x last price|`` over positions after the order.
        max_net_exposure: ``|sum of quantity x last price|`` over positions after the order.
        max_orders_per_minute: Orders sent in any minute (by the account for the global
            limits; by the deployment for an override).
        allowed_instruments: The instrument ids that may be traded; ``None`` allows all.
        trading_hours: Refuse orders without a limit price while the instrument's exchange
            session is closed (limit orders may rest until the open).
        max_daily_loss: A positive amount; losing more than it since the trading day began
            halts trading.
        max_drawdown_pct: Percent (``5`` is 5 %) below the equity high-water mark beyond which
            trading halts.
        price_band_pct: Percent a limit price may lie from the last price (fat-finger check);
            with a band set, an order in an instrument without a last price is refused.
    """

    max_order_quantity: Decimal | None = None
    max_order_notional: Decimal | None = None
    max_position: Decimal | None = None
    max_gross_exposure: Decimal | None = None
    max_net_exposure: Decimal | None = None
    max_orders_per_minute: int | None = None
    allowed_instruments: frozenset[str] | None = None
    trading_hours: bool = False
    max_daily_loss: Decimal | None = None
    max_drawdown_pct: Decimal | None = None
    price_band_pct: Decimal | None = None

    def __post_init__(self) -> None:
        """Coerce and check every field (see :meth:`from_mapping` for the rules).

        Raises:
            ValidationError: naming ``limits.<field>``.
        """
        for f in fields(self):
            value = getattr(self, f.name)
            coerced = _coerce(f.name, value, "limits")
            if coerced is not value:
                object.__setattr__(self, f.name, coerced)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, where: str = "limits") -> RiskLimits:
        """Build limits from ``{name: value}``; names left out have no limit.

        Amounts take a ``Decimal``, ``int``, ``float`` or numeric string, finite and not
        negative; ``max_orders_per_minute`` a whole number; ``allowed_instruments`` a list
        of instrument ids; ``trading_hours`` a bool. ``None`` means no limit.

        Args:
            data: The limits by name.
            where: The prefix of the field named in errors (``limits``).

        Raises:
            ValidationError: naming ``<where>.<field>``, for an unknown name (with the
                nearest known one) or a bad value.
        """
        if not isinstance(data, Mapping):
            raise ValidationError(
                f"{where} must be a mapping of limit names to values; got {data!r}", field=where
            )
        for key in data:
            if key not in _NAMES:
                near = difflib.get_close_matches(str(key), _NAMES, n=1, cutoff=0.5)
                hint = f"; did you mean {near[0]}?" if near else ""
                raise ValidationError(
                    f"{where}.{key} is not a risk limit{hint} (known: {', '.join(_NAMES)})",
                    field=f"{where}.{key}",
                )
        return cls(**{name: _coerce(name, value, where) for name, value in data.items()})

    def to_mapping(self) -> dict[str, Any]:
        """Return every field as JSON-ready values (amounts as strings, ``None`` if unset)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, Decimal):
                value = str(value)
            elif isinstance(value, frozenset):
                value = sorted(value)
            out[f.name] = value
        return out

    def stricter(self, other: RiskLimits) -> RiskLimits:
        """Return the stricter of ``self`` and ``other``, field by field.

        The smaller amount wins (a set one beats ``None``), ``trading_hours`` holds if either
        sets it, and only instruments both allow stay allowed.
        """
        merged: dict[str, Any] = {}
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name == "trading_hours":
                merged[f.name] = mine or theirs
            elif mine is None or theirs is None:
                merged[f.name] = theirs if mine is None else mine
            elif f.name == "allowed_instruments":
                merged[f.name] = mine & theirs
            else:
                merged[f.name] = min(mine, theirs)
        return RiskLimits(**merged)


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitBook:
    """The account's global limits and per-deployment overrides.

    A deployment's effective limits are the stricter of its override and the global limits,
    field by field (:meth:`RiskLimits.stricter`): an override can tighten, never loosen.
    """

    global_: RiskLimits = field(default_factory=RiskLimits)
    per_deployment: Mapping[int, RiskLimits] = field(default_factory=dict)

    def effective(self, deployment_id: int | None) -> RiskLimits:
        """Return the limits an order of ``deployment_id`` (``None``: a manual order) meets."""
        override = self.per_deployment.get(deployment_id) if deployment_id is not None else None
        return self.global_ if override is None else self.global_.stricter(override)

    def to_mapping(self) -> dict[str, Any]:
        """Return ``{"global": {...}, "deployments": {"7": {...}}}`` as JSON-ready values."""
        return {
            "global": self.global_.to_mapping(),
            "deployments": {str(d): lim.to_mapping() for d, lim in self.per_deployment.items()},
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> LimitBook:
        """Build a book from :meth:`to_mapping`'s layout (both keys optional).

        Raises:
            ValidationError: naming the field, e.g. ``limits.deployments.7.max_position``.
        """
        unknown = sorted(set(data) - {"global", "deployments"})
        if unknown:
            raise ValidationError(
                f"limits.{unknown[0]} is not part of a limit book; use 'global' and 'deployments'",
                field=f"limits.{unknown[0]}",
            )
        per: dict[int, RiskLimits] = {}
        for key, value in dict(data.get("deployments") or {}).items():
            where = f"limits.deployments.{key}"
            try:
                deployment = int(key)
            except (TypeError, ValueError) as exc:
                raise ValidationError(
                    f"{where}: a deployment id is an integer", field=where
                ) from exc
            per[deployment] = RiskLimits.from_mapping(value, where=where)
        return cls(
            global_=RiskLimits.from_mapping(data.get("global") or {}, where="limits.global"),
            per_deployment=per,
        )


_NAMES = [f.name for f in fields(RiskLimits)]


def plain(value: Decimal | int) -> str:
    """Format a limit for a message: ``100000`` -> ``100,000``; ``2.50`` -> ``2.5``."""
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value.normalize():,f}"


def _coerce(name: str, value: Any, where: str) -> Any:
    at = f"{where}.{name}"
    if name == "trading_hours":
        if value is None:
            return False
        if not isinstance(value, bool):
            raise ValidationError(f"{at} must be true or false; got {value!r}", field=at)
        return value
    if value is None:
        return None
    if name == "allowed_instruments":
        return _instruments(value, at)
    number = _number(value, at)
    if number < 0:
        hint = " (a loss limit is a positive amount)" if name == "max_daily_loss" else ""
        raise ValidationError(f"{at} must not be negative; got {value!r}{hint}", field=at)
    if name == "max_orders_per_minute":
        if number != number.to_integral_value():
            raise ValidationError(f"{at} must be a whole number of orders; got {value!r}", field=at)
        return int(number)
    return number


def _number(value: Any, at: str) -> Decimal:
    number: Decimal | None = None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            number = Decimal(str(value).strip())
        except InvalidOperation:
            number = None
    if number is None or not number.is_finite():
        raise ValidationError(
            f"{at} must be a finite number, or null for no limit; got {value!r}", field=at
        )
    return number


def _instruments(value: Any, at: str) -> frozenset[str]:
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ValidationError(
            f"{at} must be a list of instrument ids such as ['BHP.ASX', 'AAPL.NASDAQ'], or "
            f"null for all; got {value!r}",
            field=at,
        )
    return frozenset(str(parse(item, field=at)) for item in value)
