"""Multi-asset backtests: one strategy on several symbols sharing one cash account.

The symbols' bars are aligned on a common calendar (the union of their timestamps). Prices
are forward-filled for valuation, but a symbol never trades (nor triggers stops) on a
timestamp where it has no bar of its own; a signal waiting there is acted on at the symbol's
next bar. Targets and sizing are computed on each symbol's own bars; targets are scaled by
the symbol's weight.

Before its first bar a symbol does not exist for the account: its target is 0, it has no
fills and no value, and no price of it is carried backwards (nothing earlier can depend on
its first price). The benchmark (:func:`equal_weight_benchmark`) weights only the symbols
that have started: equal value in those trading at the first timestamp, re-split equally
over every started symbol at each later symbol's first close, bought and held in between.

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
from dataclasses import dataclass
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
        benchmark: compare with the equal-weight buy-and-hold of the symbols that have
            started (see :func:`equal_weight_benchmark`).
        periods_per_year: as for ``run_backtest`` (None infers it from the union calendar).
        finalize_trades: as for ``run_backtest``.

    Returns:
        A BacktestResult whose ``trades`` carry the symbol and whose ``positions`` is a
        DataFrame of shares per symbol.
    """
    frames = _frames(bars_by_symbol)
    symbols = list(frames)
    strat, p = prepare(strategy, params, allow_short)
    index = _calendar(frames)
    ppy = bars_per_year(index, periods_per_year)
    book = _book(frames, index)
    target = np.column_stack([_on(index, _own_targets(strat, p, f)) for f in frames.values()])
    scale, mode = _scale(size, frames, index, weights=_weights(weights, symbols), ppy=ppy)
    costs = run_costs(
        strat,
        commission=commission,
        currencies=["USD"] * len(symbols),
        slippage_bps=slippage_bps,
        stop_loss_pct=stop_loss_pct,
        take_profit_pct=take_profit_pct,
        margin=margin,
    )
    values, positions, rows = simulate(
        pd.DataFrame(index=index),
        target,
        scale,
        mode,
        cash=cash,
        costs=costs,
        fill=fill,
        tradable=book.tradable,
        prices=book.prices,
        finalize=finalize_trades,
    )
    equity = pd.Series(values, index=index, name="equity", copy=False)
    trades = trades_frame(rows, index, symbols)
    bench = equal_weight_benchmark(book.closes, index) if benchmark else None
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


@dataclass(frozen=True, slots=True)
class _Book:
    """The instruments' bars on the account's calendar.

    Attributes:
        prices: open, high, low, close as (n, k) arrays for the kernel: forward-filled
            after each instrument's first bar and 0 before it (it holds nothing there, so
            no price from its future is ever read).
        tradable: (n, k) True where the instrument has a bar of its own.
        closes: (n, k) closes, forward-filled after the first bar and NaN before it.
    """

    prices: tuple[np.ndarray, ...]
    tradable: np.ndarray
    closes: np.ndarray


def _calendar(frames: Mapping[str, pd.DataFrame]) -> pd.DatetimeIndex:
    """Return the union of the instruments' timestamps."""
    first, *rest = frames.values()
    index = first.index
    for frame in rest:
        index = index.union(frame.index)
    return pd.DatetimeIndex(index)


def _book(frames: Mapping[str, pd.DataFrame], index: pd.DatetimeIndex) -> _Book:
    """Align every instrument's prices on ``index`` (see :class:`_Book`)."""
    aligned = [frame.reindex(index) for frame in frames.values()]
    tradable = np.column_stack([a["close"].notna().to_numpy() for a in aligned])
    filled = [np.column_stack([a[col].ffill().to_numpy() for a in aligned]) for col in COLUMNS[:4]]
    prices = tuple(np.ascontiguousarray(np.nan_to_num(f, nan=0.0)) for f in filled)
    return _Book(prices=prices, tradable=tradable, closes=filled[3])


def _own_targets(strat: Strategy, p: Mapping[str, Any], frame: pd.DataFrame) -> pd.Series:
    """Return the strategy's targets computed on one instrument's own bars."""
    return pd.Series(strat.target(frame, p, resolved=True), frame.index)


def _on(index: pd.DatetimeIndex, own: pd.Series) -> np.ndarray:
    """Carry a per-own-bar series onto ``index``: forward-filled, 0 before its first bar."""
    return own.reindex(index).ffill().fillna(0.0).to_numpy()


def _scale(
    size: Size,
    frames: Mapping[str, pd.DataFrame],
    index: pd.DatetimeIndex,
    *,
    weights: np.ndarray,
    ppy: float,
) -> tuple[np.ndarray, int]:
    """Return the (n, k) sizing multipliers and the size mode.

    Each instrument is sized on its own bars (a volatility target sees only its own
    returns), then weighted; fixed share counts are not weighted.
    """
    columns, mode = [], 0
    for j, frame in enumerate(frames.values()):
        close = frame["close"].to_numpy()
        own, mode = sizing(size, close, periods_per_year=ppy)
        columns.append(_on(index, pd.Series(own, frame.index)) * (1.0 if mode else weights[j]))
    return np.column_stack(columns), mode


def equal_weight_benchmark(closes: np.ndarray, index: pd.DatetimeIndex) -> pd.Series:
    """Return the equal-weight buy-and-hold benchmark of the instruments that have started.

    It starts with equal value in every instrument with a bar at the first timestamp. At a
    later instrument's first bar it re-splits its whole value equally over every started
    instrument at that bar's closes; between those bars it buys and holds. An instrument
    has no weight and no price before its first bar. With a common start this is the mean
    of each close over its first close.

    Args:
        closes: (n, k) closes forward-filled after each instrument's first bar, NaN before.
        index: the bars' timestamps.
    """
    started = ~np.isnan(closes)
    events = np.unique(started.argmax(axis=0))
    value = np.empty(len(closes))
    level = 1.0
    for m, begin in enumerate(events):
        end = int(events[m + 1]) if m + 1 < len(events) else len(closes)
        members = started[begin]
        entry = closes[begin, members]
        value[begin:end] = level * (closes[begin:end, members] / entry).mean(axis=1)
        if end < len(closes):  # the value the next re-split starts from
            level *= float((closes[end, members] / entry).mean())
    return pd.Series(value, index=index, name="benchmark")


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
