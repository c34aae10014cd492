"""Bar sizes: SCIZOR's short spelling, its length, and IBKR's own string.

SCIZOR spells bar sizes ``1s 5s 30s 1m 5m 15m 30m 1h 1d``. IBKR's ``barSizeSetting`` strings
(``"1 min"``, ``"1 day"``, ...) are translated here, once, for ibsim and the gateway.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from core.errors import ValidationError


@dataclass(frozen=True, slots=True, kw_only=True)
class BarSize:
    """One supported bar size."""

    name: str
    seconds: int
    ib: str

    @property
    def delta(self) -> timedelta:
        """The bar's length as a timedelta."""
        return timedelta(seconds=self.seconds)

    @property
    def is_daily(self) -> bool:
        """True for daily bars (stamped by session date, not by time of day)."""
        return self.seconds >= 86_400

    @property
    def hard_paced(self) -> bool:
        """True when IBKR's hard pacing rules apply (bars of 30 seconds or less)."""
        return self.seconds <= 30

    def __str__(self) -> str:
        return self.name


BAR_SIZES: dict[str, BarSize] = {
    b.name: b
    for b in (
        BarSize(name="1s", seconds=1, ib="1 secs"),
        BarSize(name="5s", seconds=5, ib="5 secs"),
        BarSize(name="30s", seconds=30, ib="30 secs"),
        BarSize(name="1m", seconds=60, ib="1 min"),
        BarSize(name="5m", seconds=300, ib="5 mins"),
        BarSize(name="15m", seconds=900, ib="15 mins"),
        BarSize(name="30m", seconds=1800, ib="30 mins"),
        BarSize(name="1h", seconds=3600, ib="1 hour"),
        BarSize(name="1d", seconds=86_400, ib="1 day"),
    )
}

_BY_IB: dict[str, BarSize] = {b.ib: b for b in BAR_SIZES.values()}


def bar_size(name: str | BarSize) -> BarSize:
    """Return the :class:`BarSize` for a SCIZOR spelling such as ``"1m"``.

    Raises:
        ValidationError: if the name is not one of the supported sizes.
    """
    if isinstance(name, BarSize):
        return name
    try:
        return BAR_SIZES[name]
    except KeyError:
        valid = " ".join(BAR_SIZES)
        raise ValidationError(
            f"bar_size {name!r} is not supported; use one of: {valid}", field="bar_size"
        ) from None


def from_ib(setting: str) -> BarSize:
    """Return the :class:`BarSize` for an IBKR ``barSizeSetting`` such as ``"5 mins"``."""
    try:
        return _BY_IB[" ".join(setting.split())]
    except KeyError:
        valid = ", ".join(repr(k) for k in _BY_IB)
        raise ValidationError(
            f"barSizeSetting {setting!r} is not supported; use one of: {valid}",
            field="bar_size",
        ) from None
