"""Multi-asset backtests: one strategy on several symbols sharing one cash account.

The symbols' bars are aligned on a common calendar (the union of their timestamps). Prices
are forward-filled for valuation, but a symbol never trades (nor triggers stops) on a
timestamp where it has no bar of its own; a signal waiting there is acted on at the symbol's
next bar. Targets are computed on each symbol's own bars and scaled by its weight.

Example:
    >>> import numpy as np, pandas as pd
    >>> def walk(seed):
    ...     idx = pd.date_range("2024-01-01", periods=120, freq="D", tz="UTC")
    ...     c = 50 + np.cumsum(np.random.default_rng(seed).normal(0, 1, 120))
    ...     return pd.DataFrame({"open": c, "high": c + 1, "low": c - 1, "close": c,
    ...                          "volume": 1.0}, index=idx)
    >>> r = run_portfolio({"AAA": walk(1), "BBB": walk(2)}, "buy_hold")
    >>> r.positions.shape
    (120, 2)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError, ParameterError
from strategies import metrics
from strategies.bars import validate_bars
from strategies.base import COLUMNS, Strategy
from strategies.checks import finite_number
from strategies.costs import CommissionSpec
from strategies.results import BacktestResult, trades_frame
from strategies.simulation import Fill, prepare, run_costs, simulate
from strategies.sizing import Size, bars_per_year, sizing


def run_portfolio(
    bars_by_symbol: Mapping[str, pd.DataFrame],
    strategy: str | Strategy,
    params: Mapping[str, Any] | None = None,
    *,
    weights: str | Mapping[str, float] | None = "equal",
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
    periods_per_year: float | None = None,
    finalize_trades: bool = False,
) -> BacktestResult:
    """Backtest ``strategy`` on several symbols with shared cash.

    Args:
        bars_by_symbol: symbol -> bar frame (as for ``run_backtest``).
        strategy: a library name or a Strategy; the same parameters for every symbol.
        params: strategy parameters.
        weights: ``"equal"``/None (1/k each) or symbol -> fraction of equity per symbol.
        cash, commission, slippage_bps, fill, size, stop_loss_pct, take_profit_pct,
        allow_short, margin: as for ``run_backtest`` (``size`` scales every weight).
        benchmark: compare with an equal-weight buy-and-hold of the symbols.
        periods_per_year: as for ``run_backtest`` (None infers it from the union calendar).
        finalize_trades: as for ``run_backtest``.

    Returns:
        A BacktestResult whose ``trades`` carry the symbol and whose ``positions`` is a
        DataFrame of shares per symbol.
    """
    frames = _frames(bars_by_symbol)
    symbols = list(frames)
    strat, p = prepare(strategy, params, allow_short)
    index = frames[symbols[0]].index
    for s in symbols[1:]:
        index = index.union(frames[s].index)
    ppy = bars_per_year(index, periods_per_year)
    aligned = {s: f.reindex(index) for s, f in frames.items()}
    tradable = np.column_stack([aligned[s]["close"].notna().to_numpy() for s in symbols])
    prices = tuple(
        np.ascontiguousarray(
            np.column_stack([aligned[s][col].ffill().bfill().to_numpy() for s in symbols])
        )
        for col in COLUMNS[:4]
    )
    target = np.column_stack(
        [
            pd.Series(strat.target(frames[s], p, resolved=True), frames[s].index)
            .reindex(index)
            .ffill()
            .fillna(0.0)
            .to_numpy()
            for s in symbols
        ]
    )
    w = _weights(weights, symbols)
    parts = [sizing(size, prices[3][:, j], periods_per_year=ppy) for j in range(len(symbols))]
    scale = np.column_stack([part[0] * (1.0 if part[1] else w[j]) for j, part in enumerate(parts)])
    costs = run_costs(
        strat,
        commission=commission,
        currencies=["USD"] * len(symbols),
        slippage_bps=slippage_bps,
        stop_loss_pct=stop_loss_pct,
        take_profit_pct=take_profit_pct,
        margin=margin,
    )
    frame = pd.DataFrame(index=index)
    values, positions, rows = simulate(
        frame,
        target,
        scale,
        parts[0][1],
        cash=cash,
        costs=costs,
        fill=fill,
        tradable=tradable,
        prices=prices,
        finalize=finalize_trades,
    )
    equity = pd.Series(values, index=index, name="equity", copy=False)
    trades = trades_frame(rows, index, symbols)
    closes = pd.DataFrame(prices[3], index=index, columns=symbols)
    bench = (closes / closes.iloc[0]).mean(axis=1) if benchmark else None
    stats = metrics.compute_stats(
        equity,
        trades=trades,
        positions=positions,
        benchmark=bench,
        periods_per_year=ppy,
    )
    return BacktestResult(
        trades=trades,
        equity=equity,
        positions=pd.DataFrame(positions, index, symbols),
        stats=stats,
        params=p,
        strategy=strat.name,
        benchmark=bench,
    )


def _frames(bars_by_symbol: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Return each symbol's validated bars; a DataError names the symbol."""
    if not isinstance(bars_by_symbol, Mapping) or not bars_by_symbol:
        raise DataError(
            "run_portfolio needs a non-empty mapping of symbol to bar frame",
            field="bars_by_symbol",
        )
    frames = {}
    for symbol, bars in bars_by_symbol.items():
        if not isinstance(symbol, str):
            raise DataError(f"symbols must be strings, got {symbol!r}", field="bars_by_symbol")
        try:
            frames[symbol] = validate_bars(bars)
        except DataError as exc:
            raise DataError(f"bars of {symbol!r}: {exc.message}", field=exc.field) from None
    return frames


def _weights(weights: str | Mapping[str, float] | None, symbols: list[str]) -> np.ndarray:
    """Return one weight per symbol, validated."""
    if weights is None or (isinstance(weights, str) and weights == "equal"):
        return np.full(len(symbols), 1.0 / len(symbols))
    if not isinstance(weights, Mapping):
        raise ParameterError(
            f"weights must be 'equal' or a mapping of symbol to fraction, got {weights!r}",
            field="weights",
        )
    unknown = set(weights) - set(symbols)
    if unknown:
        raise ParameterError(
            f"weights name unknown symbols {sorted(map(str, unknown))}; the symbols are {symbols}",
            field="weights",
        )
    w = np.array(
        [finite_number(weights.get(s, 0.0), f"weights[{s!r}]", field="weights") for s in symbols]
    )
    if (w < 0).any():
        raise ParameterError(f"weights must be non-negative, got {dict(weights)}", field="weights")
    return w
