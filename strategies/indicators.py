"""Technical indicators on numpy float64 arrays, equal to TA-Lib's functions of the same name.

Every function mirrors its upper-case TA-Lib namesake (``sma`` is ``talib.SMA``): same
argument order, defaults and outputs (a tuple where TA-Lib returns several), and the same
NaN warm-up: leading NaNs in the inputs are skipped first (as TA-Lib's Python wrapper does),
then the indicator's lookback bars are NaN too. Input shorter than the lookback gives all NaN.

Example:
    >>> import numpy as np
    >>> from strategies.indicators import sma
    >>> sma(np.array([1.0, 2.0, 3.0, 4.0]), 2).tolist()
    [nan, 1.5, 2.5, 3.5]

Conventions copied from TA-Lib (unstable period 0, default compatibility):
    * EMA seeds with the SMA of its first ``timeperiod`` values; k = 2 / (n + 1).
    * RSI, ATR, ADX, +DI/-DI use Wilder smoothing seeded with a plain average.
    * MACD aligns the fast EMA with the slow one (its seed is the mean of the 12 bars ending
      at bar 25, not bars 0..11), so MACD 12/26/9 has 33 leading NaNs.
    * BBANDS and STDDEV use the population standard deviation (TA-Lib 0.8's shifted running
      sums, which give exactly 0 on a flat window).
    * Where TA-Lib would divide by zero it returns 0: CCI, STOCH and WILLR when the window
      is flat (no range or no deviation); ROC when the value ``timeperiod`` bars back is 0;
      RSI only while average gain and loss are both exactly 0, i.e. when every change since
      the start was 0. A flat stretch after moves does not give 0: Wilder smoothing keeps
      the decaying average of the earlier moves (a flat top after a rise stays at 100).
    * Running sums (SMA, WMA, STDDEV) and monotonic queues (MAX, MIN, STOCH, WILLR,
      Donchian) cost O(bars) whatever the period. CCI's mean deviation is O(bars x period)
      as in TA-Lib, so its period is capped at 1,000.

Only the moving-average types SMA (``matype=0``) and EMA (``matype=1``) are supported.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np

from core.errors import ParameterError
from strategies import indicator_kernels as _k
from strategies.checks import finite_number

__all__ = [
    "adx",
    "atr",
    "bbands",
    "cci",
    "donchian",
    "ema",
    "highest",
    "lowest",
    "macd",
    "minus_di",
    "mom",
    "obv",
    "plus_di",
    "roc",
    "rsi",
    "sma",
    "stddev",
    "stoch",
    "trange",
    "willr",
    "wma",
]

Array = np.ndarray
T = TypeVar("T")
MATYPES = {0: "SMA", 1: "EMA"}
_MAX_PERIOD = 100_000
CCI_MAX_PERIOD = 1_000  # CCI is O(bars x period): ~0.1 s on 100k bars at this cap


def _period(name: str, value: object, minimum: int, maximum: int = _MAX_PERIOD) -> int:
    """Return ``value`` as an int period or raise ParameterError naming the parameter."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ParameterError(
            f"{name} must be an integer >= {minimum}, got {value!r}; pass a whole number of bars",
            field=name,
        )
    if not minimum <= int(value) <= maximum:
        raise ParameterError(
            f"{name} must be between {minimum} and {maximum}, got {value}", field=name
        )
    return int(value)


def _matype(name: str, value: object) -> int:
    """Return a supported TA-Lib moving-average type code (0=SMA, 1=EMA)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value not in MATYPES:
        raise ParameterError(
            f"{name} must be 0 (SMA) or 1 (EMA), got {value!r}; other TA-Lib MA types "
            "are not supported",
            field=name,
        )
    return int(value)


def _run(fn: Callable[..., Any], *inputs: Any) -> Any:
    """Call kernel ``fn`` on the inputs from their first all-finite-start bar and pad with NaN.

    Mirrors TA-Lib's wrapper: find the first index where no input is NaN (the last index if
    none), run on the rest, and put NaN in front of every output.
    """
    if len(inputs) == 1:  # the common case, without the general bookkeeping
        only = _floats(inputs[0], 0)
        if only.ndim == 1 and only.shape[0] and not np.isnan(only[0]):
            return fn(only)
    arrays = [_floats(a, i) for i, a in enumerate(inputs)]
    length = arrays[0].shape[0]
    for name_idx, a in enumerate(arrays):
        if a.ndim != 1 or a.shape[0] != length:
            raise ParameterError(
                f"input {name_idx} must be a 1-D array as long as the first input "
                f"({length}), got shape {a.shape}",
                field=f"input{name_idx}",
            )
    if length == 0:
        result = fn(*arrays)
        return result
    if not any(np.isnan(a[0]) for a in arrays):
        return fn(*arrays)  # the common case: nothing to skip, no O(n) scan
    bad = np.zeros(length, dtype=bool)
    for a in arrays:
        bad |= np.isnan(a)
    good = np.flatnonzero(~bad)
    beg = int(good[0]) if good.size else length - 1
    result = fn(*(a[beg:] for a in arrays))
    if beg == 0:
        return result
    if isinstance(result, tuple):
        return tuple(_pad(r, beg) for r in result)
    return _pad(result, beg)


def _floats(values: Any, position: int) -> Array:
    """Return ``values`` as a contiguous float64 array, or raise ParameterError naming it."""
    try:
        return np.ascontiguousarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ParameterError(
            f"input {position} must be an array of numbers, got {type(values).__name__} ({exc})",
            field=f"input{position}",
        ) from None


def _one(fn: Callable[..., Any], *inputs: Any) -> Array:
    """Run a single-output kernel through :func:`_run`."""
    result: Array = _run(fn, *inputs)
    return result


def _many(fn: Callable[..., T], *inputs: Any) -> T:
    """Run a multi-output kernel through :func:`_run` (a tuple of arrays)."""
    result: T = _run(fn, *inputs)
    return result


def _pad(values: Array, count: int) -> Array:
    """Prepend ``count`` NaNs to ``values``."""
    return np.concatenate([np.full(count, np.nan), values])


def _ma(x: Array, period: int, matype: int) -> Array:
    """TA_MA on a NaN-free array: period 1 copies, else SMA or seeded EMA."""
    if period == 1:
        return x.copy()
    if matype == 0:
        return _k.sma(x, period)
    return _k.ema_from(x, period, 2.0 / (period + 1), period - 1)


def _ma_after(x: Array, start: int, period: int, matype: int) -> Array:
    """Apply :func:`_ma` to ``x[start:]`` (its valid part) and keep the full length."""
    out = np.full(x.shape[0], np.nan)
    if start < x.shape[0]:
        out[start:] = _ma(x[start:], period, matype)
    return out


def sma(real: Array, timeperiod: int = 30) -> Array:
    """Return the simple moving average (TA-Lib SMA); first value at timeperiod-1."""
    n = _period("timeperiod", timeperiod, 2)
    return _one(lambda x: _k.sma(x, n), real)


def ema(real: Array, timeperiod: int = 30) -> Array:
    """Return the exponential moving average seeded with an SMA (TA-Lib EMA)."""
    n = _period("timeperiod", timeperiod, 2)
    return _one(lambda x: _k.ema_from(x, n, 2.0 / (n + 1), n - 1), real)


def wma(real: Array, timeperiod: int = 30) -> Array:
    """Return the linearly weighted moving average (TA-Lib WMA)."""
    n = _period("timeperiod", timeperiod, 2)
    return _one(lambda x: _k.wma(x, n), real)


def stddev(real: Array, timeperiod: int = 5, nbdev: float = 1.0) -> Array:
    """Return the population standard deviation times ``nbdev`` (TA-Lib STDDEV)."""
    n = _period("timeperiod", timeperiod, 2)
    k = finite_number(nbdev, "nbdev")
    return _one(lambda x: _k.stddev(x, n, k), real)


def rsi(real: Array, timeperiod: int = 14) -> Array:
    """Return Wilder's relative strength index, 0..100 (TA-Lib RSI); first value at n."""
    n = _period("timeperiod", timeperiod, 2)
    return _one(lambda x: _k.rsi(x, n), real)


def macd(
    real: Array, fastperiod: int = 12, slowperiod: int = 26, signalperiod: int = 9
) -> tuple[Array, Array, Array]:
    """Return (macd, signal, hist) like TA-Lib MACD; 33 leading NaNs for 12/26/9.

    As in TA-Lib, the periods are swapped when ``slowperiod < fastperiod``.
    """
    fast = _period("fastperiod", fastperiod, 2)
    slow = _period("slowperiod", slowperiod, 2)
    sig = _period("signalperiod", signalperiod, 1)
    if slow < fast:
        fast, slow = slow, fast

    def lines(x: Array) -> tuple[Array, Array, Array]:
        return _macd(x, fast, slow, sig)

    return _many(lines, real)


def _macd(x: Array, fast: int, slow: int, sig: int) -> tuple[Array, Array, Array]:
    """MACD on a NaN-free array; both EMAs start at the slow EMA's first bar."""
    start = slow - 1
    slow_ema = _k.ema_from(x, slow, 2.0 / (slow + 1), start)
    fast_ema = _k.ema_from(x, fast, 2.0 / (fast + 1), start)
    line = fast_ema - slow_ema
    signal = _ma_after(line, start, sig, 1)
    lookback = start + sig - 1
    line[: min(lookback, line.shape[0])] = np.nan
    return line, signal, line - signal


def bbands(
    real: Array,
    timeperiod: int = 20,
    nbdevup: float = 2.0,
    nbdevdn: float = 2.0,
    matype: int = 0,
) -> tuple[Array, Array, Array]:
    """Return Bollinger bands (upper, middle, lower) like TA-Lib BBANDS.

    The middle band is the SMA (``matype=0``) or EMA (``matype=1``); the width is the
    population standard deviation of the last ``timeperiod`` closes.
    """
    n = _period("timeperiod", timeperiod, 2)
    up = finite_number(nbdevup, "nbdevup")
    dn = finite_number(nbdevdn, "nbdevdn")
    ma_type = _matype("matype", matype)

    def bands(x: Array) -> tuple[Array, Array, Array]:
        middle = _ma(x, n, ma_type)
        dev = _k.stddev(x, n, 1.0)  # TA-Lib 0.8: STDDEV's own shifted sums, any matype
        return middle + dev * up, middle, middle - dev * dn

    return _many(bands, real)


def stoch(
    high: Array,
    low: Array,
    close: Array,
    fastk_period: int = 5,
    slowk_period: int = 3,
    slowk_matype: int = 0,
    slowd_period: int = 3,
    slowd_matype: int = 0,
) -> tuple[Array, Array]:
    """Return the slow stochastic (slowk, slowd) like TA-Lib STOCH; 8 NaNs for 5/3/3."""
    fk = _period("fastk_period", fastk_period, 1)
    sk = _period("slowk_period", slowk_period, 1)
    sd = _period("slowd_period", slowd_period, 1)
    sk_type = _matype("slowk_matype", slowk_matype)
    sd_type = _matype("slowd_matype", slowd_matype)

    def slow(h: Array, lo: Array, c: Array) -> tuple[Array, Array]:
        raw = _k.fast_k(h, lo, c, fk)
        slowk = _ma_after(raw, fk - 1, sk, sk_type)
        slowd = _ma_after(slowk, fk - 1 + sk - 1, sd, sd_type)
        slowk[: min(fk + sk + sd - 3, slowk.shape[0])] = np.nan
        return slowk, slowd

    return _many(slow, high, low, close)


def trange(high: Array, low: Array, close: Array) -> Array:
    """Return the true range (TA-Lib TRANGE); first value at index 1."""
    return _one(_k.trange, high, low, close)


def atr(high: Array, low: Array, close: Array, timeperiod: int = 14) -> Array:
    """Return Wilder's average true range (TA-Lib ATR); first value at index n."""
    n = _period("timeperiod", timeperiod, 1)
    return _one(lambda h, lo, c: _k.atr(h, lo, c, n), high, low, close)


def plus_di(high: Array, low: Array, close: Array, timeperiod: int = 14) -> Array:
    """Return the plus directional indicator (TA-Lib PLUS_DI); first value at index n."""
    n = _period("timeperiod", timeperiod, 2)

    def di(h: Array, lo: Array, c: Array) -> Array:
        pdm, _mdm, trs = _k.wilder_dm_tr(h, lo, c, n)
        return _k.directional_index(pdm, trs, n)

    return _one(di, high, low, close)


def minus_di(high: Array, low: Array, close: Array, timeperiod: int = 14) -> Array:
    """Return the minus directional indicator (TA-Lib MINUS_DI); first value at index n."""
    n = _period("timeperiod", timeperiod, 2)

    def di(h: Array, lo: Array, c: Array) -> Array:
        _pdm, mdm, trs = _k.wilder_dm_tr(h, lo, c, n)
        return _k.directional_index(mdm, trs, n)

    return _one(di, high, low, close)


def adx(high: Array, low: Array, close: Array, timeperiod: int = 14) -> Array:
    """Return Wilder's average directional index (TA-Lib ADX); first value at 2n-1."""
    n = _period("timeperiod", timeperiod, 2)
    return _one(lambda h, lo, c: _k.adx(h, lo, c, n), high, low, close)


def cci(high: Array, low: Array, close: Array, timeperiod: int = 14) -> Array:
    """Return the commodity channel index (TA-Lib CCI); first value at n-1.

    ``timeperiod`` is capped at :data:`CCI_MAX_PERIOD` (TA-Lib allows 100,000): the mean
    deviation costs O(bars x timeperiod).
    """
    n = _period("timeperiod", timeperiod, 2, CCI_MAX_PERIOD)
    return _one(lambda h, lo, c: _k.cci(h, lo, c, n), high, low, close)


def willr(high: Array, low: Array, close: Array, timeperiod: int = 14) -> Array:
    """Return Williams' %R, 0 to -100 (TA-Lib WILLR); first value at n-1."""
    n = _period("timeperiod", timeperiod, 2)
    return _one(lambda h, lo, c: _k.willr(h, lo, c, n), high, low, close)


def roc(real: Array, timeperiod: int = 10) -> Array:
    """Return the rate of change in percent, ``(x / x[-n] - 1) * 100`` (TA-Lib ROC)."""
    n = _period("timeperiod", timeperiod, 1)

    def rate(x: Array) -> Array:
        out = np.full(x.shape[0], np.nan)
        if x.shape[0] > n:
            prev = x[:-n]
            safe = np.where(prev != 0.0, prev, 1.0)
            out[n:] = np.where(prev != 0.0, ((x[n:] / safe) - 1.0) * 100.0, 0.0)
        return out

    return _one(rate, real)


def mom(real: Array, timeperiod: int = 10) -> Array:
    """Return the momentum ``x - x[-n]`` (TA-Lib MOM)."""
    n = _period("timeperiod", timeperiod, 1)

    def momentum(x: Array) -> Array:
        out = np.full(x.shape[0], np.nan)
        if x.shape[0] > n:
            out[n:] = x[n:] - x[:-n]
        return out

    return _one(momentum, real)


def obv(real: Array, volume: Array) -> Array:
    """Return on-balance volume (TA-Lib OBV), starting at the first bar's volume."""
    return _one(_k.obv, real, volume)


def highest(real: Array, timeperiod: int = 30) -> Array:
    """Return the highest value over the last ``timeperiod`` bars (TA-Lib MAX)."""
    n = _period("timeperiod", timeperiod, 2)
    return _one(lambda x: _k.rolling_max(x, n), real)


def lowest(real: Array, timeperiod: int = 30) -> Array:
    """Return the lowest value over the last ``timeperiod`` bars (TA-Lib MIN)."""
    n = _period("timeperiod", timeperiod, 2)
    return _one(lambda x: _k.rolling_min(x, n), real)


def donchian(high: Array, low: Array, timeperiod: int = 20) -> tuple[Array, Array]:
    """Return the Donchian channel (upper, lower): highest high and lowest low over n bars.

    Not in TA-Lib; the window includes the current bar, so compare a close with the channel
    of the previous bar to detect a breakout.
    """
    n = _period("timeperiod", timeperiod, 1)

    def channel(h: Array, lo: Array) -> tuple[Array, Array]:
        return _k.rolling_max(h, n), _k.rolling_min(lo, n)

    return _many(channel, high, low)
