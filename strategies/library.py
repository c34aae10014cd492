"""The library strategies: SMA crossover, RSI reversion, buy & hold, MACD trend, Bollinger
reversion and Donchian breakout.

Each looks only backwards: indicators with TA-Lib's warm-up (NaN compares False), crossings
from the previous and current bar, channels from bars strictly before the current one.
``allow_short`` (default False) turns long-only rules into long/short ones.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from strategies._signal_kernels import cross_state, latch, sma_cross_targets
from strategies.base import ChoiceParam, FloatParam, IndicatorCache, IntParam, Param, Strategy
from strategies.base import require_less as _require_less

ALLOW_SHORT = ChoiceParam(False, (False, True))


def crosses_above(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """Return True where ``a`` moves from strictly below ``b`` to strictly above it."""
    a = np.asarray(a, dtype=np.float64)
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    out = np.zeros(a.shape, dtype=np.bool_)
    with np.errstate(invalid="ignore"):
        out[1:] = (a[:-1] < b[:-1]) & (a[1:] > b[1:])
    return out


def crosses_below(a: np.ndarray, b: np.ndarray | float) -> np.ndarray:
    """Return True where ``a`` moves from strictly above ``b`` to strictly below it."""
    a = np.asarray(a, dtype=np.float64)
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), a.shape)
    return crosses_above(b, a)


def state(
    long_entry: np.ndarray,
    long_exit: np.ndarray,
    *,
    short: bool,
    short_entry: np.ndarray | None = None,
    short_exit: np.ndarray | None = None,
) -> np.ndarray:
    """Latch entry/exit events into a -1/0/+1 target (shorts mirror the long rules)."""
    off = np.zeros(len(long_entry), dtype=np.bool_)
    se = (long_exit if short_entry is None else short_entry) if short else off
    sx = (long_entry if short_exit is None else short_exit) if short else off
    return np.asarray(latch(long_entry, long_exit, se, sx))


class SmaCross(Strategy):
    """Go long when the fast SMA crosses above the slow one; exit (or reverse) on the cross down."""

    name = "sma_cross"
    description = "SMA crossover: long on fast crossing above slow, flat/short on the cross down"
    params: ClassVar[Mapping[str, Param]] = {
        "fast": IntParam(10, 2, 200),
        "slow": IntParam(30, 3, 400),
        "allow_short": ALLOW_SHORT,
    }

    def check(self, p: Mapping[str, Any]) -> None:
        _require_less(p, "fast", "slow", self.name)

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """The slow SMA's look-back (slow - 1) plus the previous bar of the crossing."""
        return int(self.resolve(params)["slow"])

    def signal(self, bars: pd.DataFrame, p: Mapping[str, Any], ind: IndicatorCache) -> Any:
        fast = ind("sma", "close", p["fast"])
        slow = ind("sma", "close", p["slow"])
        # One numba pass: state(crosses_above(fast, slow), crosses_below(...)) without the
        # intermediate event arrays (the same kernel builds run_batch's targets).
        return cross_state(fast, slow, bool(p["allow_short"]), np.empty(len(fast)))

    def targets_batch(
        self,
        bars: pd.DataFrame,
        param_sets: Sequence[Mapping[str, Any]],
        indicators: IndicatorCache,
    ) -> np.ndarray:
        """Compute each distinct SMA once into a matrix, then cross its rows per set."""
        windows = sorted({p[k] for p in param_sets for k in ("fast", "slow")})
        row = {w: i for i, w in enumerate(windows)}
        smas = np.empty((len(windows), len(bars)))
        for w in windows:
            smas[row[w]] = indicators("sma", "close", w)
        out = np.empty((len(bars), len(param_sets)), order="F")
        sma_cross_targets(
            smas,
            np.array([row[p["fast"]] for p in param_sets], dtype=np.int64),
            np.array([row[p["slow"]] for p in param_sets], dtype=np.int64),
            np.array([bool(p["allow_short"]) for p in param_sets], dtype=np.bool_),
            out.T,
        )
        return out


class RsiReversion(Strategy):
    """Buy when RSI drops below ``lower``; sell when it rises above ``upper``."""

    name = "rsi_reversion"
    description = "RSI mean reversion: long below lower, exit (or short) above upper"
    params: ClassVar[Mapping[str, Param]] = {
        "period": IntParam(14, 2, 100),
        "lower": FloatParam(30.0, 1.0, 50.0),
        "upper": FloatParam(70.0, 50.0, 99.0),
        "allow_short": ALLOW_SHORT,
    }

    def check(self, p: Mapping[str, Any]) -> None:
        _require_less(p, "lower", "upper", self.name)

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """RSI's look-back: ``period`` bars."""
        return int(self.resolve(params)["period"])

    def signal(self, bars: pd.DataFrame, p: Mapping[str, Any], ind: IndicatorCache) -> Any:
        rsi = ind("rsi", "close", p["period"])
        with np.errstate(invalid="ignore"):
            low, high = rsi < p["lower"], rsi > p["upper"]
        return state(low, high, short=p["allow_short"])


class BuyHold(Strategy):
    """Hold a long position from the first bar to the last."""

    name = "buy_hold"
    description = "Buy on the first bar and hold"
    params: ClassVar[Mapping[str, Param]] = {}

    def signal(self, bars: pd.DataFrame, p: Mapping[str, Any], ind: IndicatorCache) -> Any:
        return np.ones(len(bars))


class MacdTrend(Strategy):
    """Be long while the MACD line is above its signal line (short below, if allowed)."""

    name = "macd_trend"
    description = "MACD trend: long while MACD > signal line, flat/short otherwise"
    params: ClassVar[Mapping[str, Param]] = {
        "fast": IntParam(12, 2, 100),
        "slow": IntParam(26, 3, 200),
        "signal": IntParam(9, 2, 100),
        "allow_short": ALLOW_SHORT,
    }

    def check(self, p: Mapping[str, Any]) -> None:
        _require_less(p, "fast", "slow", self.name)

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """MACD's look-back: (slow - 1) + (signal - 1) bars."""
        p = self.resolve(params)
        return int(p["slow"]) + int(p["signal"]) - 2

    def signal(self, bars: pd.DataFrame, p: Mapping[str, Any], ind: IndicatorCache) -> Any:
        macd, sig, _ = ind("macd", "close", p["fast"], p["slow"], p["signal"])
        with np.errstate(invalid="ignore"):
            above, below = macd > sig, macd < sig
        return state(above, below, short=p["allow_short"])


class BollingerReversion(Strategy):
    """Buy a close below the lower band, exit at the middle band (shorts mirror it)."""

    name = "bollinger_reversion"
    description = "Bollinger mean reversion: long below the lower band, exit at the middle"
    params: ClassVar[Mapping[str, Param]] = {
        "period": IntParam(20, 2, 200),
        "nbdev": FloatParam(2.0, 0.5, 4.0),
        "allow_short": ALLOW_SHORT,
    }

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """The bands' look-back: ``period - 1`` bars."""
        return int(self.resolve(params)["period"]) - 1

    def signal(self, bars: pd.DataFrame, p: Mapping[str, Any], ind: IndicatorCache) -> Any:
        upper, middle, lower = ind("bbands", "close", p["period"], p["nbdev"], p["nbdev"])
        close = ind.column("close")
        with np.errstate(invalid="ignore"):
            le, lx = close < lower, close >= middle
            se, sx = close > upper, close <= middle
        return state(le, lx, short=p["allow_short"], short_entry=se, short_exit=sx)


class DonchianBreakout(Strategy):
    """Buy a close above the prior ``period``-bar high; exit below the prior ``exit_period`` low."""

    name = "donchian_breakout"
    description = "Donchian channel breakout with a shorter exit channel"
    params: ClassVar[Mapping[str, Param]] = {
        "period": IntParam(20, 2, 250),
        "exit_period": IntParam(10, 2, 250),
        "allow_short": ALLOW_SHORT,
    }

    def warmup(self, params: Mapping[str, Any] | None = None) -> int:
        """The entry channel's ``period`` bars before the current one (exits need a position)."""
        return int(self.resolve(params)["period"])

    def signal(self, bars: pd.DataFrame, p: Mapping[str, Any], ind: IndicatorCache) -> Any:
        close = ind.column("close")
        hi, lo = _channel(ind, "high", p["period"]), _channel(ind, "low", p["period"])
        ex_hi, ex_lo = (
            _channel(ind, "high", p["exit_period"]),
            _channel(ind, "low", p["exit_period"]),
        )
        with np.errstate(invalid="ignore"):
            le, lx = close > hi, close < ex_lo
            se, sx = close < lo, close > ex_hi
        return state(le, lx, short=p["allow_short"], short_entry=se, short_exit=sx)


def _channel(ind: IndicatorCache, column: str, period: int) -> np.ndarray:
    """Highest high / lowest low of the ``period`` bars before each bar (NaN in warm-up)."""

    def compute() -> np.ndarray:
        series = pd.Series(ind.column(column))
        rolled = series.rolling(period).max() if column == "high" else series.rolling(period).min()
        return rolled.shift(1).to_numpy(np.float64)

    return ind.memo(("channel", column, period), compute)


LIBRARY: dict[str, Strategy] = {
    s.name: s
    for s in (
        SmaCross(),
        RsiReversion(),
        BuyHold(),
        MacdTrend(),
        BollingerReversion(),
        DonchianBreakout(),
    )
}
