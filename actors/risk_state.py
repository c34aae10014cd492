"""The risk manager's kill switch: trading state, equity marks and the events they produce.

Plain Python (no Ray, no SQL) so the risk-manager actor persists :meth:`KillSwitch.to_mapping`
in the catalog and restores it with :meth:`KillSwitch.from_mapping` after a restart, and unit
tests drive it directly.

The switch is ``ACTIVE`` until the daily loss or the drawdown limit is breached
(:meth:`KillSwitch.observe_equity`) or someone pulls the emergency stop; it is then ``HALTED``
and stays so, across restarts, until an admin calls :meth:`KillSwitch.reset`. Nothing resets
it automatically, not even a new trading day.

The daily loss is measured from the first equity observed in the account's trading day
(which starts at ``day_start`` in ``timezone``, UTC midnight by default); the drawdown from
the equity high-water mark, kept since the switch was created (or, with
``daily_high_water_mark``, since the trading day began).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from actors.risk_limits import plain
from core.errors import Conflict, ValidationError

__all__ = ["SYSTEM", "EquityMarks", "KillSwitch", "KillSwitchEvent", "TradingState"]

SYSTEM = "risk-manager"
"""Who trips the switch when a loss limit is breached."""

_FORMAT = 1  # version of the to_mapping layout


class TradingState(StrEnum):
    """Whether the risk manager lets orders through."""

    ACTIVE = "ACTIVE"
    HALTED = "HALTED"


@dataclass(frozen=True, slots=True, kw_only=True)
class EquityMarks:
    """What the loss limits are measured against; copy these into a risk context.

    Attributes:
        trading_day: The account's trading day the marks belong to.
        day_start_equity: The first equity observed in that trading day.
        high_water_mark: The highest equity observed (since creation, or since the day began).
        equity: The last equity observed.
    """

    trading_day: date
    day_start_equity: Decimal
    high_water_mark: Decimal
    equity: Decimal

    @property
    def daily_loss(self) -> Decimal:
        """Equity lost since the day began (negative when the day is up)."""
        return self.day_start_equity - self.equity

    @property
    def drawdown_pct(self) -> Decimal:
        """Percent below the high-water mark (0 at or above it)."""
        if self.high_water_mark <= 0:
            return Decimal(0)
        return max(Decimal(0), (self.high_water_mark - self.equity) / self.high_water_mark * 100)


@dataclass(frozen=True, slots=True, kw_only=True)
class KillSwitchEvent:
    """A change of trading state, for the actor to record as a risk event.

    Attributes:
        kind: ``"halted"`` (a loss limit tripped), ``"emergency_stop"`` or ``"reset"``.
        at: When it happened (UTC).
        by: Who did it (:data:`SYSTEM` for an automatic trip).
        reason: A plain sentence.
        limit: The limit that tripped, for ``"halted"``.
        flatten: For ``"emergency_stop"``: the caller asked for every position to be closed.
    """

    kind: str
    at: datetime
    by: str
    reason: str
    limit: str | None = None
    flatten: bool = False

    def to_mapping(self) -> dict[str, Any]:
        """Return the event as JSON-ready values (the catalog's ``risk_events.detail``)."""
        return {
            "kind": self.kind,
            "at": self.at.isoformat(),
            "by": self.by,
            "reason": self.reason,
            "limit": self.limit,
            "flatten": self.flatten,
        }


@dataclass(slots=True, kw_only=True)
class KillSwitch:
    """The trading state and the equity marks behind it.

    Args:
        day_start: When the account's trading day starts, in ``timezone``.
        timezone: IANA name of the zone ``day_start`` is in.
        daily_high_water_mark: Restart the high-water mark at each trading day's first equity
            (a daily drawdown) instead of keeping it across days.
    """

    day_start: time = time(0)
    timezone: str = "UTC"
    daily_high_water_mark: bool = False
    state: TradingState = TradingState.ACTIVE
    reason: str = ""
    halted_at: datetime | None = None
    halted_by: str = ""
    halted_limit: str | None = None
    flatten: bool = False
    marks: EquityMarks | None = None
    _zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Check the day boundary and the zone.

        Raises:
            ValidationError: for an unknown zone or an aware ``day_start``.
        """
        if self.day_start.tzinfo is not None:
            raise ValidationError(
                "day_start is a wall-clock time in `timezone`; pass it without tzinfo",
                field="day_start",
            )
        try:
            self._zone = ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValidationError(
                f"timezone {self.timezone!r} is not an IANA zone (e.g. 'UTC', "
                "'Australia/Sydney', 'America/New_York')",
                field="timezone",
            ) from exc

    @property
    def halted(self) -> bool:
        """True while orders are refused."""
        return self.state is TradingState.HALTED

    def trading_day(self, now: datetime) -> date:
        """Return the account's trading day that contains ``now``."""
        local = _aware(now, "now").astimezone(self._zone).replace(tzinfo=None)
        start = timedelta(hours=self.day_start.hour, minutes=self.day_start.minute)
        return (local - start).date()

    def observe_equity(
        self,
        equity: Decimal,
        now: datetime,
        *,
        max_daily_loss: Decimal | None = None,
        max_drawdown_pct: Decimal | None = None,
    ) -> KillSwitchEvent | None:
        """Update the marks with the account's equity and trip the switch on a breached limit.

        A loss exactly at a limit is allowed; beyond it the switch trips. Pass the account's
        (global) limits; ``None`` means no limit.

        Returns:
            The ``"halted"`` event when this observation tripped the switch, else ``None``
            (also when it was already halted: the marks still move).
        """
        self.marks = self._roll(_decimal(equity, "equity"), _aware(now, "now"))
        if self.halted:
            return None
        marks = self.marks
        if max_daily_loss is not None and marks.daily_loss > max_daily_loss:
            reason = (
                f"daily loss {marks.daily_loss:,.2f} exceeds max_daily_loss {plain(max_daily_loss)}"
            )
            return self._halt(reason, at=now, by=SYSTEM, limit="max_daily_loss")
        if max_drawdown_pct is not None and marks.drawdown_pct > max_drawdown_pct:
            reason = (
                f"drawdown {marks.drawdown_pct:,.2f}% from the high-water mark "
                f"{marks.high_water_mark:,.2f} exceeds max_drawdown_pct {plain(max_drawdown_pct)}"
            )
            return self._halt(reason, at=now, by=SYSTEM, limit="max_drawdown_pct")
        return None

    def emergency_stop(
        self, reason: str, *, by: str, now: datetime, flatten: bool = False
    ) -> KillSwitchEvent:
        """Halt trading now, whatever the state; with ``flatten`` the actor closes positions.

        Flattening orders go from the actor straight to the order manager: a halted engine
        refuses every order, its own included.
        """
        if not reason.strip() or not by.strip():
            raise ValidationError("an emergency stop needs a reason and who pulled it", field="by")
        event = self._halt(reason, at=now, by=by, limit=None, kind="emergency_stop")
        self.flatten = flatten
        return replace(event, flatten=flatten)

    def reset(self, *, by: str, now: datetime, rebase: bool = False) -> KillSwitchEvent:
        """Let orders through again (an admin's explicit call; never automatic).

        Args:
            by: Who reset it.
            now: When.
            rebase: Also restart the day's loss and the high-water mark at the last equity
                observed, so a loss already taken does not trip the switch again.

        Raises:
            Conflict: if trading is not halted.
        """
        if not self.halted:
            raise Conflict("trading is not halted; there is nothing to reset")
        if not by.strip():
            raise ValidationError("a reset needs who did it", field="by")
        previous = self.reason
        self.state, self.reason, self.halted_at = TradingState.ACTIVE, "", None
        self.halted_by, self.halted_limit, self.flatten = "", None, False
        if rebase and self.marks is not None:
            eq = self.marks.equity
            self.marks = replace(self.marks, day_start_equity=eq, high_water_mark=eq)
        return KillSwitchEvent(
            kind="reset", at=_aware(now, "now"), by=by, reason=f"reset after: {previous}"
        )

    def to_mapping(self) -> dict[str, Any]:
        """Return the whole state as JSON-ready values, for the catalog."""
        marks = self.marks
        return {
            "format": _FORMAT,
            "state": self.state.value,
            "reason": self.reason,
            "halted_at": None if self.halted_at is None else self.halted_at.isoformat(),
            "halted_by": self.halted_by,
            "halted_limit": self.halted_limit,
            "flatten": self.flatten,
            "day_start": self.day_start.isoformat(),
            "timezone": self.timezone,
            "daily_high_water_mark": self.daily_high_water_mark,
            "marks": None
            if marks is None
            else {
                "trading_day": marks.trading_day.isoformat(),
                "day_start_equity": str(marks.day_start_equity),
                "high_water_mark": str(marks.high_water_mark),
                "equity": str(marks.equity),
            },
        }

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> KillSwitch:
        """Rebuild a switch saved by :meth:`to_mapping`.

        Raises:
            ValidationError: naming the field, for a mapping this module did not write.
        """
        try:
            if data.get("format") != _FORMAT:
                raise ValidationError(
                    f"kill switch state has format {data.get('format')!r}; expected {_FORMAT}",
                    field="kill_switch.format",
                )
            raw_marks = data["marks"]
            switch = cls(
                day_start=time.fromisoformat(data["day_start"]),
                timezone=str(data["timezone"]),
                daily_high_water_mark=bool(data["daily_high_water_mark"]),
                state=TradingState(data["state"]),
                reason=str(data["reason"]),
                halted_at=None
                if data["halted_at"] is None
                else _aware(datetime.fromisoformat(data["halted_at"]), "halted_at"),
                halted_by=str(data["halted_by"]),
                halted_limit=data["halted_limit"],
                flatten=bool(data["flatten"]),
                marks=None
                if raw_marks is None
                else EquityMarks(
                    trading_day=date.fromisoformat(raw_marks["trading_day"]),
                    day_start_equity=_decimal(raw_marks["day_start_equity"], "day_start_equity"),
                    high_water_mark=_decimal(raw_marks["high_water_mark"], "high_water_mark"),
                    equity=_decimal(raw_marks["equity"], "equity"),
                ),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ValidationError):
                raise
            raise ValidationError(
                f"kill switch state is not one this version wrote: {exc!r}", field="kill_switch"
            ) from exc
        if switch.halted and switch.halted_at is None:
            raise ValidationError("a halted state needs halted_at", field="kill_switch.halted_at")
        return switch

    def _roll(self, equity: Decimal, now: datetime) -> EquityMarks:
        day = self.trading_day(now)
        old = self.marks
        if old is None or day != old.trading_day:
            hwm = equity
            if old is not None and not self.daily_high_water_mark:
                hwm = max(old.high_water_mark, equity)
            return EquityMarks(
                trading_day=day, day_start_equity=equity, high_water_mark=hwm, equity=equity
            )
        return replace(old, high_water_mark=max(old.high_water_mark, equity), equity=equity)

    def _halt(
        self, reason: str, *, at: datetime, by: str, limit: str | None, kind: str = "halted"
    ) -> KillSwitchEvent:
        at = _aware(at, "now")
        self.state, self.reason, self.halted_at = TradingState.HALTED, reason, at
        self.halted_by, self.halted_limit = by, limit
        return KillSwitchEvent(kind=kind, at=at, by=by, reason=reason, limit=limit)


def _aware(value: datetime, name: str) -> datetime:
    if not isinstance(value, datetime) or value.utcoffset() is None:
        raise ValidationError(
            f"{name} must be a timezone-aware datetime; got {value!r}", field=name
        )
    return value.astimezone(UTC)


def _decimal(value: Any, name: str) -> Decimal:
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValidationError(f"{name} must be a number; got {value!r}", field=name) from exc
    if isinstance(value, bool) or not number.is_finite():
        raise ValidationError(f"{name} must be a finite number; got {value!r}", field=name)
    return number
