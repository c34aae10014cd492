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

Currencies: each symbol has one (``currencies``; USD by default) and the account has one
(``base_currency``). Amounts in different currencies are never added: a symbol in another
currency has its prices, and its commission schedule's fixed amounts, converted into the
base currency bar by bar with ``fx`` (see :mod:`strategies.fx`: the latest rate at or
before each bar), and without rates the run is refused. Equity, trades (prices, pnl,
commission) and stats are then in the base currency; stops and take-profits are percent
moves of the base-currency price.

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
from strategies.fx import Currencies, account_currency, fx_rates, instrument_currencies
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
    currencies: Currencies = None,
    base_currency: str | None = None,
    fx: Mapping[str, pd.Series] | None = None,
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
        currencies: every symbol's currency: one code for all (``"AUD"``), a mapping of
            symbol to code, or None for USD; ``commission="ibkr"`` prices each symbol by
            its own (see ``run_backtest``).
        base_currency: the account's currency (``cash`` and every result); None means the
            symbols' common currency, or USD when they differ.
        fx: currency code -> Series of the base-currency price of one unit of it (AUD ->
            USD per AUD), on a UTC DatetimeIndex; needed for every symbol currency other
            than the base one. Each bar uses the latest rate at or before its timestamp.

    Returns:
        A BacktestResult whose ``trades`` carry the symbol, whose ``positions`` is a
        DataFrame of shares per symbol and whose ``currency`` is the base currency.

    Raises:
        DataError: bad bars (naming the symbol) or bad FX series (``field="fx"``).
        ParameterError: a bad argument; symbols in a currency other than the base one
            without rates for it name ``fx`` and the currencies involved.
    """
    frames = _frames(bars_by_symbol)
    symbols = list(frames)
    codes = instrument_currencies(currencies, symbols)
    base = account_currency(base_currency, codes)
    strat, p = prepare(strategy, params, allow_short)
    index = _calendar(frames)
    ppy = bars_per_year(index, periods_per_year)
    book = _book(frames, index)
    rates = fx_rates(fx, codes=codes, base=base, index=index, started=book.started)
    book = book.converted(rates)
    target = np.column_stack([_on(index, _own_targets(strat, f, p=p)) for f in frames.values()])
    scale, mode = _scale(size, book, index=index, weights=_weights(weights, symbols), ppy=ppy)
    costs = run_costs(
        strat,
        commission=commission,
        currencies=codes,
        slippage_bps=slippage_bps,
        stop_loss_pct=stop_loss_pct,
        take_profit_pct=take_profit_pct,
        margin=margin,
    )
    run = simulate(
        pd.DataFrame(index=index),
        target,
        scale,
        mode,
        cash=cash,
        costs=costs,
        fill=fill,
        tradable=book.tradable,
        prices=book.prices,
        fx=rates,
        finalize=finalize_trades,
    )
    bench = equal_weight_benchmark(book.closes, index) if benchmark else None
    return _result(
        run, index=index, symbols=symbols, bench=bench, ppy=ppy, currency=base, name=strat.name, p=p
    )


def _result(
    run: tuple[np.ndarray, np.ndarray, np.ndarray],
    *,
    index: pd.DatetimeIndex,
    symbols: list[str],
    bench: pd.Series | None,
    ppy: float,
    currency: str,
    name: str,
    p: dict[str, Any],
) -> BacktestResult:
    """Assemble the portfolio's BacktestResult from the kernel's outputs."""
    values, positions, rows = run
    equity = pd.Series(values, index=index, name="equity", copy=False)
    trades = trades_frame(rows, index, symbols)
    stats = metrics.compute_stats(
        equity, trades=trades, positions=positions, benchmark=bench, periods_per_year=ppy
    )
    return BacktestResult(
        trades=trades,
        equity=equity,
        positions=pd.DataFrame(positions, index, symbols),
        stats=stats,
        params=p,
        strategy=name,
        benchmark=bench,
        currency=currency,
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
        own: each instrument's own bars as positions in the calendar.
    """

    prices: tuple[np.ndarray, ...]
    tradable: np.ndarray
    closes: np.ndarray
    own: tuple[np.ndarray, ...]

    @property
    def started(self) -> np.ndarray:
        """Return (n, k) bools, True from each instrument's first bar on."""
        started: np.ndarray = ~np.isnan(self.closes)
        return started

    def converted(self, rates: np.ndarray | None) -> _Book:
        """Return the book in the base currency at ``rates`` (n, k) (itself when None)."""
        if rates is None:
            return self
        return _Book(
            prices=tuple(np.ascontiguousarray(p * rates) for p in self.prices),
            tradable=self.tradable,
            closes=self.closes * rates,
            own=self.own,
        )


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
    own = tuple(index.get_indexer(frame.index) for frame in frames.values())
    return _Book(prices=prices, tradable=tradable, closes=filled[3], own=own)


def _own_targets(strat: Strategy, frame: pd.DataFrame, *, p: Mapping[str, Any]) -> pd.Series:
    """Return the strategy's targets computed on one instrument's own bars."""
    return pd.Series(strat.target(frame, p, resolved=True), frame.index)


def _on(index: pd.DatetimeIndex, own: pd.Series) -> np.ndarray:
    """Carry a per-own-bar series onto ``index``: forward-filled, 0 before its first bar."""
    return own.reindex(index).ffill().fillna(0.0).to_numpy()


def _scale(
    size: Size, book: _Book, *, index: pd.DatetimeIndex, weights: np.ndarray, ppy: float
) -> tuple[np.ndarray, int]:
    """Return the (n, k) sizing multipliers and the size mode.

    Each instrument is sized on its own bars' closes in the base currency (a volatility
    target sees only its own returns), then weighted; fixed share counts are not weighted.
    """
    columns, mode = [], 0
    for j, at in enumerate(book.own):
        own, mode = sizing(size, book.closes[at, j], periods_per_year=ppy)
        column = _on(index, pd.Series(own, index[at]))
        columns.append(column * (1.0 if mode else weights[j]))
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
