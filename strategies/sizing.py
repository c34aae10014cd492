"""Position sizing and the bars per year that annualize it.

``size`` in every engine entry point is a fraction of equity, :class:`FixedShares` or
:class:`VolTarget`; :func:`sizing` turns it into the kernel's per-bar multiplier.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.errors import ParameterError
from strategies import _bar_kernels as bk
from strategies.checks import finite_number

_UNITS_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


@dataclass(frozen=True, slots=True)
class FixedShares:
    """Size every entry at ``shares`` whole shares (times the target's magnitude).

    Raises:
        ParameterError: ``shares`` is not a whole number >= 1 (``field="size"``).
    """

    shares: int

    def __post_init__(self) -> None:
        value = finite_number(self.shares, "FixedShares.shares", field="size")
        if value < 1 or value != int(value):
            raise ParameterError(
                f"FixedShares.shares must be a whole number of shares >= 1, got {self.shares!r}",
                field="size",
            )


@dataclass(frozen=True, slots=True)
class VolTarget:
    """Size entries so the position's annualized volatility is about ``annual_vol``.

    The fraction of equity is ``annual_vol / realized_vol``, capped at ``max_fraction``;
    ``realized_vol`` is the standard deviation (ddof=1) of the log returns of the
    ``lookback`` bars up to the signal bar, annualized with the run's bars per year (see
    :func:`periods_per_year`, or the run's ``periods_per_year`` override). Flat until
    ``lookback`` returns exist.

    Raises:
        ParameterError: ``annual_vol`` or ``max_fraction`` is not a finite number > 0, or
            ``lookback`` is not a whole number >= 2 (``field="size"``).
    """

    annual_vol: float = 0.15
    lookback: int = 20
    max_fraction: float = 1.0

    def __post_init__(self) -> None:
        for name in ("annual_vol", "max_fraction"):
            if not finite_number(getattr(self, name), f"VolTarget.{name}", field="size") > 0:
                raise ParameterError(
                    f"VolTarget.{name} must be > 0, got {getattr(self, name)!r}", field="size"
                )
        lookback = finite_number(self.lookback, "VolTarget.lookback", field="size")
        if lookback < 2 or lookback != int(lookback):
            raise ParameterError(
                f"VolTarget.lookback must be a whole number of bars >= 2, got {self.lookback!r}",
                field="size",
            )


Size = float | FixedShares | VolTarget


def periods_per_year(index: pd.Index) -> float:
    """Return bars per year: 252 for daily or slower, else 252 x bars per 6.5-hour session."""
    if len(index) < 2:
        return 252.0
    stamps = index if isinstance(index, pd.DatetimeIndex) else pd.DatetimeIndex(index)
    # pandas 3 indexes may be in s, ms, us or ns: scale the integer step to seconds.
    units = _UNITS_PER_SECOND[stamps.unit]
    ints = stamps.asi8
    if bk.min_step(ints) >= 86_400 * 0.9 * units:
        return 252.0  # the median is at least the smallest step: no need for it
    steps = np.diff(ints)
    # The median of floats: numpy's integer median is several times slower (exact below 2**53).
    step = float(np.median(steps.astype(np.float64))) / units
    return 252.0 if step >= 86_400 * 0.9 else 252.0 * max(1.0, 23_400.0 / step)


def bars_per_year(index: pd.Index, override: float | None = None) -> float:
    """Return ``override`` (validated: finite and > 0) or :func:`periods_per_year` of ``index``."""
    if override is None:
        return periods_per_year(index)
    value = finite_number(override, "periods_per_year")
    if not value > 0:
        raise ParameterError(
            f"periods_per_year must be > 0 (e.g. 252 for daily, 365 for calendar days), "
            f"got {override!r}",
            field="periods_per_year",
        )
    return value


def sizing(size: Size, close: np.ndarray, *, periods_per_year: float) -> tuple[np.ndarray, int]:
    """Return the per-bar sizing multiplier and the kernel's size mode (0 fraction, 1 shares).

    ``periods_per_year`` (the run's :func:`bars_per_year`) annualizes :class:`VolTarget`'s
    realized volatility.
    """
    n = len(close)
    if isinstance(size, FixedShares):  # fields checked when it was built
        return np.full(n, float(size.shares)), 1
    if isinstance(size, VolTarget):
        rets = pd.Series(np.log(close)).diff()
        vol = rets.rolling(int(size.lookback)).std().to_numpy() * math.sqrt(periods_per_year)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.minimum(size.annual_vol / vol, size.max_fraction)
        return np.nan_to_num(frac, nan=0.0, posinf=size.max_fraction), 0
    if isinstance(size, bool) or not isinstance(size, int | float) or not 0 < size <= 1:
        raise ParameterError(
            f"size must be a fraction of equity in (0, 1], FixedShares(n) or VolTarget(...); "
            f"got {size!r}",
            field="size",
        )
    return np.full(n, float(size)), 0
