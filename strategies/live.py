"""Live evaluation of a strategy one bar at a time, with exactly the backtest's targets.

:class:`IncrementalEvaluator` is what a strategy runner (``actors.strategy_runner``) and
the parity check share: it is fed completed bars one at a time (or a batch of them) and
answers the target position of the newest bar, computed by the same
:meth:`strategies.base.Strategy.target` that ``run_backtest`` calls.

Why the evaluator keeps its whole history since its anchor (the first bar it was given)
instead of only the last ``warmup`` bars:

* every library strategy but ``buy_hold`` latches entry and exit events into a position
  state (``strategies._signal_kernels.latch``): the target on a bar depends on the last
  event before it, however long ago. ``sma_cross`` with the fast SMA above the slow one
  for the whole window is long if it crossed up before the window, and flat if the data
  started that way; a window of ``warmup`` bars cannot tell the two apart;
* RSI (Wilder's smoothing) and MACD (EMAs) are recursive: a value depends on every bar
  since the series began, so a shorter window gives different numbers (TA-Lib's
  "unstable period"), and an SMA by running sum differs in its last bits too.

Re-evaluating the history since the anchor on each bar makes the target at bar ``t`` equal,
bit for bit, to the full-array target of the same bars at ``t``, for every causal strategy
(see :mod:`strategies.lookahead`), at O(history) per bar: about a millisecond for ten years
of daily bars. ``Strategy.warmup(params)`` still says how much history a runner loads
before its anchor's first actionable bar: every target before it is flat.

Example:
    >>> import numpy as np, pandas as pd, strategies
    >>> idx = pd.date_range("2024-01-01", periods=60, freq="D", tz="UTC")
    >>> close = 100 + np.cumsum(np.random.default_rng(0).normal(0, 1, 60))
    >>> bars = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1,
    ...                      "close": close, "volume": 1.0}, index=idx)
    >>> ev = IncrementalEvaluator("sma_cross", {"fast": 3, "slow": 10}, history=bars[:30])
    >>> full = strategies.get("sma_cross").target(bars, {"fast": 3, "slow": 10})
    >>> all(ev.push(bars.iloc[[t]]) == full[t] for t in range(30, 60))
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError, ParameterError
from strategies.bars import bar_values
from strategies.base import COLUMNS, Strategy
from strategies.simulation import prepare
from strategies.sizing import FixedShares

LiveSize = float | FixedShares
"""How a live target becomes shares: a fraction of the capital, or FixedShares."""


class IncrementalEvaluator:
    """A strategy evaluated on a growing bar history, one completed bar at a time.

    Args:
        strategy: a Strategy (a rule-spec one included) or a library name.
        params: the strategy's parameters (defaults fill the gaps).
        history: bars to start from (the anchor is the first of them); may be empty.

    Raises:
        NotFound: an unknown library name.
        ParameterError: ``params`` do not resolve.
        DataError: ``history`` is not a valid bar frame.
    """

    def __init__(
        self,
        strategy: Strategy | str,
        params: Mapping[str, Any] | None = None,
        *,
        history: pd.DataFrame | None = None,
    ) -> None:
        self.strategy, self.params = prepare(strategy, params, None)
        self.warmup = self.strategy.warmup(self.params)
        self._times = np.empty(0, dtype=np.int64)
        self._block = np.empty((len(COLUMNS), 0))  # one row per column: contiguous columns
        self._target: float | None = None
        if history is not None and len(history):
            self.extend(history)

    def __len__(self) -> int:
        return len(self._times)

    @property
    def anchor(self) -> pd.Timestamp | None:
        """The time of the first bar of the history (None while it is empty)."""
        return pd.Timestamp(self._times[0], tz="UTC") if len(self._times) else None

    @property
    def last_time(self) -> pd.Timestamp | None:
        """The time of the newest bar (None while the history is empty)."""
        return pd.Timestamp(self._times[-1], tz="UTC") if len(self._times) else None

    @property
    def last_close(self) -> float | None:
        """The close of the newest bar (None while the history is empty)."""
        return float(self._block[3, -1]) if len(self._times) else None

    @property
    def ready(self) -> bool:
        """True once the newest bar is past the warm-up (its target may be acted on)."""
        return len(self._times) > self.warmup

    @property
    def target(self) -> float | None:
        """The target of the newest bar (None while the history is empty)."""
        return self._target

    def push(self, bar: pd.DataFrame) -> float:
        """Append one completed bar (a one-row frame) and return its target.

        Raises:
            DataError: the frame has not exactly one row, the bar is not newer than the
                last one, or its values are not a valid bar.
        """
        if len(bar) != 1:
            raise DataError(f"push takes one bar, got {len(bar)}; use extend()", field="bars")
        target = self.extend(bar, skip_old=False)
        assert target is not None
        return target

    def extend(self, bars: pd.DataFrame, *, skip_old: bool = True) -> float | None:
        """Append completed bars and return the target of the newest one.

        Only the newest target is computed: catching up on many bars costs one evaluation.

        Args:
            bars: UTC-indexed bars with columns ``open high low close volume``.
            skip_old: drop bars not newer than the last one (a stream or a bar store may
                hand out bars already seen); when False such a bar is a DataError.

        Returns:
            The newest bar's target, or None when no bar was new (nothing changed).

        Raises:
            DataError: invalid bars (the message names the bar and the column).
        """
        frame = _utc_frame(bars)
        last = self._times[-1] if len(self._times) else None
        times = _stamps(frame)
        if last is not None and skip_old:
            frame = frame[times > last]
            times = _stamps(frame)
        if not len(frame):
            return None
        if last is not None and times[0] <= last:
            raise DataError(
                f"bar at {frame.index[0]} is not after the last bar "
                f"{pd.Timestamp(last, tz='UTC')}: bars must arrive oldest first",
                field="bars",
            )
        values = _checked_values(frame, self._tail())
        self._times = np.concatenate([self._times, times])
        self._block = np.concatenate([self._block, values.T], axis=1)
        self._target = self._evaluate()
        return self._target

    def history(self) -> pd.DataFrame:
        """Return the bars since the anchor (a copy)."""
        return self._frame(slice(None))

    def _frame(self, rows: slice) -> pd.DataFrame:
        times = self._times[rows]
        index = pd.DatetimeIndex(times.view("datetime64[ns]")).tz_localize("UTC")
        columns = {c: self._block[i, rows].copy() for i, c in enumerate(COLUMNS)}
        return pd.DataFrame(columns, index=index)

    def _tail(self) -> pd.DataFrame | None:
        return self._frame(slice(-1, None)) if len(self._times) else None

    def _evaluate(self) -> float:
        return float(self.strategy.target(self.history(), self.params, resolved=True)[-1])


def _utc_frame(bars: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(bars, pd.DataFrame) or not isinstance(bars.index, pd.DatetimeIndex):
        raise DataError("bars must be a DataFrame with a UTC DatetimeIndex", field="bars")
    if bars.index.tz is None:
        raise DataError("bars need a UTC DatetimeIndex; got a naive one", field="bars")
    missing = [c for c in COLUMNS if c not in bars.columns]
    if missing:
        raise DataError(f"bars lack the columns {missing}", field="bars")
    frame = bars[list(COLUMNS)]
    return frame.set_axis(bars.index.tz_convert("UTC").as_unit("ns"), axis=0)


def _stamps(frame: pd.DataFrame) -> np.ndarray:
    """The frame's bar times as int64 nanoseconds since the epoch (UTC)."""
    index = frame.index
    assert isinstance(index, pd.DatetimeIndex)
    return np.asarray(index.asi8, dtype=np.int64)


def _checked_values(frame: pd.DataFrame, tail: pd.DataFrame | None) -> np.ndarray:
    """Validate the new bars (with the last known one, so one bar can be checked too)."""
    joined = frame if tail is None else pd.concat([tail, frame])
    if len(joined) >= 2:
        _, values = bar_values(joined)
        return np.ascontiguousarray(values[len(joined) - len(frame) :])
    values = frame.to_numpy(np.float64)
    if not (np.isfinite(values).all() and (values[:, :4] > 0).all()):
        raise DataError(
            f"bar at {frame.index[0]} has a price that is not finite and positive", field="bars"
        )
    return values


def target_shares(target: float, *, price: float, capital: float, size: LiveSize = 1.0) -> int:
    """Return the signed whole shares a target asks for, sized as the engine sizes entries.

    ``size`` is a fraction of ``capital`` (the engine's fraction of equity: ``|target| x
    size x capital / price`` shares, rounded down) or :class:`FixedShares` (``|target| x
    shares``, rounded down). Commission is the broker's, not counted here.

    Raises:
        ParameterError: ``price`` or ``capital`` is not a finite number > 0, or ``size`` is
            not a fraction in (0, 1] or FixedShares (``field`` names it).
    """
    for name, value in (("price", price), ("capital", capital)):
        if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
            raise ParameterError(f"{name} must be a finite number > 0, got {value!r}", field=name)
    if not math.isfinite(target) or abs(target) > 1:
        raise ParameterError(f"target must be in [-1, 1], got {target!r}", field="target")
    sign = 1 if target > 0 else -1
    if isinstance(size, FixedShares):
        return sign * math.floor(abs(target) * size.shares)
    if isinstance(size, bool) or not isinstance(size, int | float) or not 0 < size <= 1:
        raise ParameterError(
            f"size must be a fraction of the capital in (0, 1] or FixedShares(n), got {size!r}",
            field="size",
        )
    return sign * math.floor(abs(target) * size * capital / price)
