"""Walk-forward analysis: choose parameters in sample, trade them out of sample, fold by fold.

:func:`fold_windows` cuts a bar index into folds, each an in-sample (IS) window followed by
the out-of-sample (OOS) window right after it (in :mod:`optimize.folds`, re-exported here
with :class:`Fold` and :class:`Windows`). :func:`walk_forward` asks an optimizer for
each fold's parameters from that fold's IS bars alone, backtests them on its OOS bars, and
chains the OOS runs into one equity curve. The optimizer is any callable of the
:data:`Optimizer` shape: :func:`grid_optimizer` (every set in one ``run_batch`` call per
fold) is one; an Optuna study can be another.

Example:
    >>> import numpy as np, pandas as pd
    >>> idx = pd.date_range("2015-01-01", periods=2000, freq="B", tz="UTC")
    >>> close = 100 * np.exp(np.cumsum(np.random.default_rng(1).normal(0, 0.01, 2000)))
    >>> bars = pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99,
    ...                      "close": close, "volume": 1e6}, index=idx)
    >>> grid = [{"fast": f, "slow": s} for f in (5, 10, 20) for s in (50, 100)]
    >>> wf = walk_forward(bars, "sma_cross", grid_optimizer("sma_cross", grid),
    ...                   Windows(in_sample="2Y", out_of_sample="6M"), commission=0.001)
    >>> len(wf.folds), wf.equity.index[0] == idx[idx.searchsorted(idx[0] + pd.DateOffset(years=2))]
    (11, True)
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from core.errors import ValidationError
from optimize.folds import Fold, Span, Windows, fold_windows
from strategies import metrics
from strategies.bars import bar_values
from strategies.base import IndicatorCache, Strategy
from strategies.costs import CommissionSpec, check_account
from strategies.engine import run_backtest, run_batch
from strategies.simulation import Fill, prepare
from strategies.sizing import Size, bars_per_year

__all__ = [
    "BATCH_METRICS",
    "RUN_OPTIONS",
    "Chosen",
    "Direction",
    "Fold",
    "FoldContext",
    "GridOptimizer",
    "Optimizer",
    "Span",
    "WalkForwardResult",
    "Windows",
    "best_trial",
    "efficiency",
    "fold_windows",
    "grid_optimizer",
    "walk_forward",
]

Direction = Literal["maximize", "minimize"]
BATCH_METRICS = (*metrics.BATCH_KEYS, "n_trades", "win_rate_pct", "profit_factor")
"""The metrics a :func:`grid_optimizer` can rank by (the columns of ``run_batch``)."""
RUN_OPTIONS = frozenset(
    {"cash", "commission", "slippage_bps", "fill", "size", "stop_loss_pct"}
    | {"take_profit_pct", "allow_short", "margin", "periods_per_year", "finalize_trades"}
    | {"currency"}
)
"""The keyword arguments ``run_batch`` and ``run_backtest`` share (costs and options)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FoldContext:
    """What an optimizer knows about the fold besides its IS bars.

    Attributes:
        fold: the fold being optimized.
        strategy: the walk-forward's strategy.
        options: the walk-forward's ``run_batch``/``run_backtest`` keyword arguments (costs,
            sizing, fill, ``periods_per_year`` resolved over all bars; a copy per fold).
            Evaluate trials with them so IS and OOS runs price trades alike.
    """

    fold: Fold
    strategy: Strategy
    options: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class Chosen:
    """An optimizer's answer for one fold.

    Attributes:
        params: the chosen parameters.
        metric: the name of the IS metric the optimizer ranked by.
        value: that metric of ``params`` on the IS bars.
        trials: how many parameter sets were evaluated.
        trial_values: the IS metric of every trial, in trial order (NaN where undefined),
            for overfitting statistics (deflated Sharpe ratio, PBO).
    """

    params: dict[str, Any]
    metric: str
    value: float
    trials: int
    trial_values: np.ndarray


Optimizer = Callable[[pd.DataFrame, FoldContext], Chosen]
"""Chooses a fold's parameters from its in-sample bars only."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GridOptimizer:
    """Evaluate every parameter set with one ``run_batch`` call; keep the best (an Optimizer).

    Build it with :func:`grid_optimizer`. Only finite metric values are ranked; a tie goes to
    the set listed first. Plain data, so it pickles (to a Ray worker, say) with its grid.
    """

    strategy: str | Strategy
    param_sets: tuple[Mapping[str, Any], ...]
    metric: str = "sharpe"
    direction: Direction = "maximize"
    costs: Mapping[str, Any] = field(default_factory=dict)

    def __call__(self, bars: pd.DataFrame, ctx: FoldContext) -> Chosen:
        """Return the best set on ``bars`` under ``ctx.options`` overridden by ``costs``."""
        name = self.strategy if isinstance(self.strategy, str) else self.strategy.name
        if name != ctx.strategy.name:
            raise ValidationError(
                f"the grid is for {name} but the walk-forward runs {ctx.strategy.name}",
                field="strategy",
            )
        options = {**ctx.options, **self.costs}
        table = run_batch(bars, self.strategy, list(self.param_sets), **options)
        values = table[self.metric].to_numpy(np.float64, copy=True)
        best = best_trial(values, self.direction)
        if best is None:
            raise ValidationError(
                f"fold {ctx.fold.number}: {self.metric} is undefined for all "
                f"{len(values)} parameter sets in sample (e.g. no trades); choose another "
                f"metric or a longer in_sample",
                field="metric",
            )
        values.flags.writeable = False
        params = prepare(self.strategy, self.param_sets[best], options.get("allow_short"))[1]
        return Chosen(params=params, metric=self.metric, value=float(values[best]),
                      trials=len(values), trial_values=values)  # fmt: skip


def grid_optimizer(
    strategy: str | Strategy,
    param_sets: Sequence[Mapping[str, Any]],
    *,
    metric: str = "sharpe",
    direction: Direction = "maximize",
    **costs: Any,
) -> GridOptimizer:
    """Return an optimizer that ranks ``param_sets`` of ``strategy`` by an IS metric.

    Args:
        strategy: a library name or a Strategy (the walk-forward's own).
        param_sets: the grid, one mapping per set (defaults fill the gaps).
        metric: a ``run_batch`` column (see :data:`BATCH_METRICS`).
        direction: ``"maximize"`` or ``"minimize"``.
        **costs: ``run_batch`` options for the IS runs only, overriding the walk-forward's
            (e.g. a harsher ``commission``); normally none.

    Raises:
        ValidationError: naming the field: an unknown metric, direction or option, an empty
            grid; ParameterError for a set that does not resolve.
    """
    if metric not in BATCH_METRICS:
        raise ValidationError(_unknown("metric", metric, BATCH_METRICS), field="metric")
    if direction not in ("maximize", "minimize"):
        raise ValidationError(
            f"direction must be 'maximize' or 'minimize', got {direction!r}", field="direction"
        )
    for key in costs:
        if key not in RUN_OPTIONS:
            raise ValidationError(_unknown("run_batch option", key, RUN_OPTIONS), field=key)
    if isinstance(param_sets, str | bytes | Mapping) or not isinstance(param_sets, Sequence):
        raise ValidationError("param_sets must be a list of mappings", field="param_sets")
    if not param_sets:
        raise ValidationError("param_sets is empty: give at least one set", field="param_sets")
    for p in param_sets:
        prepare(strategy, p, costs.get("allow_short"))  # fail now, not in fold 0
    return GridOptimizer(strategy=strategy, param_sets=tuple(param_sets), metric=metric,
                         direction=direction, costs=dict(costs))  # fmt: skip


def best_trial(values: np.ndarray, direction: Direction) -> int | None:
    """Return the position of the best finite value (the first of ties), or None."""
    finite = np.isfinite(values)
    if not finite.any():
        return None
    if direction == "maximize":
        return int(np.argmax(np.where(finite, values, -np.inf)))
    return int(np.argmin(np.where(finite, values, np.inf)))


def _unknown(what: str, name: Any, known: Sequence[str] | frozenset[str]) -> str:
    close = difflib.get_close_matches(str(name), list(known), n=1)
    hint = f"; did you mean '{close[0]}'?" if close else f"; one of {', '.join(sorted(known))}"
    return f"unknown {what} {name!r}{hint}"


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class WalkForwardResult:
    """The outcome of :func:`walk_forward`.

    Attributes:
        folds: one row per fold: ``fold``; ``is_start is_end oos_start oos_end`` (bar
            positions, ends exclusive); ``is_first is_last oos_first oos_last`` (timestamps
            of the windows' first and last bars); ``params``; ``is_metric`` (the
            optimizer's value) and ``oos_metric`` (``metric`` of the fold's OOS run);
            ``is_return_ann`` and ``oos_return_ann`` (CAGR in percent of the chosen
            parameters' IS backtest and of the OOS run); ``trials``.
        equity: the chained OOS equity, one value per OOS bar.
        returns: its per-bar simple returns (the first against the starting cash).
        positions: shares held after each OOS bar.
        trades: every OOS trade, with the ``fold`` it belongs to.
        stats: :func:`strategies.metrics.compute_stats` of the chained OOS run.
        wfe: walk-forward efficiency (see :func:`efficiency`), NaN when undefined.
        wfe_reason: why ``wfe`` is NaN, else None.
        chosen: each fold's :class:`Chosen`, in fold order.
        metric: the name of ``oos_metric``.
        currency: the currency of the money columns.
    """

    folds: pd.DataFrame
    equity: pd.Series
    returns: pd.Series
    positions: pd.Series
    trades: pd.DataFrame
    stats: dict[str, float]
    wfe: float
    wfe_reason: str | None
    chosen: tuple[Chosen, ...]
    metric: str
    currency: str


def walk_forward(
    bars: pd.DataFrame,
    strategy: str | Strategy,
    optimizer: Optimizer,
    windows: Windows | Sequence[Fold],
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
    finalize_trades: bool = True,
    currency: str = "USD",
    metric: str | None = None,
    warmup: int | None = None,
) -> WalkForwardResult:
    """Optimize on each fold's IS bars, trade the choice on its OOS bars, chain the folds.

    Each OOS run is honest: it sees no bar at or after ``oos_end``, it starts flat with the
    previous fold's ending equity as cash (the first fold: ``cash``), and its indicators
    are warmed up on the ``warmup`` bars before ``oos_start``. The engine has no start
    argument, so the run is ``run_backtest`` over ``bars[oos_start - warmup : oos_end]``
    with the strategy's targets forced to 0 on the warm-up bars: no order fills before
    ``oos_start`` (with ``fill="next_open"`` the warm-up's last target, decided at the
    close before ``oos_start``, fills at ``oos_start``'s open; with ``"close"`` the first
    fill is at ``oos_start``'s close). The equity is therefore exactly the cash up to
    ``oos_start``, and the fold's curve is taken from there.

    Args:
        bars: as for :func:`strategies.engine.run_backtest`.
        strategy: a library name or a Strategy.
        optimizer: chooses each fold's parameters (see :data:`Optimizer`).
        windows: a :class:`Windows` or folds from :func:`fold_windows`.
        cash: starting cash of the first fold (and of every IS run).
        commission: as for ``run_backtest``.
        slippage_bps: as for ``run_backtest``.
        fill: as for ``run_backtest``.
        size: as for ``run_backtest``.
        stop_loss_pct: as for ``run_backtest``.
        take_profit_pct: as for ``run_backtest``.
        allow_short: as for ``run_backtest``.
        margin: as for ``run_backtest``.
        periods_per_year: as for ``run_backtest``, resolved once over all ``bars``.
        finalize_trades: close each fold's position at its last OOS close (costs paid), so
            the next fold starts from cash actually held; False hands the marked value on.
        currency: as for ``run_backtest``.
        metric: the OOS metric reported per fold (a key of ``compute_stats``); None uses
            the optimizer's metric.
        warmup: bars before ``oos_start`` to warm indicators up on; None uses the fold's IS
            bars.

    Raises:
        ValidationError: naming the field (``windows``, ``metric``, ``warmup``,
            ``optimizer``, an engine argument, ...).
    """
    check_account(cash, fill)
    frame, _ = bar_values(bars)
    folds = _folds(windows, frame.index)
    if warmup is not None and (
        not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 1
    ):
        raise ValidationError(
            f"warmup must be a whole number of bars >= 1, got {warmup!r}", field="warmup"
        )
    if metric is not None and metric not in metrics.STAT_KEYS:
        raise ValidationError(_unknown("metric", metric, metrics.STAT_KEYS), field="metric")
    strat = prepare(strategy, None, None)[0]
    options: dict[str, Any] = {
        "cash": cash, "commission": commission, "slippage_bps": slippage_bps, "fill": fill,
        "size": size, "stop_loss_pct": stop_loss_pct, "take_profit_pct": take_profit_pct,
        "allow_short": allow_short, "margin": margin, "finalize_trades": finalize_trades,
        "periods_per_year": bars_per_year(frame.index, periods_per_year), "currency": currency,
    }  # fmt: skip
    chosen: list[Chosen] = []
    runs: list[_OosRun] = []
    rows: list[dict[str, Any]] = []
    for fold in folds:
        pick, run, row = _walk_fold(
            frame, fold, strat, optimizer, options=options, warmup=warmup, metric=metric,
            cash=float(runs[-1].equity[-1]) if runs else float(cash),
        )  # fmt: skip
        metric = metric or pick.metric  # the first fold's optimizer metric, unless given
        chosen.append(pick)
        runs.append(run)
        rows.append(row)
    return _result(
        frame, folds, runs, rows, chosen, cash=float(cash), metric=str(metric), options=options
    )


def _walk_fold(
    frame: pd.DataFrame, fold: Fold, strat: Strategy, optimizer: Optimizer, *,
    options: Mapping[str, Any], warmup: int | None, metric: str | None, cash: float,
) -> tuple[Chosen, _OosRun, dict[str, Any]]:  # fmt: skip
    """Optimize one fold on its IS bars, then run the choice out of sample from ``cash``."""
    is_bars = frame.iloc[fold.is_start : fold.is_end]
    pick = optimizer(is_bars, FoldContext(fold=fold, strategy=strat, options=dict(options)))
    if not isinstance(pick, Chosen):
        raise ValidationError(
            f"the optimizer must return a Chosen, got {type(pick).__name__}", field="optimizer"
        )
    name = metric or pick.metric
    if name not in metrics.STAT_KEYS:
        raise ValidationError(
            f"the optimizer ranks by {name!r}, which compute_stats does not report; pass "
            f"metric= (one of {', '.join(metrics.STAT_KEYS)}) for the out-of-sample metric",
            field="metric",
        )
    is_run = run_backtest(is_bars, strat, pick.params, benchmark=False, **options)
    run = _run_oos(frame, fold, strat, pick.params, cash=cash, warmup=warmup, options=options)
    row = {
        "fold": fold.number, "is_start": fold.is_start, "is_end": fold.is_end,
        "oos_start": fold.oos_start, "oos_end": fold.oos_end,
        "is_first": frame.index[fold.is_start], "is_last": frame.index[fold.is_end - 1],
        "oos_first": frame.index[fold.oos_start], "oos_last": frame.index[fold.oos_end - 1],
        "params": dict(pick.params), "is_metric": float(pick.value),
        "oos_metric": run.stats[name], "is_return_ann": is_run.stats["cagr_pct"],
        "oos_return_ann": run.stats["cagr_pct"], "trials": int(pick.trials),
    }  # fmt: skip
    return pick, run, row


def efficiency(
    is_return_ann: Sequence[float] | pd.Series, oos_return_ann: Sequence[float] | pd.Series
) -> tuple[float, str | None]:
    """Return Pardo's walk-forward efficiency and, when it is NaN, why.

    WFE = mean annualized OOS return / mean annualized IS return over the folds (Robert
    Pardo, *The Evaluation and Optimization of Trading Strategies*, 2008), as a ratio: 0.6
    means the OOS runs earned 60 % of the annual rate the optimization found in sample.
    It is undefined (NaN) when a fold's return is undefined or the mean IS return is not
    positive (a ratio to a loss or to nothing says nothing about robustness).
    """
    is_ann = np.asarray(is_return_ann, dtype=np.float64)
    oos_ann = np.asarray(oos_return_ann, dtype=np.float64)
    if not len(is_ann) or not (np.isfinite(is_ann).all() and np.isfinite(oos_ann).all()):
        return math.nan, "an annualized return is undefined in some fold"
    mean_is = float(is_ann.mean())
    if mean_is <= 0:
        return math.nan, (
            f"the mean annualized in-sample return is {mean_is:.4g} % (not positive), so the "
            f"ratio of out-of-sample to in-sample return is meaningless"
        )
    return float(oos_ann.mean()) / mean_is, None


def _folds(windows: Any, index: pd.Index) -> tuple[Fold, ...]:
    """Return the folds of ``windows`` over ``index``, checked to be chainable."""
    if isinstance(windows, Windows):
        return windows.folds(index)
    if isinstance(windows, str | bytes) or not isinstance(windows, Sequence) or not windows:
        raise ValidationError(
            "windows must be a Windows or a non-empty list of Folds", field="windows"
        )
    end = 1
    for f in windows:
        ok = isinstance(f, Fold) and 0 <= f.is_start and f.is_start + 2 <= f.is_end <= f.oos_start
        if not (ok and end <= f.oos_start < f.oos_end <= len(index)):
            raise ValidationError(
                f"fold {getattr(f, 'number', f)!r} is not a fold of these {len(index)} bars with "
                f">= 2 IS bars and an OOS window after the previous one; build folds with "
                f"fold_windows(bars.index, ...)",
                field="windows",
            )
        end = f.oos_end
    return tuple(windows)


class _FlatBefore(Strategy):
    """Wrap a strategy so its targets are 0 before bar ``first``: nothing fills earlier."""

    def __init__(self, inner: Strategy, first: int) -> None:
        self.inner, self.first = inner, first
        self.name = inner.name  # type: ignore[misc]
        self.params = inner.params  # type: ignore[misc]
        self.stop_loss_pct = inner.stop_loss_pct
        self.take_profit_pct = inner.take_profit_pct

    def check(self, p: Mapping[str, Any]) -> None:
        self.inner.check(p)

    def signal(self, bars: pd.DataFrame, p: Mapping[str, Any], ind: IndicatorCache) -> Any:
        out = np.array(self.inner.target(bars, p, indicators=ind, resolved=True), dtype=np.float64)
        out[: self.first] = 0.0
        return out


@dataclass(frozen=True, slots=True, kw_only=True, eq=False)
class _OosRun:
    """One fold's OOS run from the bar before ``oos_start`` (the anchor, at the cash)."""

    equity: np.ndarray
    positions: np.ndarray
    trades: pd.DataFrame | None
    stats: dict[str, float]


def _run_oos(
    frame: pd.DataFrame, fold: Fold, strat: Strategy, params: Mapping[str, Any], *,
    cash: float, warmup: int | None, options: Mapping[str, Any],
) -> _OosRun:  # fmt: skip
    """Backtest ``params`` on the fold's OOS bars after a flat warm-up (see walk_forward)."""
    span = fold.oos_start - fold.is_start if warmup is None else warmup
    start = max(0, fold.oos_start - span)
    lead = fold.oos_start - start  # >= 1: the anchor bar before oos_start is in the run
    anchor = slice(fold.oos_start - 1, fold.oos_end)
    trades = None
    if cash <= 0:  # an earlier fold was ruined: nothing left to trade, equity stays 0
        equity = positions = np.zeros(anchor.stop - anchor.start)
    else:
        first = max(lead - 1 if options["fill"] == "next_open" else lead, 0)
        run = run_backtest(
            frame.iloc[start : fold.oos_end], _FlatBefore(strat, first), params,
            benchmark=False, **{**options, "cash": cash},
        )  # fmt: skip
        equity = run.equity.to_numpy()[lead - 1 :]
        positions = run.positions.to_numpy()[lead - 1 :]
        trades = run.trades
    stats = _stats(frame, anchor, equity, positions, trades, options)
    return _OosRun(equity=equity[1:], positions=positions[1:], trades=trades, stats=stats)


def _stats(
    frame: pd.DataFrame, where: slice | np.ndarray, equity: np.ndarray, positions: np.ndarray,
    trades: pd.DataFrame | None, options: Mapping[str, Any],
) -> dict[str, float]:  # fmt: skip
    """compute_stats of an equity curve over ``frame``'s bars at ``where`` (anchor first)."""
    index = frame.index[where]
    return metrics.compute_stats(
        pd.Series(equity, index),
        trades=trades,
        positions=positions,
        benchmark=pd.Series(frame["close"].to_numpy()[where], index),
        periods_per_year=options["periods_per_year"],
    )


def _result(
    frame: pd.DataFrame, folds: Sequence[Fold], runs: Sequence[_OosRun], rows: list[dict[str, Any]],
    chosen: list[Chosen], *, cash: float, metric: str, options: Mapping[str, Any],
) -> WalkForwardResult:  # fmt: skip
    """Chain the folds' OOS runs into one curve and assemble the result."""
    bars_at = np.concatenate(
        [[folds[0].oos_start - 1]] + [np.arange(f.oos_start, f.oos_end) for f in folds]
    )
    equity = np.concatenate([[cash]] + [r.equity for r in runs])
    positions = np.concatenate([[0.0]] + [r.positions for r in runs])
    trades = pd.concat(
        [
            r.trades.assign(fold=f.number)
            for f, r in zip(folds, runs, strict=True)
            if r.trades is not None
        ],
        ignore_index=True,
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        returns = np.where(equity[:-1] > 0, equity[1:] / equity[:-1] - 1.0, 0.0)
    index = frame.index[bars_at[1:]]
    table = pd.DataFrame(rows)
    table.attrs["metric"] = metric
    wfe, reason = efficiency(table["is_return_ann"], table["oos_return_ann"])
    return WalkForwardResult(
        folds=table,
        equity=pd.Series(equity[1:], index, name="equity"),
        returns=pd.Series(returns, index, name="returns"),
        positions=pd.Series(positions[1:], index, name="position"),
        trades=trades,
        stats=_stats(frame, bars_at, equity, positions, trades, options),
        wfe=wfe,
        wfe_reason=reason,
        chosen=tuple(chosen),
        metric=metric,
        currency=str(options["currency"]).upper(),
    )
