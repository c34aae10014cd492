"""The outcome of a backtest: :class:`BacktestResult` and the trades frame built from the
kernel's trade rows."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from strategies import _kernels as k
from strategies.bars import from_blocks
from strategies.report import write_report

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
        bars: the validated bars of a single-instrument backtest (None for portfolios).
        benchmark: the buy-and-hold series the stats compare against, when asked for.
        currency: the currency of ``equity``, ``trades`` prices and pnl, and the
            money-valued ``stats`` (the instrument's, or a portfolio's base currency).
    """

    trades: pd.DataFrame
    equity: pd.Series
    positions: Any
    stats: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)
    strategy: str = ""
    bars: pd.DataFrame | None = None
    benchmark: pd.Series | None = None
    currency: str = "USD"

    def report(self, path: str | Path, *, title: str | None = None) -> Path:
        """Write an HTML report with :func:`strategies.report.write_report`; return its path."""
        out = write_report(
            path,
            equity=self.equity,
            stats=self.stats,
            trades=self.trades,
            bars=self.bars,
            benchmark=self.benchmark,
            title=title or f"{self.strategy} backtest",
        )
        return Path(out) if out is not None else Path(path)


def trades_frame(rows: np.ndarray, index: pd.Index, symbols: Sequence[str]) -> pd.DataFrame:
    """Turn kernel trade rows into the public trades DataFrame."""
    symbol = _labels(rows[:, k.T_SYMBOL].astype(np.intp), _symbol_dtype(tuple(symbols)))
    side = _labels((rows[:, k.T_SIDE] < 0).astype(np.int8), _SIDE_DTYPE)
    n = len(rows)
    floats = np.empty((len(_FLOAT_SLOTS), n))
    for i, slot in enumerate(_FLOAT_SLOTS):
        if slot >= 0:
            floats[i] = rows[:, slot]
    floats[_RETURN_ROW] = trade_returns(rows)
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
        frame = from_blocks(blocks, pd.RangeIndex(n), _TRADE_COLUMNS)
        if frame is not None:
            return frame
    columns: dict[str, Any] = {"symbol": symbol, "side": side}
    for i, name in enumerate(_FLOAT_NAMES):
        columns[name] = floats[i]
    columns["entry_time"] = index.take(rows[:, k.T_ENTRY_IDX].astype(np.intp))
    columns["exit_time"] = index.take(rows[:, k.T_EXIT_IDX].astype(np.intp))
    return pd.DataFrame({c: columns[c] for c in TRADE_FRAME_COLUMNS}, copy=False)


def trade_returns(rows: np.ndarray) -> np.ndarray:
    """Return each kernel trade row's pnl in percent of its entry value."""
    out: np.ndarray = rows[:, k.T_PNL] / (rows[:, k.T_ENTRY_PX] * rows[:, k.T_SIZE]) * 100.0
    return out


def _labels(codes: np.ndarray, dtype: pd.CategoricalDtype) -> pd.Categorical:
    """Return the categorical whose codes (positions in ``dtype``'s categories) are ``codes``."""
    return pd.Categorical.from_codes(codes, dtype=dtype, validate=False)


@functools.lru_cache(maxsize=256)
def _symbol_dtype(symbols: tuple[str, ...]) -> pd.CategoricalDtype:
    """Return the categorical dtype of a trades frame's ``symbol`` column."""
    return pd.CategoricalDtype(list(symbols))
