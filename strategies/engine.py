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

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from core.errors import DataError, ParameterError
from strategies import _kernels as k
from strategies import metrics
from strategies.base import COLUMNS, IndicatorCache, Strategy, finite_number

Fill = Literal["next_open", "close"]
TRADE_FRAME_COLUMNS = [
    "symbol",
    "side",
    "size",
    "entry_time",
    "entry_price",
    "exit_time",
    "exit_price",
    "pnl",
    "return_pct",
    "commission",
]
_TRADE_COLUMNS = pd.Index(TRADE_FRAME_COLUMNS)
# Sides and symbols are categoricals: few distinct labels, and ~10x cheaper to build than
# Arrow strings (a measurable share of one daily backtest).
_SIDE_DTYPE = pd.CategoricalDtype(["long", "short"])
_COLUMN_INDEX = pd.Index(list(COLUMNS))
_COLUMN_PLACE = np.arange(len(COLUMNS), dtype=np.intp)
# The trades frame's blocks: column positions of each block and the kernel's row slots.
_FLOAT_NAMES = ("size", "entry_price", "exit_price", "pnl", "return_pct", "commission")
_FLOAT_SLOTS = (k.T_SIZE, k.T_ENTRY_PX, k.T_EXIT_PX, k.T_PNL, -1, k.T_COMMISSION)
_RETURN_ROW = _FLOAT_NAMES.index("return_pct")
_FLOAT_PLACE = np.array([TRADE_FRAME_COLUMNS.index(c) for c in _FLOAT_NAMES], dtype=np.intp)
_TIME_SLOTS = [k.T_ENTRY_IDX, k.T_EXIT_IDX]
_TIME_PLACE = np.array(
    [TRADE_FRAME_COLUMNS.index("entry_time"), TRADE_FRAME_COLUMNS.index("exit_time")], np.intp
)
_SYMBOL_PLACE = np.array([TRADE_FRAME_COLUMNS.index("symbol")], dtype=np.intp)
_SIDE_PLACE = np.array([TRADE_FRAME_COLUMNS.index("side")], dtype=np.intp)
_UNITS_PER_SECOND = {"s": 1.0, "ms": 1e3, "us": 1e6, "ns": 1e9}


@dataclass(frozen=True, slots=True)
class Commission:
    """A commission schedule: ``rate`` x value + ``per_share`` x shares, floored and capped.

    Attributes:
        rate: fraction of traded value (0.002 = 0.2 %), charged on entry and on exit.
        per_share: currency per share.
        minimum: smallest charge per fill.
        max_pct: largest charge per fill as a fraction of traded value (> 0; math.inf
            for no cap).

    Raises:
        ParameterError: a field is not a number, negative or non-finite (``max_pct`` may
            be inf), or ``max_pct`` is 0.
    """

    rate: float = 0.0
    per_share: float = 0.0
    minimum: float = 0.0
    max_pct: float = math.inf

    def __post_init__(self) -> None:
        for name in ("rate", "per_share", "minimum"):
            value = finite_number(getattr(self, name), f"Commission.{name}", field="commission")
            if value < 0:
                raise ParameterError(
                    f"Commission.{name} must be >= 0, got {value}; pass 0 for none",
                    field="commission",
                )
        cap = self.max_pct
        if isinstance(cap, bool) or not isinstance(cap, int | float) or not cap > 0:
            raise ParameterError(
                f"Commission.max_pct must be a fraction of value > 0 (math.inf for no cap), "
                f"got {cap!r}",
                field="commission",
            )

    def of(self, shares: float, price: float) -> float:
        """Return the commission for one fill of ``shares`` at ``price``."""
        return float(k.commission(abs(shares), price, _costs_vector(self, 0.0, None, None, 1.0)))


IBKR_FIXED = Commission(per_share=0.005, minimum=1.0, max_pct=0.01)


@dataclass(frozen=True, slots=True)
class FixedShares:
    """Size every entry at ``shares`` whole shares (times the target's magnitude)."""

    shares: int


@dataclass(frozen=True, slots=True)
class VolTarget:
    """Size entries so the position's annualized volatility is about ``annual_vol``.

    The fraction of equity is ``annual_vol / realized_vol``, capped at ``max_fraction``;
    ``realized_vol`` is the standard deviation (ddof=1) of the log returns of the
    ``lookback`` bars up to the signal bar, annualized with the run's bars per year (see
    :func:`periods_per_year`, or the run's ``periods_per_year`` override). Flat until
    ``lookback`` returns exist.
    """

    annual_vol: float = 0.15
    lookback: int = 20
    max_fraction: float = 1.0


Size = float | FixedShares | VolTarget


@dataclass(frozen=True, slots=True)
class BacktestResult:
    """The outcome of one backtest.

    Attributes:
        trades: closed trades (columns ``symbol side size entry_time entry_price exit_time
            exit_price pnl return_pct commission``); ``pnl`` is net of both commissions;
            ``symbol`` and ``side`` (``long``/``short``) are categoricals.
        equity: account value at each bar's close.
        positions: shares held after each bar (a DataFrame per symbol for portfolios).
        stats: metrics from :func:`strategies.metrics.compute_stats`.
        params: the resolved strategy parameters.
        strategy: the strategy name.
    """

    trades: pd.DataFrame
    equity: pd.Series
    positions: Any
    stats: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    strategy: str = ""
    bars: pd.DataFrame | None = None
    benchmark: pd.Series | None = None

    def report(self, path: str | Path, *, title: str | None = None) -> Path:
        """Write an HTML report with :func:`strategies.report.write_report`; return its path."""
        from strategies import report

        out = report.write_report(
            path,
            equity=self.equity,
            stats=self.stats,
            trades=self.trades,
            bars=self.bars,
            benchmark=self.benchmark,
            title=title or f"{self.strategy} backtest",
        )
        return Path(out) if out is not None else Path(path)


def run_backtest(
    bars: pd.DataFrame,
    strategy: str | Strategy,
    params: Mapping[str, Any] | None = None,
    *,
    cash: float = 100_000.0,
    commission: float | str | Commission = 0.0,
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
) -> BacktestResult:
    """Backtest ``strategy`` on one instrument's bars.

    Args:
        bars: UTC-indexed frame with columns ``open high low close volume``.
        strategy: a library name (see ``strategies.list_strategies()``) or a Strategy.
        params: strategy parameters; missing ones take their defaults.
        cash: starting cash.
        commission: fraction of traded value (``0.002``), ``"ibkr"`` (0.005/share, min 1.00,
            max 1 % of value) or a :class:`Commission`.
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

    Returns:
        A frozen :class:`BacktestResult`.
    """
    strat, p = prepare(strategy, params, allow_short)
    frame, values = _validated(bars)
    index = frame.index
    ppy = bars_per_year(index, periods_per_year)
    ohlc = _ohlc_columns(values)
    target = strat.target(frame, p, indicators=_seeded_cache(frame, values), resolved=True)
    costs = _costs(commission, slippage_bps, strat, stop_loss_pct, take_profit_pct, margin)
    scale, mode = sizing(size, values[:, 3], periods_per_year=ppy)
    equity, positions, trades = simulate(
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
    stats = metrics.summarize(
        equity,
        index=index,
        benchmark=values[:, 3] if benchmark else None,
        positions=positions,
        pnl=trades[:, k.T_PNL],
        return_pct=_trade_returns(trades),
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
        strategy=strat.name,
        bars=frame,
        benchmark=pd.Series(values[:, 3].copy(), index, name="close", copy=False)
        if benchmark
        else None,
    )


def prepare(
    strategy: str | Strategy, params: Mapping[str, Any] | None, allow_short: bool | None
) -> tuple[Strategy, dict[str, Any]]:
    """Resolve a strategy name and its parameters (with the ``allow_short`` override)."""
    import strategies as registry

    strat = registry.get(strategy) if isinstance(strategy, str) else strategy
    given = dict(params or {})
    if allow_short is not None and "allow_short" in strat.params:
        given["allow_short"] = allow_short
    p = strat.resolve(given)
    if allow_short is False and "allow_short" not in strat.params:
        strat = _LongOnly(strat)
    return strat, p


class _LongOnly(Strategy):
    """Wrap a strategy without an ``allow_short`` parameter and drop its short targets."""

    def __init__(self, inner: Strategy) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.params = inner.params  # type: ignore[misc]
        self.stop_loss_pct = inner.stop_loss_pct
        self.take_profit_pct = inner.take_profit_pct

    def signal(self, bars: pd.DataFrame, p: Mapping[str, Any], ind: IndicatorCache) -> Any:
        return np.maximum(self.inner.target(bars, p, indicators=ind, resolved=True), 0.0)

    def targets_batch(
        self,
        bars: pd.DataFrame,
        param_sets: Sequence[Mapping[str, Any]],
        indicators: IndicatorCache,
    ) -> np.ndarray:
        out = self.inner.targets_batch(bars, param_sets, indicators)
        np.maximum(out, 0.0, out=out)
        return out


def validate_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """Return the bars as a float64 frame of ``open high low close volume``, or raise DataError."""
    return _validated(bars)[0]


def _validated(bars: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Validate ``bars``; return the canonical frame and its (n, 5) float64 values.

    The frame owns one fresh (5, n) float64 block (a single copy of the five columns), so
    the caller's later edits never reach a result and strategies may write to it.
    """
    canonical = bars.columns.equals(_COLUMN_INDEX)
    missing = [] if canonical else [c for c in COLUMNS if c not in bars.columns]
    if missing:
        raise DataError(f"bars lack columns {missing}; need {list(COLUMNS)}", field=missing[0])
    index = bars.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise DataError("bars need a timezone-aware (UTC) DatetimeIndex", field="index")
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise DataError("bar timestamps must be strictly increasing", field="index")
    if len(bars) < 2:
        raise DataError(f"need at least 2 bars to backtest, got {len(bars)}", field="bars")
    block = _block_of(bars) if canonical else _block_from_columns(bars)
    values = block.T
    if not k.bars_ok(block):
        raise _bar_error(block, index)
    return _frame_of(block, index), values


def _bar_error(block: np.ndarray, index: pd.DatetimeIndex) -> DataError:
    """Return the DataError naming the first bar that ``k.bars_ok`` rejects, and its rule."""
    prices = block[:4]
    with np.errstate(invalid="ignore"):
        sane = np.isfinite(prices) & (prices > 0)
    if not sane.all():
        t = int((~sane.all(axis=0)).argmax())
        row = int((~sane[:, t]).argmax())
        return DataError(
            f"bar prices must be finite and positive; the bar at {index[t]} has "
            f"{COLUMNS[row]}={prices[row, t]!r} (fix or drop it)",
            field=COLUMNS[row],
        )
    o, h, lo, c = prices
    high_bad = h < np.maximum(o, c)
    t = int((high_bad | (lo > np.minimum(o, c))).argmax())
    name = "high" if high_bad[t] else "low"
    return DataError(
        f"every bar needs low <= min(open, close) and max(open, close) <= high (stops and "
        f"targets read high and low); the bar at {index[t]} has open={o[t]!r}, "
        f"high={h[t]!r}, low={lo[t]!r}, close={c[t]!r} (fix or drop it)",
        field=name,
    )


def _block_of(bars: pd.DataFrame) -> np.ndarray:
    """Return a fresh (5, n) float64 copy of a frame whose columns are exactly COLUMNS."""
    try:
        return np.array(bars.to_numpy(np.float64).T, dtype=np.float64, order="C")
    except (TypeError, ValueError):
        return _block_from_columns(bars)  # names the column that is not numeric


def _block_from_columns(bars: pd.DataFrame) -> np.ndarray:
    """Return a fresh (5, n) float64 block of COLUMNS, column by column (extra columns such
    as the bar store's ``wap`` and ``bar_count`` are never touched)."""
    block = np.empty((len(COLUMNS), len(bars)))
    for row, name in enumerate(COLUMNS):
        column = bars[name]
        try:
            block[row] = column.to_numpy(np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"bar column '{name}' must be numeric, got {column.dtype} ({exc})", field=name
            ) from exc
    return block


def _frame_of(block: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """Return the bar frame over ``block`` (5, n) without copying it."""
    frame = _from_blocks([(block, _COLUMN_PLACE)], index, _COLUMN_INDEX)
    if frame is None:
        return pd.DataFrame(block.T, index=index, columns=_COLUMN_INDEX, copy=False)
    return frame


def _from_blocks(
    blocks: list[tuple[Any, np.ndarray]], index: pd.Index, columns: pd.Index
) -> pd.DataFrame | None:
    """Return a DataFrame adopting ``blocks`` (values, column positions) as they are, or None
    on a pandas (before 3.0) without the block-level constructor.

    The generic constructors infer every column and consolidate (copy) blocks: most of the
    cost of building a small frame on one backtest.
    """
    build = getattr(getattr(pd.api, "internals", None), "create_dataframe_from_blocks", None)
    if build is None:
        return None
    frame: pd.DataFrame = build(blocks, index=index, columns=columns)
    return frame


def _ohlc_columns(values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Return open, high, low, close as contiguous (n, 1) arrays for the kernel."""
    return tuple(np.ascontiguousarray(values[:, i : i + 1]) for i in range(4))


def _seeded_cache(frame: pd.DataFrame, values: np.ndarray) -> IndicatorCache:
    """Return an IndicatorCache that already holds the frame's columns as arrays."""
    return IndicatorCache(frame, columns={c: values[:, i] for i, c in enumerate(COLUMNS)})


def periods_per_year(index: pd.Index) -> float:
    """Return bars per year: 252 for daily or slower, else 252 x bars per 6.5-hour session."""
    if len(index) < 2:
        return 252.0
    stamps = index if isinstance(index, pd.DatetimeIndex) else pd.DatetimeIndex(index)
    # pandas 3 indexes may be in s, ms, us or ns: scale the integer step to seconds.
    units = _UNITS_PER_SECOND[stamps.unit]
    ints = stamps.asi8
    if k.min_step(ints) >= 86_400 * 0.9 * units:
        return 252.0  # the median is at least the smallest step: no need for it
    steps = np.diff(ints)
    # The median of floats: numpy's integer median is several times slower (exact below 2**53).
    step = float(np.median(steps.astype(np.float64))) / units
    return 252.0 if step >= 86_400 * 0.9 else 252.0 * max(1.0, 23_400.0 / step)


def bars_per_year(index: pd.Index, override: float | None = None) -> float:
    """Return ``override`` (validated: finite and > 0) or :func:`periods_per_year` of ``index``."""
    if override is None:
        return periods_per_year(index)
    value = finite_number(override, "periods_per_year")
    if not value > 0:
        raise ParameterError(
            f"periods_per_year must be > 0 (e.g. 252 for daily, 365 for calendar days), "
            f"got {override!r}",
            field="periods_per_year",
        )
    return value


def sizing(size: Size, close: np.ndarray, *, periods_per_year: float) -> tuple[np.ndarray, int]:
    """Return the per-bar sizing multiplier and the kernel's size mode (0 fraction, 1 shares).

    ``periods_per_year`` (the run's :func:`bars_per_year`) annualizes :class:`VolTarget`'s
    realized volatility.
    """
    n = len(close)
    if isinstance(size, FixedShares):
        if size.shares < 1:
            raise ParameterError("FixedShares.shares must be >= 1", field="size")
        return np.full(n, float(size.shares)), 1
    if isinstance(size, VolTarget):
        if size.annual_vol <= 0 or size.lookback < 2:
            raise ParameterError("VolTarget needs annual_vol > 0 and lookback >= 2", field="size")
        rets = pd.Series(np.log(close)).diff()
        vol = rets.rolling(size.lookback).std().to_numpy() * math.sqrt(periods_per_year)
        with np.errstate(divide="ignore", invalid="ignore"):
            frac = np.minimum(size.annual_vol / vol, size.max_fraction)
        return np.nan_to_num(frac, nan=0.0, posinf=size.max_fraction), 0
    if isinstance(size, bool) or not isinstance(size, int | float) or not 0 < size <= 1:
        raise ParameterError(
            f"size must be a fraction of equity in (0, 1], FixedShares(n) or VolTarget(...); "
            f"got {size!r}",
            field="size",
        )
    return np.full(n, float(size)), 0


def _costs(
    commission: float | str | Commission,
    slippage_bps: float,
    strat: Strategy,
    stop_loss_pct: float | None,
    take_profit_pct: float | None,
    margin: float,
) -> np.ndarray:
    """Validate the cost arguments and pack them for the kernel."""
    if isinstance(commission, str):
        if commission.lower() != "ibkr":
            raise ParameterError(
                f"commission must be a fraction, 'ibkr' or a Commission; got {commission!r}",
                field="commission",
            )
        schedule = IBKR_FIXED
    elif isinstance(commission, Commission):
        schedule = commission
    elif isinstance(commission, bool) or not isinstance(commission, int | float | np.number):
        raise ParameterError(
            f"commission must be a fraction, 'ibkr' or a Commission; got {commission!r}",
            field="commission",
        )
    else:
        if not 0 <= finite_number(commission, "commission") < 0.1:
            raise ParameterError(
                f"commission is a fraction of value in [0, 0.1), got {commission}",
                field="commission",
            )
        schedule = Commission(rate=float(commission))
    if not 0 <= finite_number(slippage_bps, "slippage_bps") < 1000:
        raise ParameterError(
            f"slippage_bps must be in [0, 1000), got {slippage_bps}", field="slippage_bps"
        )
    if not 0 < finite_number(margin, "margin") <= 1:
        raise ParameterError(f"margin must be in (0, 1], got {margin}", field="margin")
    sl = stop_loss_pct if stop_loss_pct is not None else strat.stop_loss_pct
    tp = take_profit_pct if take_profit_pct is not None else strat.take_profit_pct
    for name, value in (("stop_loss_pct", sl), ("take_profit_pct", tp)):
        if value is not None and not 0 < finite_number(value, name) < (
            100 if name == "stop_loss_pct" else 10_000
        ):
            raise ParameterError(f"{name} must be a positive percent, got {value}", field=name)
    return _costs_vector(schedule, slippage_bps, sl, tp, margin)


def check_account(cash: float, fill: str) -> None:
    """Raise ParameterError unless ``cash`` is finite and > 0 and ``fill`` is known."""
    if fill not in ("next_open", "close"):
        raise ParameterError(f"fill must be 'next_open' or 'close', got {fill!r}", field="fill")
    if not finite_number(cash, "cash") > 0:
        raise ParameterError(f"cash must be positive, got {cash}", field="cash")


def _costs_vector(
    c: Commission, slippage_bps: float, sl: float | None, tp: float | None, margin: float
) -> np.ndarray:
    out = [0.0] * 8
    out[k.C_RATE] = c.rate
    out[k.C_PER_SHARE] = c.per_share
    out[k.C_MINIMUM] = c.minimum
    out[k.C_MAX_PCT] = c.max_pct
    out[k.C_SLIP] = slippage_bps / 10_000.0
    out[k.C_SL] = math.nan if sl is None else sl / 100.0
    out[k.C_TP] = math.nan if tp is None else tp / 100.0
    out[k.C_MARGIN] = margin
    return np.array(out)


def simulate(
    frame: pd.DataFrame,
    target: np.ndarray,
    scale: np.ndarray,
    mode: int,
    *,
    cash: float,
    costs: np.ndarray,
    fill: Fill,
    tradable: np.ndarray | None = None,
    prices: tuple[np.ndarray, ...] | None = None,
    finalize: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run the kernel; return (equity (n,), positions (n, k), trade rows)."""
    check_account(cash, fill)
    if prices is None:
        ohlc = frame[list(COLUMNS[:4])].to_numpy(np.float64)
        prices = tuple(np.ascontiguousarray(ohlc[:, i : i + 1]) for i in range(4))
    o, h, lo, c = prices
    n, width = c.shape
    ok = tradable if tradable is not None else np.ones((n, width), dtype=np.bool_)
    equity = np.empty(n)
    positions = np.empty((n, width))
    tr = np.empty((2 * n * width + 2, k.TRADE_COLUMNS))
    nt = k.simulate(
        o,
        h,
        lo,
        c,
        ok,
        np.ascontiguousarray(target),
        np.ascontiguousarray(scale),
        mode,
        float(cash),
        costs,
        fill == "close",
        bool(finalize),
        equity,
        positions,
        tr,
    )
    return equity, positions, tr[:nt]


def trades_frame(rows: np.ndarray, index: pd.Index, symbols: Sequence[str]) -> pd.DataFrame:
    """Turn kernel trade rows into the public trades DataFrame."""
    symbol = _labels(rows[:, k.T_SYMBOL].astype(np.intp), _symbol_dtype(tuple(symbols)))
    side = _labels((rows[:, k.T_SIDE] < 0).astype(np.int8), _SIDE_DTYPE)
    n = len(rows)
    floats = np.empty((len(_FLOAT_SLOTS), n))
    for i, slot in enumerate(_FLOAT_SLOTS):
        if slot >= 0:
            floats[i] = rows[:, slot]
    floats[_RETURN_ROW] = _trade_returns(rows)
    if isinstance(index, pd.DatetimeIndex):
        # One (2, n) datetime block for entry and exit times, straight from the int64 stamps.
        at = rows[:, _TIME_SLOTS].T.ravel().astype(np.intp)
        times = index.array.take(at).reshape(2, n)
        blocks = [
            (symbol, _SYMBOL_PLACE),
            (side, _SIDE_PLACE),
            (floats, _FLOAT_PLACE),
            (times, _TIME_PLACE),
        ]
        frame = _from_blocks(blocks, pd.RangeIndex(n), _TRADE_COLUMNS)
        if frame is not None:
            return frame
    columns: dict[str, Any] = {"symbol": symbol, "side": side}
    for i, name in enumerate(_FLOAT_NAMES):
        columns[name] = floats[i]
    columns["entry_time"] = index.take(rows[:, k.T_ENTRY_IDX].astype(np.intp))
    columns["exit_time"] = index.take(rows[:, k.T_EXIT_IDX].astype(np.intp))
    return pd.DataFrame({c: columns[c] for c in TRADE_FRAME_COLUMNS}, copy=False)


def _labels(codes: np.ndarray, dtype: pd.CategoricalDtype) -> pd.Categorical:
    """Return the categorical whose codes (positions in ``dtype``'s categories) are ``codes``."""
    return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


@functools.lru_cache(maxsize=256)
def _symbol_dtype(symbols: tuple[str, ...]) -> pd.CategoricalDtype:
    """Return the categorical dtype of a trades frame's ``symbol`` column."""
    return pd.CategoricalDtype(list(symbols))


def _trade_returns(rows: np.ndarray) -> np.ndarray:
    """Return each trade's pnl in percent of its entry value."""
    out: np.ndarray = rows[:, k.T_PNL] / (rows[:, k.T_ENTRY_PX] * rows[:, k.T_SIZE]) * 100.0
    return out


def __getattr__(name: str) -> Any:
    """Expose ``run_portfolio`` and ``run_batch`` here too (they live in their own modules)."""
    if name == "run_portfolio":
        from strategies.portfolio import run_portfolio

        return run_portfolio
    if name == "run_batch":
        from strategies.batch import run_batch

        return run_batch
    raise AttributeError(f"module 'strategies.engine' has no attribute {name!r}")
