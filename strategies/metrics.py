"""Performance metrics of a backtest, with empyrical's conventions, and a batch version.

Returns are simple per-bar returns of the equity curve, ``r[t] = equity[t] / equity[t-1] - 1``
(the first bar has none; 0 while equity stays at 0 after a ruin). ``P = periods_per_year``
annualises. Every value is a float and NaN where it is undefined (too few bars, no trades,
no losing trade, ...): JSON-safe, never raises on empty input. Conventions (identical to
empyrical-reloaded):

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

import numpy as np
import pandas as pd

from strategies import _metric_kernels as _mk

__all__ = ["BATCH_KEYS", "STAT_KEYS", "batch_stats", "compute_stats", "summarize"]

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
_EMPTY = np.empty(0)
_EMPTY_I8 = np.empty(0, dtype=np.int64)
_NS_PER_UNIT = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}


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
        positions: Position size per bar (any sign), or one column per symbol for a
            portfolio; a bar counts as exposed when any of its positions is non-zero.
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
        * ``exposure_pct``: percent of bars holding a position (for a portfolio: any
          position in any symbol; one bar counts once however many symbols are held).
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
    eq = pd.Series(equity, dtype=np.float64)
    values = eq.to_numpy()
    index = eq.index
    finite = ~np.isnan(values)
    if not finite.all():
        values, index = values[finite], index[finite]
    bench = None
    if benchmark is not None:
        b = pd.Series(benchmark, dtype=np.float64)
        bench = (b if b.index.equals(index) else b.reindex(index)).to_numpy()
    pnl = ret = held = None
    if trades is not None and len(trades):
        pnl = trades["pnl"].to_numpy(np.float64)
        ret = trades["return_pct"].to_numpy(np.float64)
        if isinstance(index, pd.DatetimeIndex) and len(index):
            held = _bar_positions(trades["exit_time"], index) - _bar_positions(
                trades["entry_time"], index
            )
    exposure = None
    if positions is None:
        exposure = _exposure_from_trades(trades, index)
    return summarize(
        values,
        index=index,
        benchmark=bench,
        positions=None if positions is None else np.asarray(positions, dtype=np.float64),
        pnl=pnl,
        return_pct=ret,
        held_bars=held,
        exposure_pct=exposure,
        periods_per_year=periods_per_year,
        risk_free=risk_free,
    )


def summarize(
    equity: np.ndarray,
    *,
    index: pd.Index | None = None,
    benchmark: np.ndarray | None = None,
    positions: np.ndarray | None = None,
    pnl: np.ndarray | None = None,
    return_pct: np.ndarray | None = None,
    held_bars: np.ndarray | None = None,
    exposure_pct: float | None = None,
    periods_per_year: float = 252,
    risk_free: float = 0.0,
) -> dict[str, float]:
    """Compute the metrics of :func:`compute_stats` from plain arrays (the engine's path).

    Args:
        equity: NaN-free account value per bar.
        index: the bars' timestamps (a DatetimeIndex gives ``max_drawdown_days``).
        benchmark: benchmark values on the same bars, for alpha and beta.
        positions: position per bar, (n,) or (n, k) with one column per symbol; a bar
            counts as exposed when any of its positions is non-zero (NaN is flat).
        pnl: closed trades' pnl, with ``return_pct`` their returns in percent.
        return_pct: see ``pnl``.
        held_bars: bars between each trade's entry and exit.
        exposure_pct: used when ``positions`` is None.
        periods_per_year: bars per year used to annualise.
        risk_free: risk-free return per bar.

    Returns:
        The dict of :func:`compute_stats`: floats in ``STAT_KEYS`` order, NaN where undefined.
    """
    out = _mk.summary(
        np.ascontiguousarray(equity, dtype=np.float64),
        _nanoseconds(index),
        _EMPTY if benchmark is None else np.ascontiguousarray(benchmark, dtype=np.float64),
        _EMPTY if positions is None else _per_bar(positions),
        _EMPTY if pnl is None else np.ascontiguousarray(pnl, dtype=np.float64),
        _EMPTY if return_pct is None else np.ascontiguousarray(return_pct, dtype=np.float64),
        _EMPTY if held_bars is None else np.ascontiguousarray(held_bars, dtype=np.float64),
        float(periods_per_year),
        float(risk_free),
    )
    if positions is None or not len(positions):
        out[_mk.S_EXPOSURE] = NAN if exposure_pct is None else exposure_pct
    out[~np.isfinite(out)] = NAN
    return dict(zip(STAT_KEYS, out.tolist(), strict=True))


def _per_bar(positions: np.ndarray) -> np.ndarray:
    """Return one value per bar, non-zero when any of the bar's positions is non-zero."""
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim == 2 and pos.shape[1] > 1:
        # Exposure counts bars, not symbol-bars: reduce a portfolio's columns first.
        exposed: np.ndarray = ((pos != 0.0) & ~np.isnan(pos)).any(axis=1)
        return exposed.astype(np.float64)
    return np.ascontiguousarray(pos).ravel()


def _nanoseconds(index: pd.Index | None) -> np.ndarray:
    """Return a DatetimeIndex as int64 nanoseconds (empty for anything else)."""
    if not isinstance(index, pd.DatetimeIndex):
        return _EMPTY_I8
    stamps = index.asi8
    factor = _NS_PER_UNIT[index.unit]
    return np.ascontiguousarray(stamps * factor if factor != 1 else stamps)


def _bar_positions(times: pd.Series, index: pd.Index) -> np.ndarray:
    """Bar numbers of ``times`` in ``index`` (the bar at or before each time)."""
    stamps = pd.DatetimeIndex(pd.to_datetime(times, utc=True))
    idx = pd.DatetimeIndex(index)
    if idx.tz is None:
        idx = idx.tz_localize("UTC")
    return np.asarray(idx.searchsorted(stamps, side="right") - 1)


def _exposure_from_trades(trades: pd.DataFrame | None, index: pd.Index) -> float:
    """Percent of bars with an open trade (entry bar included, exit bar excluded)."""
    if trades is None or not len(index) or not isinstance(index, pd.DatetimeIndex):
        return NAN
    held = np.zeros(len(index), dtype=bool)
    if len(trades):
        starts = _bar_positions(trades["entry_time"], index)
        ends = _bar_positions(trades["exit_time"], index)
        for s, e in zip(starts, ends, strict=True):
            held[max(s, 0) : e] = True
    return float(held.mean() * 100.0)
