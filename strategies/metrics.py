"""Performance metrics of a backtest, with empyrical's conventions, and a batch version.

Returns are simple per-bar returns of the equity curve, ``r[t] = equity[t] / equity[t-1] - 1``
(the first bar has none). ``P = periods_per_year`` annualises. Every value is a float and
NaN where it is undefined (too few bars, no trades, no losing trade, ...): JSON-safe, never
raises on empty input. Conventions (identical to empyrical-reloaded):

* ``sharpe`` = mean(r - rf) / std(r - rf, ddof=1) * sqrt(P).
* ``sortino`` = mean(r - rf) * P / (sqrt(mean(min(r - rf, 0)²)) * sqrt(P)).
* ``cagr_pct`` = 100 * ((1 + total)^(1 / years) - 1), years = len(r) / P.
* ``volatility_pct`` = 100 * std(r, ddof=1) * sqrt(P).
* ``max_drawdown_pct`` = 100 * min(equity / running peak - 1): negative, e.g. -23.4.
* ``calmar`` = (cagr_pct / 100) / |max drawdown|; NaN without a drawdown.
* ``omega`` = sum of gains over sum of losses of r - rf (threshold 0).
* ``tail_ratio`` = |95th percentile| / |5th percentile| of r.
* ``var_95`` = 5th percentile of r; ``cvar_95`` = mean of the worst int((n-1)*0.05)+1 returns.
* ``alpha`` (annualised by compounding, (1 + mean(r - beta * rb))^P - 1) and ``beta`` =
  cov(r, rb) / var(rb) against the benchmark's per-bar returns rb.
* ``stability`` = R² of a linear fit of cumulative log returns against time.

``risk_free`` is a per-period rate (as in empyrical). Metric keys of :func:`compute_stats`
are listed in :data:`STAT_KEYS`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["BATCH_KEYS", "STAT_KEYS", "batch_stats", "compute_stats"]

STAT_KEYS = [
    "return_pct",
    "cagr_pct",
    "volatility_pct",
    "sharpe",
    "sortino",
    "calmar",
    "omega",
    "max_drawdown_pct",
    "max_drawdown_duration",
    "max_drawdown_days",
    "ulcer_index",
    "win_rate_pct",
    "profit_factor",
    "expectancy",
    "sqn",
    "avg_win_pct",
    "avg_loss_pct",
    "best_trade_pct",
    "worst_trade_pct",
    "avg_holding_bars",
    "exposure_pct",
    "n_trades",
    "kelly",
    "skew",
    "kurtosis",
    "tail_ratio",
    "var_95",
    "cvar_95",
    "alpha",
    "beta",
    "psr",
    "stability",
    "final_equity",
]
BATCH_KEYS = (
    "return_pct",
    "cagr_pct",
    "volatility_pct",
    "sharpe",
    "sortino",
    "max_drawdown_pct",
    "calmar",
)
NAN = float("nan")


def _f(value: Any) -> float:
    """Return a plain float, with NaN for infinities (JSON has neither)."""
    out = float(value)
    return out if math.isfinite(out) else NAN


def batch_stats(returns_2d: np.ndarray, periods_per_year: float = 252) -> dict[str, np.ndarray]:
    """Compute the core metrics of many return series at once (the optimizer hot path).

    Args:
        returns_2d: Per-bar simple returns, shape ``(n_bars, n_sets)``; one column per
            parameter set. A 1-D array is treated as one column.
        periods_per_year: Bars per year used to annualise.

    Returns:
        ``return_pct cagr_pct volatility_pct sharpe sortino max_drawdown_pct calmar``, each
        an array of ``n_sets`` floats equal to :func:`compute_stats` on each column (NaN
        where undefined).
    """
    r = np.asarray(returns_2d, dtype=np.float64)
    if r.ndim == 1:
        r = r[:, None]
    n, sets = r.shape
    nan = np.full(sets, np.nan)
    if n == 0:
        return {key: nan.copy() for key in BATCH_KEYS}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        growth = np.cumprod(1.0 + r, axis=0)
        total = growth[-1] - 1.0
        years = n / periods_per_year
        cagr = np.where(1.0 + total > 0, (1.0 + total) ** (1.0 / years) - 1.0, -1.0)
        mean = r.mean(axis=0)
        std = r.std(axis=0, ddof=1) if n > 1 else nan
        sharpe = mean / std * np.sqrt(periods_per_year)
        downside = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2, axis=0)) * np.sqrt(periods_per_year)
        sortino = mean * periods_per_year / downside
        curve = np.vstack([np.ones((1, sets)), growth])
        peak = np.maximum.accumulate(curve, axis=0)
        max_dd = np.min((curve - peak) / peak, axis=0)
        calmar = np.where(max_dd < 0, cagr / np.abs(max_dd), np.nan)
        out = {
            "return_pct": total * 100.0,
            "cagr_pct": cagr * 100.0,
            "volatility_pct": std * np.sqrt(periods_per_year) * 100.0,
            "sharpe": sharpe,
            "sortino": sortino,
            "max_drawdown_pct": max_dd * 100.0,
            "calmar": calmar,
        }
    return {k: np.where(np.isfinite(v), v, np.nan) for k, v in out.items()}


def compute_stats(
    equity: pd.Series,
    *,
    trades: pd.DataFrame | None = None,
    positions: pd.Series | np.ndarray | None = None,
    benchmark: pd.Series | None = None,
    periods_per_year: float = 252,
    risk_free: float = 0.0,
) -> dict[str, float]:
    """Compute every metric of a backtest from its equity curve and trades.

    Args:
        equity: Account value per bar, indexed by UTC timestamps.
        trades: Closed trades with columns ``symbol side size entry_time entry_price
            exit_time exit_price pnl return_pct commission`` (``return_pct`` in percent).
        positions: Position size per bar (any sign); non-zero bars count as exposed.
            Without it, exposure is taken from the trades' entry/exit times.
        benchmark: Buy-and-hold prices or equity on the same bars, for alpha and beta.
        periods_per_year: Bars per year used to annualise (252 for daily bars).
        risk_free: Risk-free return per bar, subtracted in Sharpe, Sortino, Omega, alpha.

    Returns:
        A dict of floats, NaN where undefined, with these keys:

        * ``return_pct``: total return in percent.
        * ``cagr_pct``: compound annual growth rate in percent.
        * ``volatility_pct``: annualised standard deviation of returns in percent.
        * ``sharpe``, ``sortino``, ``calmar``, ``omega``: risk-adjusted ratios (see module).
        * ``max_drawdown_pct``: deepest fall from a running peak in percent (negative).
        * ``max_drawdown_duration``: longest stretch under water in bars (peak to recovery,
          or to the last bar if not recovered); ``max_drawdown_days`` the same in days.
        * ``ulcer_index``: root mean square of the percent drawdown.
        * ``win_rate_pct``: percent of trades with positive pnl.
        * ``profit_factor``: gross profit / gross loss (NaN without a losing trade).
        * ``expectancy``: mean trade return in percent.
        * ``sqn``: sqrt(n_trades) * mean(pnl) / std(pnl, ddof=1) (Van Tharp).
        * ``avg_win_pct``, ``avg_loss_pct``: mean return_pct of winners / losers.
        * ``best_trade_pct``, ``worst_trade_pct``: max / min trade return_pct.
        * ``avg_holding_bars``: mean bars between entry and exit.
        * ``exposure_pct``: percent of bars holding a position.
        * ``n_trades``: number of closed trades.
        * ``kelly``: win_rate - (1 - win_rate) / (avg winning pnl / avg losing pnl).
        * ``skew``, ``kurtosis``: of per-bar returns, population moments (excess kurtosis).
        * ``tail_ratio``, ``var_95``, ``cvar_95``: tail measures of per-bar returns
          (VaR/CVaR as returns, so losses are negative).
        * ``alpha``, ``beta``: against the benchmark (NaN without one).
        * ``psr``: probabilistic Sharpe ratio, P(true per-bar Sharpe > 0), in 0..1.
        * ``stability``: R² of cumulative log returns against time.
        * ``final_equity``: last equity value.
    """
    stats = dict.fromkeys(STAT_KEYS, NAN)
    eq = pd.Series(equity, dtype=np.float64).dropna()
    stats["n_trades"] = 0.0
    if len(eq):
        stats["final_equity"] = _f(eq.iloc[-1])
    r = (eq / eq.shift(1) - 1.0).to_numpy()[1:]
    stats.update(_return_stats(r, periods_per_year, risk_free))
    stats.update(_drawdown_stats(eq))
    stats["calmar"] = _calmar(stats["cagr_pct"], stats["max_drawdown_pct"])
    if benchmark is not None and len(r) > 1:
        stats.update(_alpha_beta(eq, benchmark, periods_per_year, risk_free))
    if trades is not None and len(trades):
        stats.update(_trade_stats(trades, eq.index))
    stats["exposure_pct"] = _exposure(positions, trades, eq.index)
    return {k: _f(v) for k, v in stats.items()}


def _return_stats(r: np.ndarray, ppy: float, rf: float) -> dict[str, float]:
    """Return-based metrics of per-bar returns ``r`` (all NaN when there are none)."""
    out: dict[str, float] = {}
    if len(r) == 0:
        return out
    batch = batch_stats((r - rf)[:, None], ppy)
    plain = batch_stats(r[:, None], ppy)
    for key in ("return_pct", "cagr_pct", "volatility_pct", "max_drawdown_pct"):
        out[key] = float(plain[key][0])
    out["sharpe"] = float(batch["sharpe"][0])
    out["sortino"] = float(batch["sortino"][0])
    excess = r - rf
    gains, losses = excess[excess > 0].sum(), -excess[excess < 0].sum()
    out["omega"] = gains / losses if losses > 0 else NAN
    low_tail = abs(np.percentile(r, 5))
    out["tail_ratio"] = abs(np.percentile(r, 95)) / low_tail if low_tail > 0 else NAN
    out["var_95"] = float(np.percentile(r, 5))
    cut = int((len(r) - 1) * 0.05)
    out["cvar_95"] = float(np.mean(np.partition(r, cut)[: cut + 1]))
    out.update(_moments(r))
    out["stability"] = _stability(r)
    return out


def _moments(r: np.ndarray) -> dict[str, float]:
    """Skew, excess kurtosis (population moments) and the probabilistic Sharpe ratio."""
    if len(r) < 3:
        return {}
    d = r - r.mean()
    m2 = float(np.mean(d**2))
    if m2 <= 0:
        return {}
    skew = float(np.mean(d**3)) / m2**1.5
    kurt = float(np.mean(d**4)) / m2**2
    sr = float(r.mean() / r.std(ddof=1))
    denom = 1.0 - skew * sr + (kurt - 1.0) / 4.0 * sr**2
    psr = NAN
    if denom > 0:
        z = sr * math.sqrt(len(r) - 1) / math.sqrt(denom)
        psr = 0.5 * (1.0 + math.erf(z / math.sqrt(2.0)))
    return {"skew": skew, "kurtosis": kurt - 3.0, "psr": psr}


def _stability(r: np.ndarray) -> float:
    """R² of the least-squares line through cumulative log returns."""
    if len(r) < 2 or np.any(r <= -1):
        return NAN
    y = np.cumsum(np.log1p(r))
    x = np.arange(len(y), dtype=np.float64)
    xm, ym = x - x.mean(), y - y.mean()
    sxx, syy, sxy = float(xm @ xm), float(ym @ ym), float(xm @ ym)
    if sxx == 0 or syy == 0:
        return NAN
    corr = sxy / math.sqrt(sxx * syy)
    return corr * corr


def _drawdown_stats(eq: pd.Series) -> dict[str, float]:
    """Drawdown duration (bars and days) and the ulcer index of the equity curve."""
    if len(eq) < 2:
        return {}
    values = eq.to_numpy()
    peak = np.maximum.accumulate(values)
    dd = values / peak - 1.0
    under = dd < 0
    longest, start, best = 0, -1, (0, 0)
    for i, flag in enumerate(under):
        if flag and start < 0:
            start = i - 1
        if start >= 0 and (not flag or i == len(under) - 1):
            end = i
            if end - start > longest:
                longest, best = end - start, (start, end)
            start = -1 if not flag else start
    days = NAN
    if isinstance(eq.index, pd.DatetimeIndex):
        days = (eq.index[best[1]] - eq.index[best[0]]) / pd.Timedelta(days=1) if longest else 0.0
    return {
        "max_drawdown_duration": float(longest),
        "max_drawdown_days": float(days),
        "ulcer_index": float(np.sqrt(np.mean((dd * 100.0) ** 2))),
    }


def _calmar(cagr_pct: float, max_dd_pct: float) -> float:
    """CAGR over the absolute max drawdown; NaN without a drawdown."""
    if not max_dd_pct < 0:
        return NAN
    return (cagr_pct / 100.0) / abs(max_dd_pct / 100.0)


def _alpha_beta(eq: pd.Series, benchmark: pd.Series, ppy: float, rf: float) -> dict[str, float]:
    """Annualised alpha and beta against the benchmark's per-bar returns."""
    bench = pd.Series(benchmark, dtype=np.float64).reindex(eq.index)
    rb = (bench / bench.shift(1) - 1.0).to_numpy()[1:]
    r = (eq / eq.shift(1) - 1.0).to_numpy()[1:]
    ok = ~(np.isnan(r) | np.isnan(rb))
    if ok.sum() < 2:
        return {}
    r, rb = r[ok] - rf, rb[ok] - rf
    dev = rb - rb.mean()
    var = float(np.mean(dev**2))
    if var < 1e-30:
        return {}
    beta = float(np.mean(dev * r)) / var
    alpha = (float(np.mean(r - beta * rb)) + 1.0) ** ppy - 1.0
    return {"alpha": alpha, "beta": beta}


def _trade_stats(trades: pd.DataFrame, index: pd.Index) -> dict[str, float]:
    """Trade-based metrics from the closed trades."""
    pnl = trades["pnl"].to_numpy(np.float64)
    ret = trades["return_pct"].to_numpy(np.float64)
    n = len(pnl)
    wins, losses = pnl > 0, pnl < 0
    gross_win, gross_loss = pnl[wins].sum(), -pnl[losses].sum()
    win_rate = wins.mean()
    out = {
        "n_trades": float(n),
        "win_rate_pct": win_rate * 100.0,
        "profit_factor": gross_win / gross_loss if gross_loss > 0 else NAN,
        "expectancy": ret.mean(),
        "avg_win_pct": ret[wins].mean() if wins.any() else NAN,
        "avg_loss_pct": ret[losses].mean() if losses.any() else NAN,
        "best_trade_pct": ret.max(),
        "worst_trade_pct": ret.min(),
        "sqn": NAN,
        "kelly": NAN,
        "avg_holding_bars": _holding_bars(trades, index),
    }
    if n > 1 and pnl.std(ddof=1) > 0:
        out["sqn"] = math.sqrt(n) * pnl.mean() / pnl.std(ddof=1)
    if wins.any() and losses.any():
        payoff = pnl[wins].mean() / -pnl[losses].mean()
        out["kelly"] = win_rate - (1.0 - win_rate) / payoff
    return out


def _bar_positions(times: pd.Series, index: pd.Index) -> np.ndarray:
    """Bar numbers of ``times`` in ``index`` (the bar at or before each time)."""
    stamps = pd.DatetimeIndex(pd.to_datetime(times, utc=True))
    idx = pd.DatetimeIndex(index)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    return np.asarray(idx.searchsorted(stamps, side="right") - 1)


def _holding_bars(trades: pd.DataFrame, index: pd.Index) -> float:
    """Mean number of bars between entry and exit."""
    if not isinstance(index, pd.DatetimeIndex) or not len(index):
        return NAN
    held = _bar_positions(trades["exit_time"], index) - _bar_positions(trades["entry_time"], index)
    return float(np.mean(held))


def _exposure(
    positions: pd.Series | np.ndarray | None, trades: pd.DataFrame | None, index: pd.Index
) -> float:
    """Percent of bars with an open position."""
    if positions is not None:
        pos = np.asarray(positions, dtype=np.float64)
        return float(np.mean(np.nan_to_num(pos) != 0) * 100.0) if len(pos) else NAN
    if trades is None or not len(index) or not isinstance(index, pd.DatetimeIndex):
        return NAN
    held = np.zeros(len(index), dtype=bool)
    if len(trades):
        starts = _bar_positions(trades["entry_time"], index)
        ends = _bar_positions(trades["exit_time"], index)
        for s, e in zip(starts, ends, strict=True):
            held[max(s, 0) : e] = True
    return float(held.mean() * 100.0)
