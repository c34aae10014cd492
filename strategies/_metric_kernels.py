# mypy: allow-untyped-defs
"""Numba kernels behind :mod:`strategies.metrics`: every metric in one pass over plain arrays.

``summary`` fills a vector in the order of ``metrics.STAT_KEYS`` (the ``S_*`` indices below);
``batch_core`` reduces each row of an (m, n) equity matrix (one chunk of ``run_batch``'s
parameter sets) to the ``BATCH_SLOTS`` subset, in parallel over the rows. Both call the same
``simple_returns`` and ``core_metrics``, which is what keeps a batch row equal to its single
backtest.

Conventions are empyrical's (see :mod:`strategies.metrics`). Kernels compile with numpy's
error model: 0/0 is NaN and x/0 is inf, both mapped to NaN by the caller.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

# Positions in the output vector: the order of metrics.STAT_KEYS.
(
    S_RETURN,
    S_CAGR,
    S_VOL,
    S_SHARPE,
    S_SORTINO,
    S_CALMAR,
    S_OMEGA,
    S_MAX_DD,
    S_DD_BARS,
    S_DD_DAYS,
    S_ULCER,
    S_WIN_RATE,
    S_PROFIT_FACTOR,
    S_EXPECTANCY,
    S_SQN,
    S_AVG_WIN,
    S_AVG_LOSS,
    S_BEST,
    S_WORST,
    S_HOLDING,
    S_EXPOSURE,
    S_N_TRADES,
    S_KELLY,
    S_SKEW,
    S_KURTOSIS,
    S_TAIL,
    S_VAR,
    S_CVAR,
    S_ALPHA,
    S_BETA,
    S_PSR,
    S_STABILITY,
    S_FINAL,
) = range(33)
N_STATS = 33
NS_PER_DAY = 86_400.0e9

kernel = njit(cache=True, error_model="numpy")
# Columns of batch_core's matrix: the order of metrics.BATCH_KEYS.
BATCH_SLOTS = (S_RETURN, S_CAGR, S_VOL, S_SHARPE, S_SORTINO, S_MAX_DD, S_CALMAR)


@kernel
def simple_returns(eq):
    """Return ``eq[t] / eq[t-1] - 1`` for t >= 1, and 0 from zero to zero equity.

    A ruined account (the engine books equity 0 from the ruin bar on) has nothing left to
    gain or lose: its returns after the -100 % bar are 0, not 0/0.
    """
    n = eq.shape[0]
    r = np.empty(max(n - 1, 0))
    for t in range(1, n):
        if eq[t] == 0.0 and eq[t - 1] == 0.0:
            r[t - 1] = 0.0
        else:
            r[t - 1] = eq[t] / eq[t - 1] - 1.0
    return r


@kernel
def _mean_std(x):
    """Return the mean and the ddof=1 standard deviation (NaN with fewer than 2 values)."""
    m = x.shape[0]
    total = 0.0
    for v in x:
        total += v
    mean = total / m
    if m < 2:
        return mean, np.nan
    ss = 0.0
    for v in x:
        ss += (v - mean) * (v - mean)
    return mean, math.sqrt(ss / (m - 1))


@kernel
def core_metrics(r, ppy, rf, out):
    """Fill return, CAGR, volatility, Sharpe, Sortino, max drawdown and Calmar from ``r``.

    Returns the mean and the ddof=1 standard deviation of ``r`` (for ``distribution_metrics``).
    """
    m = r.shape[0]
    if m == 0:
        return np.nan, np.nan
    growth, peak, max_dd, down = 1.0, 1.0, 0.0, 0.0
    for t in range(m):
        growth *= 1.0 + r[t]
        if growth > peak:
            peak = growth
        elif growth < peak * (1.0 + max_dd):  # a deeper drawdown: only then divide
            dd = (growth - peak) / peak
            if dd < max_dd:
                max_dd = dd
        e = r[t] - rf
        if e < 0.0:
            down += e * e
    total = growth - 1.0
    cagr = (1.0 + total) ** (1.0 / (m / ppy)) - 1.0 if 1.0 + total > 0 else -1.0
    mean, std = _mean_std(r)
    if rf == 0.0:
        ex_mean, ex_std = mean, std
    else:
        ex_mean, ex_std = _mean_std(r - rf)
    out[S_RETURN] = total * 100.0
    out[S_CAGR] = cagr * 100.0
    out[S_VOL] = std * math.sqrt(ppy) * 100.0
    out[S_SHARPE] = ex_mean / ex_std * math.sqrt(ppy)
    out[S_SORTINO] = ex_mean * ppy / (math.sqrt(down / m) * math.sqrt(ppy))
    out[S_MAX_DD] = max_dd * 100.0
    out[S_CALMAR] = cagr / abs(max_dd) if max_dd < 0 else np.nan
    return mean, std


@kernel
def _ranked(values, rank):
    """Return the ``rank``-th and next smallest of ``values`` and the array partitioned there.

    A partition around the rank is enough (several times faster than sorting): the values
    before the rank are the smaller ones, the next rank is the minimum of those after it
    (NaN when ``rank`` is the last).
    """
    part = np.partition(values, rank)
    after = np.min(part[rank + 1 :]) if rank + 1 < values.shape[0] else np.nan
    return part[rank], after, part


@kernel
def _tails(r, q):
    """Return numpy's linear percentiles ``q`` and ``1 - q`` of ``r`` and the CVaR.

    The CVaR is the mean of the ``int((m-1)*q) + 1`` smallest returns. When the low ranks
    all fall among the negative returns, only those are partitioned, and likewise the high
    ranks among the positive ones: flat bars (zero returns) are never touched twice.
    """
    m = r.shape[0]
    h_lo, h_hi = (m - 1) * q, (m - 1) * (1.0 - q)
    k_lo, k_hi = math.floor(h_lo), math.floor(h_hi)
    neg, pos = np.empty(m), np.empty(m)
    n_neg, n_pos, n_nan = 0, 0, 0
    for v in r:
        if v < 0.0:
            neg[n_neg] = v
            n_neg += 1
        elif v > 0.0:
            pos[n_pos] = v
            n_pos += 1
        elif v != v:
            n_nan += 1
    low_pool = neg[:n_neg] if n_nan == 0 and n_neg >= k_lo + 2 else r
    a, b, part = _ranked(low_pool, k_lo)
    low = a if k_lo + 1 >= m else a + (b - a) * (h_lo - k_lo)
    cvar = np.mean(part[: k_lo + 1])
    skip = m - n_pos  # the non-positive returns come before every positive one
    if n_nan == 0 and k_hi - skip >= 0:
        a, b, _ = _ranked(pos[:n_pos], k_hi - skip)
    else:
        a, b, _ = _ranked(r, k_hi)
    high = a if k_hi + 1 >= m else a + (b - a) * (h_hi - k_hi)
    return low, high, cvar


@kernel
def distribution_metrics(r, rf, mean, std, out):
    """Fill Omega, the tail ratio, VaR/CVaR, skew, kurtosis, PSR and stability.

    ``mean`` and ``std`` are those ``core_metrics`` returned for ``r``.
    """
    m = r.shape[0]
    if m == 0:
        return
    gains, losses = 0.0, 0.0
    for v in r:
        e = v - rf
        if e > 0:
            gains += e
        elif e < 0:
            losses -= e
    out[S_OMEGA] = gains / losses if losses > 0 else np.nan
    low, high, cvar = _tails(r, 0.05)
    out[S_TAIL] = abs(high) / abs(low) if abs(low) > 0 else np.nan
    out[S_VAR] = low
    out[S_CVAR] = cvar
    _moments(r, mean, std, out)
    out[S_STABILITY] = _stability(r)


@kernel
def _moments(r, mean, std, out):
    """Skew, excess kurtosis (population moments) and the probabilistic Sharpe ratio."""
    m = r.shape[0]
    if m < 3:
        return
    m2, m3, m4 = 0.0, 0.0, 0.0
    for v in r:
        d = v - mean
        m2 += d * d
        m3 += d * d * d
        m4 += d * d * d * d
    m2, m3, m4 = m2 / m, m3 / m, m4 / m
    if m2 <= 0:
        return
    skew = m3 / m2**1.5
    kurt = m4 / (m2 * m2)
    sr = mean / std
    out[S_SKEW] = skew
    out[S_KURTOSIS] = kurt - 3.0
    denom = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr * sr
    if denom > 0:
        z = sr * math.sqrt(m - 1) / math.sqrt(denom)
        out[S_PSR] = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))


@kernel
def _stability(r):
    """R² of the least-squares line through cumulative log returns."""
    m = r.shape[0]
    if m < 2:
        return np.nan
    y = np.empty(m)
    acc = 0.0
    for t in range(m):
        v = r[t]
        if v != 0.0:  # flat bars (no position) add log1p(0) = 0: skip the logarithm
            if v <= -1.0:
                return np.nan
            acc += math.log1p(v)
        y[t] = acc
    xbar, ybar = (m - 1) / 2.0, np.mean(y)
    sxx, syy, sxy = 0.0, 0.0, 0.0
    for t in range(m):
        dx, dy = t - xbar, y[t] - ybar
        sxx += dx * dx
        syy += dy * dy
        sxy += dx * dy
    if sxx == 0 or syy == 0:
        return np.nan
    return sxy * sxy / (sxx * syy)


@kernel
def drawdown_metrics(eq, stamps, out):
    """Fill the longest stretch under water (bars; days when ``stamps`` are ns) and ulcer."""
    n = eq.shape[0]
    if n < 2:
        return
    peak, sq, longest, start, best_start, best_end = eq[0], 0.0, 0, -1, 0, 0
    for i in range(n):
        if eq[i] > peak:
            peak = eq[i]
        dd = eq[i] / peak - 1.0
        sq += (dd * 100.0) * (dd * 100.0)
        under = dd < 0
        if under and start < 0:
            start = i - 1
        if start >= 0 and (not under or i == n - 1):
            if i - start > longest:
                longest, best_start, best_end = i - start, start, i
            if not under:
                start = -1
    out[S_DD_BARS] = longest
    if stamps.shape[0] == n:
        out[S_DD_DAYS] = (stamps[best_end] - stamps[best_start]) / NS_PER_DAY if longest else 0.0
    out[S_ULCER] = math.sqrt(sq / n)


@kernel
def alpha_beta(r, bench, ppy, rf, out):
    """Fill alpha (annualised by compounding) and beta against the benchmark's returns.

    Bars where either return is NaN are left out (loops: no masked copies).
    """
    count, x_sum, y_sum = 0, 0.0, 0.0
    y = np.empty(r.shape[0])
    for t in range(r.shape[0]):
        y[t] = bench[t + 1] / bench[t] - 1.0
        if not (np.isnan(r[t]) or np.isnan(y[t])):
            count += 1
            x_sum += r[t] - rf
            y_sum += y[t] - rf
    if count < 2:
        return
    ybar = y_sum / count
    var, cov = 0.0, 0.0
    for t in range(r.shape[0]):
        if not (np.isnan(r[t]) or np.isnan(y[t])):
            dev = (y[t] - rf) - ybar
            var += dev * dev
            cov += dev * (r[t] - rf)
    var /= count
    if var < 1e-30:
        return
    beta = cov / count / var
    out[S_BETA] = beta
    out[S_ALPHA] = ((x_sum - beta * y_sum) / count + 1.0) ** ppy - 1.0


@kernel
def trade_metrics(pnl, ret, held, out):
    """Fill the trade metrics from closed trades' pnl, return_pct and bars held."""
    n = pnl.shape[0]
    out[S_N_TRADES] = n
    if n == 0:
        return
    n_win, n_loss, g_win, g_loss, r_win, r_loss = 0, 0, 0.0, 0.0, 0.0, 0.0
    for i in range(n):
        if pnl[i] > 0:
            n_win += 1
            g_win += pnl[i]
            r_win += ret[i]
        elif pnl[i] < 0:
            n_loss += 1
            g_loss -= pnl[i]
            r_loss += ret[i]
    win_rate = n_win / n
    out[S_WIN_RATE] = win_rate * 100.0
    out[S_PROFIT_FACTOR] = g_win / g_loss if g_loss > 0 else np.nan
    out[S_EXPECTANCY] = np.mean(ret)
    out[S_AVG_WIN] = r_win / n_win if n_win else np.nan
    out[S_AVG_LOSS] = r_loss / n_loss if n_loss else np.nan
    out[S_BEST] = np.max(ret)
    out[S_WORST] = np.min(ret)
    out[S_HOLDING] = np.mean(held) if held.shape[0] == n else np.nan
    mean, std = _mean_std(pnl)
    if n > 1 and std > 0:
        out[S_SQN] = math.sqrt(n) * mean / std
    if n_win and n_loss:
        payoff = (g_win / n_win) / (g_loss / n_loss)
        out[S_KELLY] = win_rate - (1.0 - win_rate) / payoff


@kernel
def summary(eq, stamps, bench, pos, pnl, ret, held, ppy, rf):
    """Return every metric in ``STAT_KEYS`` order (NaN where undefined, inf not mapped).

    Args:
        eq: equity per bar, NaN-free.
        stamps: bar times as int64 nanoseconds (empty: no ``max_drawdown_days``).
        bench: benchmark values on the same bars (empty: no alpha/beta).
        pos: one position per bar, non-zero when exposed (a portfolio's (n, k) positions
            reduced to any-non-zero per bar by the caller; empty: exposure left NaN).
        pnl, ret: closed trades' pnl and return_pct (empty: no trades).
        held: bars each trade was held (empty when unknown).
        ppy: bars per year; rf: risk-free return per bar.
    """
    out = np.full(N_STATS, np.nan)
    out[S_N_TRADES] = 0.0
    n = eq.shape[0]
    if n:
        out[S_FINAL] = eq[n - 1]
    r = simple_returns(eq)
    mean, std = core_metrics(r, ppy, rf, out)
    distribution_metrics(r, rf, mean, std, out)
    drawdown_metrics(eq, stamps, out)
    if bench.shape[0] == n and r.shape[0] > 1:
        alpha_beta(r, bench, ppy, rf, out)
    trade_metrics(pnl, ret, held, out)
    if pos.shape[0]:
        exposed = 0
        for v in pos:
            if v != 0 and not np.isnan(v):
                exposed += 1
        out[S_EXPOSURE] = exposed / pos.shape[0] * 100.0
    return out


@njit(cache=True, error_model="numpy", parallel=True)
def batch_core(equity, ppy):
    """Return the ``BATCH_SLOTS`` metrics of each row of ``equity`` (m, n) as (m, 7).

    The same ``core_metrics`` as ``summary``, so a batch row equals its single backtest.
    """
    m = equity.shape[0]
    stats = np.empty((m, len(BATCH_SLOTS)))
    for col in prange(m):
        out = np.full(N_STATS, np.nan)
        core_metrics(simple_returns(equity[col]), ppy, 0.0, out)
        for i in range(len(BATCH_SLOTS)):
            stats[col, i] = out[BATCH_SLOTS[i]]
    return stats
