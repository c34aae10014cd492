"""The vectorized backtest engine: targets from a strategy, fills and costs in one numba loop.

Conventions (documented once, used by ``run_backtest``, ``run_portfolio`` and ``run_batch``):

* A bar's target is acted on only when it differs from the last target acted on, at the
  next bar's open (``fill="next_open"``) or at the signal bar's close (``fill="close"``).
  A stop-loss exit leaves the target untouched, so the engine re-enters only on a new signal.
* Entries buy whole shares worth ``size`` x equity / ``margin``, net of the fill's own
  commission, and never more than the buying power (equity / ``margin`` minus the gross
  value already held). Reversals close first, then open with the freed cash. A long-only
  account with ``margin=1`` never has negative cash; shorts and leverage can lose more than
  the equity.
* Ruin, as in backtesting.py: when equity at a bar's close is <= 0, every position is
  closed at that close (with the usual slippage and commission, where backtesting.py uses
  the bare close), nothing trades again, and equity is 0 from that bar on (what is left,
  floored at 0: backtesting.py sets cash to 0 and its equity to 0 from that bar on).
* Slippage moves every market fill against the trader by ``slippage_bps``; a take-profit
  fills at its limit price (or at a better gapping open), a stop at its price or at a worse
  gapping open. Stops and targets are checked intrabar on high/low from the entry bar on
  (with ``fill="close"``: from the bar after); when both are touched, the stop wins.
* Positions still open at the end stay open: ``equity`` marks them at the last close and
  ``trades`` lists closed trades only (like backtesting.py without ``finalize_trades``);
  ``finalize_trades=True`` closes them at the last close instead.
* Commission is charged per fill in the instrument's currency (``currency=``):
  ``commission="ibkr"`` is Interactive Brokers' fixed pricing for it (see
  :mod:`strategies.costs`). A run's money (cash, equity, trades, stats) is in one currency,
  recorded as ``BacktestResult.currency``; a portfolio over several converts with FX rates
  or refuses (see :mod:`strategies.portfolio`).

Layout: this module holds ``run_backtest`` and re-exports the engine's public names;
``strategies.batch`` (``run_batch``) and ``strategies.portfolio`` (``run_portfolio``) call
the same core, :mod:`strategies.simulation`, over :mod:`strategies.bars`,
:mod:`strategies.costs` and :mod:`strategies.sizing`.

Example:
    >>> import numpy as np, pandas as pd
    >>> idx = pd.date_range("2024-01-01", periods=300, freq="D", tz="UTC")
    >>> close = 100 + np.cumsum(np.random.default_rng(1).normal(0, 1, 300))
    >>> bars = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1,
    ...                      "close": close, "volume": 1e6}, index=idx)
    >>> result = run_backtest(bars, "sma_cross", {"fast": 5, "slow": 20}, commission=0.001)
    >>> len(result.equity) == len(bars)
    True
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ParameterError
from strategies import _kernels as k
from strategies import metrics
from strategies.bars import bar_values, ohlc_columns, validate_bars
from strategies.base import Strategy
from strategies.batch import run_batch
from strategies.costs import (
    IBKR_ASX,
    IBKR_FIXED,
    IBKR_US,
    Commission,
    CommissionSpec,
    check_account,
    check_currency,
)
from strategies.portfolio import run_portfolio
from strategies.results import TRADE_FRAME_COLUMNS, BacktestResult, trade_returns, trades_frame
from strategies.simulation import Fill, prepare, run_costs, seeded_cache, simulate
from strategies.sizing import FixedShares, Size, VolTarget, bars_per_year, periods_per_year, sizing

__all__ = [
    "IBKR_ASX",
    "IBKR_FIXED",
    "IBKR_US",
    "TRADE_FRAME_COLUMNS",
    "BacktestResult",
    "Commission",
    "Fill",
    "FixedShares",
    "Size",
    "VolTarget",
    "bars_per_year",
    "check_account",
    "periods_per_year",
    "prepare",
    "run_backtest",
    "run_batch",
    "run_portfolio",
    "simulate",
    "sizing",
    "trades_frame",
    "validate_bars",
]


def run_backtest(
    bars: pd.DataFrame,
    strategy: str | Strategy,
    params: Mapping[str, Any] | None = None,
    *,
    cash: float = 100_000.0,
    commission: CommissionSpec = 0.0,
    slippage_bps: float = 0.0,
    fill: Fill = "next_open",
    size: Size = 1.0,
    stop_loss_pct: float | None = None,
    take_profit_pct: float | None = None,
    allow_short: bool | None = None,
    margin: float = 1.0,
    benchmark: bool = True,
    symbol: str = "",
    periods_per_year: float | None = None,
    finalize_trades: bool = False,
    currency: str = "USD",
) -> BacktestResult:
    """Backtest ``strategy`` on one instrument's bars.

    Args:
        bars: UTC-indexed frame with columns ``open high low close volume``.
        strategy: a library name (see ``strategies.list_strategies()``) or a Strategy.
        params: strategy parameters; missing ones take their defaults.
        cash: starting cash.
        commission: fraction of traded value (``0.002``), ``"ibkr"`` (Interactive Brokers'
            fixed pricing for ``currency``: USD 0.005/share, min 1.00, max 1 % of value for
            ``"USD"``; 0.08 % of value, min AUD 6.00 for ``"AUD"`` (ASX)), ``"ibkr_us"``,
            ``"ibkr_asx"`` or a :class:`Commission` (amounts in ``currency``).
        slippage_bps: basis points against the trader on every market fill.
        fill: ``"next_open"`` (default) or ``"close"`` (the signal bar's close).
        size: fraction of equity per entry (1.0 = all in), :class:`FixedShares` or
            :class:`VolTarget`.
        stop_loss_pct: exit when price moves this many percent against the entry.
        take_profit_pct: exit when price moves this many percent in favour.
        allow_short: override the strategy's ``allow_short`` parameter.
        margin: initial margin fraction (1.0 = no leverage, 0.5 = 2x).
        benchmark: compare against buy-and-hold of the same bars in ``stats``.
        symbol: the value of the trades' ``symbol`` column.
        periods_per_year: bars per year for annualized metrics and :class:`VolTarget`;
            None infers it from the index (see :func:`periods_per_year`, which assumes
            252 sessions of 6.5 hours). Pass e.g. 365 for calendar-day bars or
            365 x 24 for hourly bars of a 24-hour market.
        finalize_trades: close a position still open at the end at the last close (with
            the usual slippage and commission), so it is listed in ``trades`` and counts in
            the trade statistics (backtesting.py's ``finalize_trades``). Off by default: the
            position stays open and ``equity`` marks it at the last close.
        currency: the instrument's currency (ISO code, e.g. ``"USD"``, ``"AUD"``): the
            currency of ``cash`` and every result, and what ``commission="ibkr"`` prices by.

    Returns:
        A frozen :class:`BacktestResult` whose ``currency`` is ``currency`` upper-cased.

    Raises:
        DataError: bad bars (the message names the bar and column).
        ParameterError: a bad argument, named in ``field``; ``commission="ibkr"`` with a
            currency it has no schedule for names ``currency`` and lists the supported ones.
    """
    if not isinstance(symbol, str):
        raise ParameterError(f"symbol must be a string, got {symbol!r}", field="symbol")
    code = check_currency(currency)
    strat, p = prepare(strategy, params, allow_short)
    frame, values = bar_values(bars)
    index = frame.index
    ppy = bars_per_year(index, periods_per_year)
    ohlc = ohlc_columns(values)
    target = strat.target(frame, p, indicators=seeded_cache(frame, values), resolved=True)
    costs = run_costs(
        strat,
        commission=commission,
        currencies=[code],
        slippage_bps=slippage_bps,
        stop_loss_pct=stop_loss_pct,
        take_profit_pct=take_profit_pct,
        margin=margin,
    )
    scale, mode = sizing(size, values[:, 3], periods_per_year=ppy)
    run = simulate(
        frame,
        target[:, None],
        scale[:, None],
        mode,
        cash=cash,
        costs=costs,
        fill=fill,
        prices=ohlc,
        finalize=finalize_trades,
    )
    return _result(
        run,
        frame=frame,
        values=values,
        benchmark=benchmark,
        ppy=ppy,
        symbol=symbol,
        p=p,
        strategy=strat.name,
        currency=code,
    )


def _result(
    run: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    frame: pd.DataFrame,
    values: np.ndarray,
    benchmark: bool,
    ppy: float,
    symbol: str,
    p: dict[str, Any],
    strategy: str,
    currency: str,
) -> BacktestResult:
    """Assemble one instrument's BacktestResult from the kernel's outputs."""
    equity, positions, trades = run
    index = frame.index
    stats = metrics.summarize(
        equity,
        index=index,
        benchmark=values[:, 3] if benchmark else None,
        positions=positions,
        pnl=trades[:, k.T_PNL],
        return_pct=trade_returns(trades),
        held_bars=trades[:, k.T_EXIT_IDX] - trades[:, k.T_ENTRY_IDX],
        periods_per_year=ppy,
    )
    # Every Series through one constructor (a warm code path costs less than frame["close"]).
    return BacktestResult(
        trades=trades_frame(trades, index, [symbol]),
        equity=pd.Series(equity, index, name="equity", copy=False),
        positions=pd.Series(positions[:, 0], index, name="position", copy=False),
        stats=stats,
        params=p,
        strategy=strategy,
        bars=frame,
        benchmark=pd.Series(values[:, 3].copy(), index, name="close", copy=False)
        if benchmark
        else None,
        currency=currency,
    )
