"""Numba kernels behind :mod:`strategies.indicators`.

Each kernel takes float64 arrays that start at the first bar where every input is a number
(the public wrappers strip leading NaNs the way TA-Lib's Python wrapper does) and returns
arrays of the same length with NaN through the warm-up. The loops follow TA-Lib's C code:
same seeding, same Wilder smoothing, same zero tests, so the outputs agree with TA-Lib to
rounding error. Nothing here validates arguments; the wrappers do.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# TA-Lib treats |v| < TA_EPSILON as zero (ta_utility.h, TA-Lib >= 0.6).
EPSILON = 1e-14


@njit(cache=True)
def is_zero(value: float) -> bool:
    """Return TA-Lib's TA_IS_ZERO(value)."""
    return -EPSILON < value < EPSILON


@njit(cache=True)
def is_zero_scaled(value: float, scale: float) -> bool:
    """Return TA-Lib's TA_IS_ZERO_SCALED: zero within EPSILON of the operands' magnitude."""
    return abs(value) <= EPSILON * scale


@njit(cache=True)
def sma(x: np.ndarray, n: int) -> np.ndarray:
    """Simple moving average with a running sum (TA_INT_SMA); first value at n-1."""
    m = x.shape[0]
    out = np.full(m, np.nan)
    if m < n:
        return out
    total = 0.0
    for i in range(n - 1):
        total += x[i]
    for i in range(n - 1, m):
        total += x[i]
        out[i] = total / n
        total -= x[i - n + 1]
    return out


@njit(cache=True)
def ema_from(x: np.ndarray, n: int, k: float, start: int) -> np.ndarray:
    """EMA whose first value sits at ``start``, seeded with the mean of the n bars ending there.

    TA-Lib's TA_INT_EMA seeds at ``startIdx - lookback``, which is why MACD's fast EMA (aligned
    to the slow one) differs from a stand-alone EMA of the same period.
    """
    m = x.shape[0]
    out = np.full(m, np.nan)
    if start >= m or start < n - 1:
        return out
    total = 0.0
    for i in range(start - n + 1, start + 1):
        total += x[i]
    prev = total / n
    out[start] = prev
    for i in range(start + 1, m):
        prev = ((x[i] - prev) * k) + prev
        out[i] = prev
    return out


@njit(cache=True)
def wma(x: np.ndarray, n: int) -> np.ndarray:
    """Linearly weighted moving average, weights 1..n (newest heaviest); O(bars).

    TA-Lib 0.8's TA_WMA: running sums (``period_sum`` gains ``n * x[i]`` and loses the plain
    window sum ``period_sub`` each bar), rebuilt from the window every ``8 n`` bars so the
    rounding residue cannot grow with the length of the input. Same order of operations, so
    the output is bit-identical to TA-Lib's.
    """
    m = x.shape[0]
    out = np.full(m, np.nan)
    if m < n:
        return out
    divider = n * (n + 1) / 2.0
    period_sum = 0.0
    period_sub = 0.0
    for i in range(n - 1):
        period_sub += x[i]
        period_sum += x[i] * (i + 1)
    until_reseed = 8 * n
    trailing = 0.0
    for i in range(n - 1, m):
        value = x[i]
        period_sub += value
        period_sub -= trailing
        period_sum += value * n
        until_reseed -= 1
        if until_reseed <= 0:
            until_reseed = 8 * n
            period_sub = 0.0
            period_sum = 0.0
            weight = 1
            for j in range(i - n + 1, i + 1):
                period_sub += x[j]
                period_sum += x[j] * weight
                weight += 1
        trailing = x[i - n + 1]
        out[i] = period_sum / divider
        period_sum -= period_sub
    return out


@njit(cache=True)
def variance(x: np.ndarray, n: int) -> np.ndarray:
    """Population variance over n bars (TA-Lib 0.8's TA_VAR); O(bars), bit-identical.

    Running sums of ``x - shift`` and its square, with the shift near the window so the
    subtraction ``E[d²] - E[d]²`` does not cancel; the shift moves to the window mean (and the
    sums are rebuilt) when the variance falls below 1e-6 of E[d²], when a value leaving the
    window dwarfs the rest, and at least every ``32 n`` bars. A rebuilt variance below 1e-12
    of E[d²] (no spread beyond the mean's own rounding) is 0, so the result is never negative.
    """
    m = x.shape[0]
    out = np.full(m, np.nan)
    if m < n:
        return out
    inv = 1.0 / n
    shift = x[0]
    total1 = 0.0
    total2 = 0.0
    for j in range(n - 1):
        d = x[j] - shift
        total1 += d
        total2 += d * d
    until_reseed = 32 * n
    for i in range(n - 1, m):
        d = x[i] - shift
        total1 += d
        total2 += d * d
        mean1 = total1 * inv
        var = total2 * inv - mean1 * mean1
        d = x[i - n + 1] - shift
        total1 -= d
        leaving = d * d
        total2 -= leaving
        until_reseed -= 1
        if var < 1e-6 * (total2 * inv) or leaving > 1e6 * total2 or until_reseed <= 0:
            until_reseed = 32 * n
            start = i - n + 1
            acc = 0.0
            for j in range(start, i + 1):
                acc += x[j]
            shift = acc * inv
            total1 = 0.0
            total2 = 0.0
            for j in range(start, i + 1):
                d = x[j] - shift
                total1 += d
                total2 += d * d
            mean1 = total1 * inv
            var = total2 * inv - mean1 * mean1
            if var < 1e-12 * (total2 * inv):
                var = 0.0
            d = x[start] - shift
            total1 -= d
            total2 -= d * d
        out[i] = var
    return out


@njit(cache=True)
def stddev(x: np.ndarray, n: int, nbdev: float) -> np.ndarray:
    """Population standard deviation over n bars times nbdev (TA-Lib 0.8's TA_STDDEV); O(bars).

    The square root of :func:`variance` (which is already 0 on a flat window), unscaled
    otherwise: TA-Lib 0.8 no longer zeroes variances under a fixed epsilon.
    """
    var = variance(x, n)
    out = np.full(x.shape[0], np.nan)
    for i in range(n - 1, x.shape[0]):
        v = var[i]
        out[i] = np.sqrt(v) * nbdev if not v < 0.0 else 0.0
    return out


@njit(cache=True)
def rsi(x: np.ndarray, n: int) -> np.ndarray:
    """Wilder RSI; first value at index n (TA-Lib, unstable period 0).

    TA-Lib 0.8 returns 0 only when average gain and loss are both exactly zero: a long flat
    stretch after a rise stays at 100 while the decayed gain is still positive.
    """
    m = x.shape[0]
    out = np.full(m, np.nan)
    if m <= n:
        return out
    gain = 0.0
    loss = 0.0
    for i in range(1, n + 1):
        d = x[i] - x[i - 1]
        if d < 0:
            loss -= d
        else:
            gain += d
    gain /= n
    loss /= n
    total = gain + loss
    out[n] = 100.0 * (gain / total) if total != 0.0 else 0.0
    for i in range(n + 1, m):
        d = x[i] - x[i - 1]
        loss *= n - 1
        gain *= n - 1
        if d < 0:
            loss -= d
        else:
            gain += d
        loss /= n
        gain /= n
        total = gain + loss
        out[i] = 100.0 * (gain / total) if total != 0.0 else 0.0
    return out


@njit(cache=True)
def trange(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """True range; first value at index 1."""
    m = high.shape[0]
    out = np.full(m, np.nan)
    for i in range(1, m):
        greatest = high[i] - low[i]
        v = abs(close[i - 1] - high[i])
        if v > greatest:
            greatest = v
        v = abs(close[i - 1] - low[i])
        if v > greatest:
            greatest = v
        out[i] = greatest
    return out


@njit(cache=True)
def atr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """Wilder ATR; first value at index n is the mean true range of bars 1..n."""
    tr = trange(high, low, close)
    m = high.shape[0]
    if n == 1:
        return tr
    out = np.full(m, np.nan)
    if m <= n:
        return out
    total = 0.0
    for i in range(1, n + 1):
        total += tr[i]
    prev = total / n
    out[n] = prev
    for i in range(n + 1, m):
        prev *= n - 1
        prev += tr[i]
        prev /= n
        out[i] = prev
    return out


@njit(cache=True)
def wilder_dm_tr(
    high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Wilder-smoothed +DM, -DM and true range, valid from index n (TA-Lib's ADX family)."""
    m = high.shape[0]
    pdm = np.full(m, np.nan)
    mdm = np.full(m, np.nan)
    trs = np.full(m, np.nan)
    p = 0.0
    q = 0.0
    t = 0.0
    for i in range(1, m):
        diff_p = high[i] - high[i - 1]
        diff_m = low[i - 1] - low[i]
        tr = high[i] - low[i]
        v = abs(high[i] - close[i - 1])
        if v > tr:
            tr = v
        v = abs(low[i] - close[i - 1])
        if v > tr:
            tr = v
        if i >= n:
            p -= p / n
            q -= q / n
            t = t - (t / n) + tr
        else:
            t += tr
        if diff_m > 0 and diff_p < diff_m:
            q += diff_m
        elif diff_p > 0 and diff_p > diff_m:
            p += diff_p
        if i >= n:
            pdm[i] = p
            mdm[i] = q
            trs[i] = t
    return pdm, mdm, trs


@njit(cache=True)
def directional_index(dm: np.ndarray, trs: np.ndarray, n: int) -> np.ndarray:
    """+DI or -DI from smoothed DM and TR; 0 where the true range is zero."""
    m = dm.shape[0]
    out = np.full(m, np.nan)
    for i in range(n, m):
        out[i] = 100.0 * (dm[i] / trs[i]) if not is_zero(trs[i]) else 0.0
    return out


@njit(cache=True)
def adx(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """Wilder ADX; first value at index 2n-1 is the mean DX of bars n..2n-1."""
    m = high.shape[0]
    out = np.full(m, np.nan)
    if m <= 2 * n - 1:
        return out
    pdm, mdm, trs = wilder_dm_tr(high, low, close, n)
    sum_dx = 0.0
    prev = 0.0
    for i in range(n, m):
        dx = np.nan
        if not is_zero(trs[i]):
            minus_di = 100.0 * (mdm[i] / trs[i])
            plus_di = 100.0 * (pdm[i] / trs[i])
            total = minus_di + plus_di
            if not is_zero(total):
                dx = 100.0 * (abs(minus_di - plus_di) / total)
        if i < 2 * n - 1:
            if dx == dx:
                sum_dx += dx
            continue
        if i == 2 * n - 1:
            if dx == dx:
                sum_dx += dx
            prev = sum_dx / n
        elif dx == dx:
            prev = ((prev * (n - 1)) + dx) / n
        out[i] = prev
    return out


@njit(cache=True)
def cci(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """Commodity Channel Index with TA-Lib's 0.015 constant and mean absolute deviation.

    O(bars x n), as in TA-Lib: the mean deviation about each window's own mean has no
    running form that keeps TA-Lib's rounding, so the wrapper caps n instead.
    """
    m = high.shape[0]
    out = np.full(m, np.nan)
    if m < n:
        return out
    tp = (high + low + close) / 3.0
    for i in range(n - 1, m):
        # Sum in TA-Lib's circular-buffer order (slot j holds the latest bar with index % n
        # == j) so near-zero deviations round the same way: slots 0..i%n hold bars
        # base..i, then slots i%n+1..n-1 hold bars i-n+1..base-1.
        base = i - i % n
        total = 0.0
        for j in range(base, i + 1):
            total += tp[j]
        for j in range(i - n + 1, base):
            total += tp[j]
        mean = total / n
        dev = 0.0
        for j in range(base, i + 1):
            dev += abs(tp[j] - mean)
        for j in range(i - n + 1, base):
            dev += abs(tp[j] - mean)
        diff = tp[i] - mean
        if not is_zero_scaled(diff, abs(tp[i]) + abs(mean)) and not is_zero(dev):
            out[i] = diff / (0.015 * (dev / n))
        else:
            out[i] = 0.0
    return out


@njit(cache=True, inline="always")
def _better(a: float, b: float, highest: bool) -> bool:
    return a > b if highest else a < b


@njit(cache=True)
def _rolling_extreme(x: np.ndarray, n: int, highest: bool) -> np.ndarray:
    """Highest (or, with ``highest`` False, lowest) value over the last n bars.

    O(bars) whatever ``n``, with no data-dependent inner loop (van Herk / Gil-Werman, block
    by block): a window ending in block B is the part of block B-1 from its start (the
    backward running extreme of B-1) plus the part of B up to it (B's forward running one).
    Only two buffers of ``n`` values: no bar-length temporaries to allocate and fault in.
    """
    m = x.shape[0]
    out = np.empty(m)
    out[: min(n - 1, m)] = np.nan
    if n > m:
        return out
    prev = np.empty(n)  # backward running extreme of the previous block
    cur = np.empty(n)
    for s in range(0, m, n):
        stop = min(s + n, m)
        run = x[s]
        for i in range(s, stop):
            v = x[i]
            run = v if _better(v, run, highest) else run
            if i >= n - 1:
                j = i - s + 1  # where the window starts in the previous block
                if j >= n:
                    out[i] = run  # the window is this whole block
                else:
                    a = prev[j]
                    out[i] = a if _better(a, run, highest) else run
        size = stop - s
        cur[size - 1] = x[stop - 1]
        for t in range(size - 2, -1, -1):
            v = x[s + t]
            cur[t] = v if _better(v, cur[t + 1], highest) else cur[t + 1]
        prev, cur = cur, prev
    return out


@njit(cache=True)
def rolling_max(x: np.ndarray, n: int) -> np.ndarray:
    """Highest value over the last n bars; first value at n-1."""
    return _rolling_extreme(x, n, True)


@njit(cache=True)
def rolling_min(x: np.ndarray, n: int) -> np.ndarray:
    """Lowest value over the last n bars; first value at n-1."""
    return _rolling_extreme(x, n, False)


@njit(cache=True)
def fast_k(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """Raw stochastic %K over n bars; 0 where the range is flat."""
    hh = rolling_max(high, n)
    ll = rolling_min(low, n)
    m = high.shape[0]
    out = np.full(m, np.nan)
    for i in range(n - 1, m):
        diff = (hh[i] - ll[i]) / 100.0
        out[i] = (close[i] - ll[i]) / diff if diff != 0.0 else 0.0
    return out


@njit(cache=True)
def willr(high: np.ndarray, low: np.ndarray, close: np.ndarray, n: int) -> np.ndarray:
    """Williams %R over n bars (0 to -100); 0 where the range is flat."""
    hh = rolling_max(high, n)
    ll = rolling_min(low, n)
    m = high.shape[0]
    out = np.full(m, np.nan)
    for i in range(n - 1, m):
        diff = (hh[i] - ll[i]) / -100.0
        out[i] = (hh[i] - close[i]) / diff if diff != 0.0 else 0.0
    return out


@njit(cache=True)
def obv(close: np.ndarray, volume: np.ndarray) -> np.ndarray:
    """On-balance volume starting from the first bar's volume."""
    m = close.shape[0]
    out = np.full(m, np.nan)
    if m == 0:
        return out
    acc = volume[0]
    prev = close[0]
    for i in range(m):
        if close[i] > prev:
            acc += volume[i]
        elif close[i] < prev:
            acc -= volume[i]
        out[i] = acc
        prev = close[i]
    return out
