"""``run_batch``: many parameter sets of one strategy on the same bars, in one kernel call.

Targets come from the strategy's ``targets_batch`` (vectorized where the strategy has one,
else one ``target`` call per set over a shared indicator cache); a parallel kernel runs each
set through the engine's own simulation loop, and another reduces each equity curve to the
batch metrics. Sets go through in chunks, so at most two ``CHUNK`` x bars float matrices
(targets and equity, ~20 MB each for 2,520 bars) are alive at once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from core.errors import ParameterError
from strategies import _metric_kernels as mk
from strategies.bars import bar_values, ohlc_columns
from strategies.base import Strategy
from strategies.costs import CommissionSpec, check_account, check_currency
from strategies.metrics import BATCH_KEYS
from strategies.simulation import Fill, prepare, run_costs, seeded_cache, simulate_sets
from strategies.sizing import Size, bars_per_year, sizing

CHUNK = 1024  # parameter sets per kernel call: 1024 x 2,520 bars of targets is ~20 MB


def run_batch(
    bars: pd.DataFrame,
    strategy: str | Strategy,
    param_sets: Sequence[Mapping[str, Any]],
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
    periods_per_year: float | None = None,
    finalize_trades: bool = False,
    currency: str = "USD",
    score_from: int = 0,
) -> pd.DataFrame:
    """Backtest many parameter sets of one strategy on the same bars in one call.

    Indicators are computed once per distinct argument set, targets come as one matrix,
    and one numba kernel runs every set through the same loop as
    :func:`strategies.engine.run_backtest`, so each row equals that set's single backtest.

    Args:
        bars: as for :func:`strategies.engine.run_backtest`.
        strategy: a library name or a Strategy.
        param_sets: one mapping of parameters per row (defaults fill the gaps).
        cash: starting cash.
        commission: as for ``run_backtest``.
        slippage_bps: as for ``run_backtest``.
        fill: as for ``run_backtest``.
        size: as for ``run_backtest``.
        stop_loss_pct: as for ``run_backtest``.
        take_profit_pct: as for ``run_backtest``.
        allow_short: as for ``run_backtest``.
        margin: as for ``run_backtest``.
        periods_per_year: as for ``run_backtest``.
        finalize_trades: as for ``run_backtest``.
        currency: as for ``run_backtest``.
        score_from: the bar the metrics start at: the bars before it only warm the
            indicators up and may leave a position open into it (a walk-forward fold with
            its history); 0: every bar. Trade counts and ratios still cover every bar.

    Returns:
        One row per parameter set: the resolved parameters, the metrics of
        :func:`strategies.metrics.batch_stats`, then ``n_trades``, ``win_rate_pct`` and
        ``profit_factor`` of closed trades. ``table.attrs["currency"]`` records the
        currency (the columns stay numeric).
    """
    code = check_currency(currency)
    frame, values = bar_values(bars)
    if not 0 <= score_from < len(frame):
        raise ParameterError(
            f"score_from={score_from} is outside the {len(frame)} bars: use a bar position "
            "from 0 to the last bar",
            field="score_from",
        )
    strat, _ = prepare(strategy, None, allow_short)
    resolved = _resolved(strat, param_sets, allow_short=allow_short)
    costs = run_costs(
        strat,
        commission=commission,
        currencies=[code],
        slippage_bps=slippage_bps,
        stop_loss_pct=stop_loss_pct,
        take_profit_pct=take_profit_pct,
        margin=margin,
    )
    ppy = bars_per_year(frame.index, periods_per_year)
    scale, mode = sizing(size, values[:, 3], periods_per_year=ppy)
    check_account(cash, fill)
    prices = ohlc_columns(values)
    cache = seeded_cache(frame, values)
    parts = []
    for start in range(0, len(resolved), CHUNK):
        chunk = resolved[start : start + CHUNK]
        targets = strat.targets_batch(frame, chunk, cache)
        equity, counts = simulate_sets(
            prices,
            targets,
            scale=scale,
            mode=mode,
            cash=cash,
            costs=costs,
            fill=fill,
            finalize=finalize_trades,
        )
        del targets
        if score_from:  # the equity before the first scored bar is the base of its return
            equity = np.ascontiguousarray(equity[:, score_from - 1 :])
        stats = mk.batch_core(equity, float(ppy))
        del equity
        parts.append(_rows(chunk, stats, *counts))
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    table.attrs["currency"] = code
    return table


def _resolved(
    strat: Strategy, param_sets: Sequence[Mapping[str, Any]], *, allow_short: bool | None
) -> list[dict[str, Any]]:
    """Return every parameter set resolved, or raise ParameterError naming the bad one."""
    if isinstance(param_sets, str | bytes | Mapping) or not isinstance(param_sets, Sequence):
        raise ParameterError(
            f"param_sets must be a list of parameter mappings, got {type(param_sets).__name__}",
            field="param_sets",
        )
    return [prepare(strat, ps, allow_short)[1] for ps in param_sets]


def _rows(
    chunk: Sequence[Mapping[str, Any]],
    stats: np.ndarray,
    n_tr: np.ndarray,
    n_win: np.ndarray,
    g_win: np.ndarray,
    g_loss: np.ndarray,
) -> pd.DataFrame:
    """Assemble one chunk's rows: parameters, batch metrics, trade counts and ratios."""
    stats[~np.isfinite(stats)] = np.nan
    table = pd.DataFrame(stats, columns=list(BATCH_KEYS))
    table["n_trades"] = n_tr
    with np.errstate(divide="ignore", invalid="ignore"):
        table["win_rate_pct"] = np.where(n_tr > 0, n_win / n_tr * 100.0, np.nan)
        table["profit_factor"] = np.where(g_loss > 0, g_win / g_loss, np.nan)
    return pd.concat([pd.DataFrame(list(chunk)), table], axis=1)
