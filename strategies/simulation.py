"""The simulation core shared by ``run_backtest``, ``run_batch`` and ``run_portfolio``.

Each entry point validates its own inputs, then calls the same pieces here: :func:`prepare`
(strategy and parameters), :func:`seeded_cache` (indicators over the bars),
:func:`run_costs` (the kernel's cost vector) and :func:`simulate` or :func:`simulate_sets`
(the one numba account loop in ``strategies._kernels``). Sharing the loop is what makes a
batch row, a one-symbol portfolio and a single backtest equal.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd

import strategies
from core.errors import ParameterError
from strategies import _kernels as k
from strategies.base import COLUMNS, IndicatorCache, Strategy, given_params
from strategies.costs import CommissionSpec, check_account, cost_vector, schedule

Fill = Literal["next_open", "close"]


def prepare(
    strategy: str | Strategy, params: Mapping[str, Any] | None, allow_short: bool | None
) -> tuple[Strategy, dict[str, Any]]:
    """Resolve a strategy name and its parameters (with the ``allow_short`` override).

    Raises:
        NotFound: an unknown strategy name.
        ParameterError: ``strategy`` is neither a name nor a Strategy, ``allow_short`` is
            not None or a bool, or the parameters do not resolve.
    """
    if isinstance(strategy, str):
        strat = strategies.get(strategy)
    elif isinstance(strategy, Strategy):
        strat = strategy
    else:
        raise ParameterError(
            f"strategy must be a library name (see strategies.list_strategies()) or a "
            f"Strategy, got {type(strategy).__name__}",
            field="strategy",
        )
    if allow_short is not None and not isinstance(allow_short, bool):
        raise ParameterError(
            f"allow_short must be True, False or None, got {allow_short!r}", field="allow_short"
        )
    given = given_params(strat.name, params)
    if allow_short is not None and "allow_short" in strat.params:
        given["allow_short"] = allow_short
    p = strat.resolve(given)
    if allow_short is False and "allow_short" not in strat.params:
        strat = LongOnly(strat)
    return strat, p


class LongOnly(Strategy):
    """Wrap a strategy without an ``allow_short`` parameter and drop its short targets."""

    def __init__(self, inner: Strategy) -> None:
        """Wrap ``inner``, keeping its name, parameters and default stops."""
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.params = inner.params  # type: ignore[misc]
        self.stop_loss_pct = inner.stop_loss_pct
        self.take_profit_pct = inner.take_profit_pct

    def signal(self, bars: pd.DataFrame, p: Mapping[str, Any], ind: IndicatorCache) -> Any:
        """Return the inner strategy's targets with shorts replaced by flat."""
        return np.maximum(self.inner.target(bars, p, indicators=ind, resolved=True), 0.0)

    def targets_batch(
        self,
        bars: pd.DataFrame,
        param_sets: Sequence[Mapping[str, Any]],
        indicators: IndicatorCache,
    ) -> np.ndarray:
        """Return the inner strategy's batch targets with shorts replaced by flat."""
        out = self.inner.targets_batch(bars, param_sets, indicators)
        np.maximum(out, 0.0, out=out)
        return out


def seeded_cache(frame: pd.DataFrame, values: np.ndarray) -> IndicatorCache:
    """Return an IndicatorCache that already holds the frame's columns as arrays."""
    return IndicatorCache(frame, columns={c: values[:, i] for i, c in enumerate(COLUMNS)})


def run_costs(
    strat: Strategy,
    *,
    commission: CommissionSpec,
    currencies: Sequence[str],
    slippage_bps: float,
    stop_loss_pct: float | None,
    take_profit_pct: float | None,
    margin: float,
) -> np.ndarray:
    """Return the kernel's cost vector for instruments in ``currencies`` (upper-case codes,
    one per instrument, each choosing its commission schedule); stops default to the
    strategy's own.

    Raises:
        ParameterError: naming the cost argument (or ``currency``) that is invalid.
    """
    return cost_vector(
        [schedule(commission, currency=c) for c in currencies],
        slippage_bps=slippage_bps,
        stop_loss_pct=stop_loss_pct if stop_loss_pct is not None else strat.stop_loss_pct,
        take_profit_pct=take_profit_pct if take_profit_pct is not None else strat.take_profit_pct,
        margin=margin,
    )


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
    fx: np.ndarray | None = None,
    finalize: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run one account through the kernel; return (equity (n,), positions (n, k), trade rows).

    Args:
        frame: the bars (read for prices only when ``prices`` is None).
        target: (n, k) target per bar and instrument.
        scale: (n, k) sizing multiplier from :func:`strategies.sizing.sizing`.
        mode: the sizing mode from :func:`strategies.sizing.sizing`.
        cash: starting cash.
        costs: from :func:`run_costs`.
        fill: ``"next_open"`` or ``"close"``.
        tradable: (n, k) bools, False where an instrument has no bar (all True if None).
        prices: open, high, low, close as (n, k) contiguous arrays, in the account's
            currency.
        fx: (n, k) account-currency units per unit of each instrument's currency, which
            converts the schedules' fixed amounts (None: every instrument is in the
            account's currency).
        finalize: close what is still open at the last close.
    """
    check_account(cash, fill)
    if prices is None:
        ohlc = frame[list(COLUMNS[:4])].to_numpy(np.float64)
        prices = tuple(np.ascontiguousarray(ohlc[:, i : i + 1]) for i in range(4))
    o, h, lo, c = prices
    n, width = c.shape
    ok = tradable if tradable is not None else np.ones((n, width), dtype=np.bool_)
    rates = np.empty((0, width)) if fx is None else np.ascontiguousarray(fx)
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
        rates,
        fill == "close",
        bool(finalize),
        equity,
        positions,
        tr,
    )
    return equity, positions, tr[:nt]


def simulate_sets(
    prices: tuple[np.ndarray, ...],
    targets: np.ndarray,
    *,
    scale: np.ndarray,
    mode: int,
    cash: float,
    costs: np.ndarray,
    fill: Fill,
    finalize: bool,
) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Run one single-instrument account per column of ``targets`` (n, m), in parallel.

    Returns:
        Each set's equity (m, n), and its closed-trade counts, winning-trade counts, gross
        profit and gross loss (each (m,)).
    """
    n, m = targets.shape
    equity = np.empty((m, n))
    kernel: Any = k.simulate_batch  # a numba dispatcher: typed by its arguments
    counts = kernel(
        *prices,
        np.ones((n, 1), dtype=np.bool_),
        np.ascontiguousarray(targets.T),  # Fortran-ordered targets: no copy
        np.ascontiguousarray(scale[:, None]),
        mode,
        float(cash),
        costs,
        np.empty((0, 1)),
        fill == "close",
        bool(finalize),
        equity,
    )
    return equity, tuple(counts)
