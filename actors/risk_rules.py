"""The pre-trade risk engine: limits, the snapshot an order is checked against, the verdict.

Plain Python (no Ray, no SQL): the risk-manager actor is a thin ``ray.remote`` wrapper that
builds a :class:`RiskContext` from its positions, prices and equity marks and calls
:meth:`RiskEngine.check`; unit tests drive the engine directly.

Every check runs and every failing one is reported, so a refusal names all the limits an
order breaks. A limit exactly reached is allowed; one step beyond it is refused. Position and
exposure limits refuse an order only if it ends beyond the limit *and* further from flat than
before, so an order that reduces an over-limit book (lowered limits, a flatten) still passes.
Where a check needs a price or an equity it does not have, it refuses: no data is treated as
a breach, never as a pass.

Money is in the instrument's price currency and the context's equity in the account's
currency; the engine does no FX, so keep an account (or a limit book) to one currency, or
pass prices already converted to the account currency.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import exchange_calendars as xcals
import pandas as pd

from actors.risk_limits import LimitBook, RiskLimits, plain
from actors.risk_state import EquityMarks, KillSwitch, KillSwitchEvent
from core.errors import RiskRejected, ValidationError
from core.instruments import parse
from core.types import Order, Side
from storage.calendars import calendar_for

__all__ = [
    "Breach",
    "Decision",
    "LimitBook",
    "RiskContext",
    "RiskEngine",
    "RiskLimits",
    "exchange_open",
]

ORDER_WINDOW = timedelta(minutes=1)
"""The window of ``max_orders_per_minute``: orders sent in ``(now - 1 min, now]`` count."""

_CALENDAR_START = "2020-01-02"  # building a calendar from here costs well under a second


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskContext:
    """What the engine knows when it checks an order: a snapshot the actor assembles.

    Attributes:
        now: The check's time (UTC).
        positions: Signed quantity held per instrument id (negative is short).
        last_prices: Last traded price per instrument id, in its price currency.
        equity: The account's equity now.
        day_start_equity: The equity at the start of the trading day
            (:attr:`actors.risk_state.EquityMarks.day_start_equity`).
        high_water_mark: The equity high-water mark the drawdown is measured from.
        recent_orders: Send times of recent orders per deployment id (``None``: manual
            orders); times outside :data:`ORDER_WINDOW` are ignored, so a longer history is
            fine. Together they are the account's orders.
    """

    now: datetime
    positions: Mapping[str, Decimal] = field(default_factory=dict)
    last_prices: Mapping[str, Decimal] = field(default_factory=dict)
    equity: Decimal | None = None
    day_start_equity: Decimal | None = None
    high_water_mark: Decimal | None = None
    recent_orders: Mapping[int | None, Sequence[datetime]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Convert ``now`` to UTC and instrument ids to their canonical spelling.

        Raises:
            ValidationError: for a naive ``now``, a malformed id or a non-finite number.
        """
        if not isinstance(self.now, datetime) or self.now.utcoffset() is None:
            raise ValidationError(f"now must be timezone-aware; got {self.now!r}", field="now")
        object.__setattr__(self, "now", self.now.astimezone(UTC))
        for name in ("positions", "last_prices"):
            table: Mapping[str, Decimal] = getattr(self, name)
            canon = {
                str(parse(k, field=name)): _finite(v, f"{name}[{k}]") for k, v in table.items()
            }
            object.__setattr__(self, name, canon)
        for name in ("equity", "day_start_equity", "high_water_mark"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, _finite(value, name))

    def with_marks(self, marks: EquityMarks | None) -> RiskContext:
        """Return a copy whose equity fields come from the kill switch's marks (if any)."""
        if marks is None:
            return self
        return replace(
            self,
            equity=marks.equity,
            day_start_equity=marks.day_start_equity,
            high_water_mark=marks.high_water_mark,
        )

    def orders_in_window(self, deployment_id: int | None = None, *, account: bool = False) -> int:
        """Count orders sent within :data:`ORDER_WINDOW` of ``now`` (by one deployment or all)."""
        since = self.now - ORDER_WINDOW
        groups = (
            self.recent_orders.values() if account else [self.recent_orders.get(deployment_id, ())]
        )
        return sum(1 for times in groups for t in times if since < t <= self.now)


@dataclass(frozen=True, slots=True, kw_only=True)
class Breach:
    """One limit an order breaks.

    Attributes:
        limit: The limit's name (a :class:`RiskLimits` field, or ``"halted"``).
        limit_value: The limit as set (``None`` for ``"halted"``).
        observed: What the order would make of it (``None`` when it could not be measured).
        message: A plain sentence, e.g. ``order notional 125,000.00 exceeds
            max_order_notional 100,000``.
    """

    limit: str
    limit_value: Decimal | int | bool | tuple[str, ...] | None
    observed: Decimal | int | str | None
    message: str

    def to_mapping(self) -> dict[str, Any]:
        """Return JSON-ready values (numbers as strings), for a risk event's detail."""

        def out(value: object) -> object:
            return str(value) if isinstance(value, Decimal) else value

        return {
            "limit": self.limit,
            "limit_value": out(self.limit_value),
            "observed": out(self.observed),
            "message": self.message,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Decision:
    """The engine's verdict on one order: accepted when nothing is breached."""

    breaches: tuple[Breach, ...] = ()

    @property
    def accepted(self) -> bool:
        """True when the order may go to the order manager."""
        return not self.breaches

    @property
    def message(self) -> str:
        """Every breach's message, joined; ``"accepted"`` when there is none."""
        return "; ".join(b.message for b in self.breaches) or "accepted"

    def raise_if_rejected(self) -> None:
        """Raise :class:`core.errors.RiskRejected` with :attr:`message` unless accepted."""
        if self.breaches:
            raise RiskRejected(f"risk manager refused the order: {self.message}")


def exchange_open(instrument: str, now: datetime) -> bool:
    """True when the instrument's exchange session is open at ``now`` (the minute of it).

    Uses the venue's exchange_calendars session (early closes and holidays included; the
    close minute itself is outside).

    Raises:
        ValidationError: for a venue without a calendar, or a time the calendar does not
            cover.
    """
    code = calendar_for(parse(instrument).venue)
    try:
        return bool(_calendar(code).is_open_on_minute(pd.Timestamp(now.astimezone(UTC))))
    except xcals.errors.MinuteOutOfBounds as exc:
        raise ValidationError(
            f"the {code} calendar does not cover {now.isoformat()}", field="now"
        ) from exc


@lru_cache(maxsize=8)
def _calendar(code: str) -> xcals.ExchangeCalendar:
    return xcals.get_calendar(code, start=_CALENDAR_START)


class RiskEngine:
    """Checks orders against a :class:`LimitBook` and the :class:`KillSwitch`.

    Args:
        book: The limits; replace them with :meth:`set_book`.
        kill_switch: The trading state; a new, active one by default.
        session_open: ``(instrument, now) -> bool``; :func:`exchange_open` by default.
    """

    def __init__(
        self,
        book: LimitBook | None = None,
        *,
        kill_switch: KillSwitch | None = None,
        session_open: Callable[[str, datetime], bool] = exchange_open,
    ) -> None:
        self.book = book or LimitBook()
        self.kill_switch = kill_switch or KillSwitch()
        self._session_open = session_open

    def set_book(self, book: LimitBook) -> None:
        """Use new limits from the next check on."""
        self.book = book

    def observe_equity(self, equity: Decimal, now: datetime) -> KillSwitchEvent | None:
        """Feed the account's equity to the kill switch, with the global loss limits."""
        limits = self.book.global_
        return self.kill_switch.observe_equity(
            equity,
            now,
            max_daily_loss=limits.max_daily_loss,
            max_drawdown_pct=limits.max_drawdown_pct,
        )

    def check(self, order: Order, context: RiskContext) -> Decision:
        """Return every limit ``order`` breaks given ``context`` (nothing is changed)."""
        limits = self.book.effective(order.deployment_id)
        found: list[Breach | None] = [self._halted()]
        found += [_instrument_allowed(order, limits), self._session(order, context, limits)]
        found += _order_size(order, context, limits)
        found += [_price_band(order, context, limits), _position(order, context, limits)]
        found += _exposure(order, context, limits)
        found += _rate(order, context, self.book)
        found += _losses(context, limits)
        return Decision(breaches=tuple(b for b in found if b is not None))

    def _halted(self) -> Breach | None:
        ks = self.kill_switch
        if not ks.halted:
            return None
        since = ks.halted_at.isoformat() if ks.halted_at else "?"
        return Breach(
            limit="halted",
            limit_value=None,
            observed=ks.reason,
            message=f"trading is halted (since {since}, by {ks.halted_by}): {ks.reason}",
        )

    def _session(self, order: Order, ctx: RiskContext, limits: RiskLimits) -> Breach | None:
        # A priced order may rest at the broker until the open; an unpriced one would fill at
        # whatever the open brings, so only those are refused outside the session.
        if not limits.trading_hours or order.limit_price is not None:
            return None
        try:
            if self._session_open(order.instrument, ctx.now):
                return None
            why = f"{order.instrument}'s exchange is closed at {ctx.now:%Y-%m-%d %H:%M} UTC"
        except ValidationError as exc:
            why = f"{order.instrument}'s session is unknown ({exc.message})"
        return Breach(
            limit="trading_hours",
            limit_value=True,
            observed=ctx.now.isoformat(),
            message=f"{why}; only limit orders may be sent outside the session",
        )


def _instrument_allowed(order: Order, limits: RiskLimits) -> Breach | None:
    allowed = limits.allowed_instruments
    if allowed is None or order.instrument in allowed:
        return None
    shown = ", ".join(sorted(allowed)) or "nothing"
    return Breach(
        limit="allowed_instruments",
        limit_value=tuple(sorted(allowed)),
        observed=order.instrument,
        message=f"{order.instrument} is not in allowed_instruments ({shown})",
    )


def _order_size(order: Order, ctx: RiskContext, limits: RiskLimits) -> list[Breach | None]:
    found: list[Breach | None] = []
    cap = limits.max_order_quantity
    if cap is not None and order.quantity > cap:
        found.append(_over("order quantity", order.quantity, "max_order_quantity", cap, None))
    cap = limits.max_order_notional
    if cap is not None:
        price = _order_price(order, ctx)
        if price is None:
            found.append(_unknown("max_order_notional", cap, f"{order.instrument}'s price"))
        elif order.quantity * price > cap:
            found.append(_over("order notional", order.quantity * price, "max_order_notional", cap))
    return found


def _price_band(order: Order, ctx: RiskContext, limits: RiskLimits) -> Breach | None:
    band = limits.price_band_pct
    if band is None:
        return None
    last = ctx.last_prices.get(order.instrument)
    if last is None:
        return _unknown("price_band_pct", band, f"the last price of {order.instrument}")
    if order.limit_price is None:
        return None
    off = abs(order.limit_price - last) / last * 100
    if off <= band:
        return None
    return Breach(
        limit="price_band_pct",
        limit_value=band,
        observed=off,
        message=(
            f"{order.side} limit price {order.limit_price:,.2f} is {off:,.2f}% from the last "
            f"price {last:,.2f}, beyond price_band_pct {plain(band)}"
        ),
    )


def _position(order: Order, ctx: RiskContext, limits: RiskLimits) -> Breach | None:
    cap = limits.max_position
    if cap is None:
        return None
    now = ctx.positions.get(order.instrument, Decimal(0))
    after = now + _signed(order)
    # Reducing a position (same side, smaller) passes even above the limit; crossing flat
    # opens a new position, judged alone.
    reduces = now != 0 and (after == 0 or (after > 0) == (now > 0)) and abs(after) <= abs(now)
    if abs(after) <= cap or reduces:
        return None
    message = (
        f"resulting position {after:,f} in {order.instrument} exceeds max_position "
        f"{plain(cap)} (held now: {now:,f})"
    )
    return Breach(limit="max_position", limit_value=cap, observed=after, message=message)


def _exposure(order: Order, ctx: RiskContext, limits: RiskLimits) -> list[Breach | None]:
    caps = {"gross": limits.max_gross_exposure, "net": limits.max_net_exposure}
    if caps["gross"] is None and caps["net"] is None:
        return []
    marks = dict(ctx.last_prices)
    if order.instrument not in marks and order.limit_price is not None:
        marks[order.instrument] = order.limit_price
    before = {i: q for i, q in ctx.positions.items() if q != 0}
    after = dict(before)
    after[order.instrument] = after.get(order.instrument, Decimal(0)) + _signed(order)
    missing = sorted(i for i in after if i not in marks)
    found: list[Breach | None] = []
    for kind, cap in caps.items():
        name = f"max_{kind}_exposure"
        if cap is None:
            continue
        if missing:
            found.append(_unknown(name, cap, f"the last price of {', '.join(missing)}"))
            continue
        old, new = _exposure_of(before, marks, kind), _exposure_of(after, marks, kind)
        if new > cap and new > old:
            found.append(_over(f"{kind} exposure after the order", new, name, cap))
    return found


def _exposure_of(book: Mapping[str, Decimal], marks: Mapping[str, Decimal], kind: str) -> Decimal:
    values = [q * marks[i] for i, q in book.items()]
    return (
        sum((abs(v) for v in values), Decimal(0))
        if kind == "gross"
        else abs(sum(values, Decimal(0)))
    )


def _rate(order: Order, ctx: RiskContext, book: LimitBook) -> list[Breach | None]:
    account_cap = book.global_.max_orders_per_minute
    found: list[Breach | None] = []
    if account_cap is not None:
        n = ctx.orders_in_window(account=True) + 1
        if n > account_cap:
            found.append(_too_many(n, account_cap, "the account"))
    # A deployment's own count only matters when its override is tighter than the account's.
    cap = book.effective(order.deployment_id).max_orders_per_minute
    if order.deployment_id is not None and cap is not None and cap != account_cap:
        n = ctx.orders_in_window(order.deployment_id) + 1
        if n > cap:
            found.append(_too_many(n, cap, f"deployment {order.deployment_id}"))
    return found


def _too_many(n: int, cap: int, who: str) -> Breach:
    message = (
        f"this would be order {n} of {who} in the last minute, beyond max_orders_per_minute {cap}"
    )
    return Breach(limit="max_orders_per_minute", limit_value=cap, observed=n, message=message)


def _losses(ctx: RiskContext, limits: RiskLimits) -> list[Breach | None]:
    found: list[Breach | None] = []
    cap = limits.max_daily_loss
    if cap is not None:
        if ctx.equity is None or ctx.day_start_equity is None:
            found.append(_unknown("max_daily_loss", cap, "the day's equity"))
        elif ctx.day_start_equity - ctx.equity > cap:
            loss = ctx.day_start_equity - ctx.equity
            found.append(_over("daily loss", loss, "max_daily_loss", cap))
    cap = limits.max_drawdown_pct
    if cap is not None:
        hwm = ctx.high_water_mark
        if ctx.equity is None or hwm is None or hwm <= 0:
            found.append(_unknown("max_drawdown_pct", cap, "the equity high-water mark"))
        elif (hwm - ctx.equity) / hwm * 100 > cap:
            pct = (hwm - ctx.equity) / hwm * 100
            found.append(
                _over("drawdown (%) from the high-water mark", pct, "max_drawdown_pct", cap)
            )
    return found


def _over(what: str, observed: Decimal, limit: str, cap: Decimal, places: int | None = 2) -> Breach:
    shown = f"{observed:,f}" if places is None else f"{observed:,.{places}f}"
    return Breach(
        limit=limit,
        limit_value=cap,
        observed=observed,
        message=f"{what} {shown} exceeds {limit} {plain(cap)}",
    )


def _unknown(limit: str, cap: Decimal, what: str) -> Breach:
    return Breach(
        limit=limit,
        limit_value=cap,
        observed=None,
        message=f"{what} is unknown, so {limit} {plain(cap)} cannot be checked",
    )


def _order_price(order: Order, ctx: RiskContext) -> Decimal | None:
    return (
        order.limit_price
        if order.limit_price is not None
        else ctx.last_prices.get(order.instrument)
    )


def _signed(order: Order) -> Decimal:
    return order.quantity if order.side is Side.BUY else -order.quantity


def _finite(value: Any, name: str) -> Decimal:
    number = value if isinstance(value, Decimal) else None
    if isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            number = None
    if number is None or not number.is_finite():
        raise ValidationError(f"{name} must be a finite number; got {value!r}", field=name)
    return number
