"""Walk-forward analysis over the real engine (fold boundaries are in test_folds.py): the
per-fold choice against a brute-force search, the chained out-of-sample equity against
independent runs, and no look-ahead (later bars change nothing that came before)."""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest

import strategies
from core.errors import ParameterError, ValidationError
from optimize.walkforward import (
    Chosen,
    Fold,
    FoldContext,
    Windows,
    best_trial,
    efficiency,
    fold_windows,
    grid_optimizer,
    walk_forward,
)
from strategies import metrics
from strategies.engine import run_backtest
from tests.unit.strategies.scripted import Scripted

COSTS: dict[str, Any] = {"commission": 0.001, "slippage_bps": 2.0}
# What walk_forward runs the IS trials with (it closes each run's position at its end).
OPTIONS: dict[str, Any] = {**COSTS, "finalize_trades": True}
GRID = [{"fast": f, "slow": s} for f in (3, 5, 10, 20, 40) for s in (30, 60, 100, 150) if f < s]
WINDOWS = Windows(in_sample="2Y", out_of_sample="6M")


def daily(seed: int, n: int = 2087, start: str = "2015-01-01") -> pd.DataFrame:
    """A seeded random walk of ``n`` business days (UTC midnight), like conftest's ``daily``."""
    idx = pd.date_range(start, periods=n, freq="B", tz="UTC")
    rng = np.random.default_rng(seed)
    close = 40 * np.exp(np.cumsum(rng.normal(0.0004, 0.015, n)))
    opens = close * np.exp(rng.normal(0, 0.004, n))
    return pd.DataFrame(
        {"open": opens, "high": np.maximum(opens, close) * 1.01,
         "low": np.minimum(opens, close) * 0.99, "close": close, "volume": 1e5},
        index=idx,
    )  # fmt: skip


def rescaled(bars: pd.DataFrame, rows: slice, seed: int = 99) -> pd.DataFrame:
    """Return ``bars`` with the prices of ``rows`` moved by random factors (still valid bars)."""
    out = bars.copy()
    n = len(out.iloc[rows])
    factor = np.exp(np.random.default_rng(seed).normal(0, 0.05, n))
    cols = ["open", "high", "low", "close"]
    out.iloc[rows, [out.columns.get_loc(c) for c in cols]] = out.iloc[rows][cols].mul(
        factor, axis=0
    )
    return out


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    return daily(7)


@pytest.fixture(scope="module")
def result(bars: pd.DataFrame) -> Any:
    return walk_forward(bars, "sma_cross", grid_optimizer("sma_cross", GRID), WINDOWS, **COSTS)


# --- the optimizer ------------------------------------------------------------------------


def brute_force(
    is_bars: pd.DataFrame, metric: str, direction: str, **costs: Any
) -> tuple[int, np.ndarray]:
    """Every grid set through run_backtest; the best by ``metric`` (first of ties), and all."""
    options = {**OPTIONS, **costs}
    values = np.array(
        [run_backtest(is_bars, "sma_cross", p, **options).stats[metric] for p in GRID]
    )
    sign = 1.0 if direction == "maximize" else -1.0
    ranked = np.where(np.isfinite(values), sign * values, -np.inf)
    return int(np.argmax(ranked)), values


def test_chosen_params_per_fold_equal_a_brute_force_search_of_the_is_bars(bars, result):
    for fold, pick in zip(
        fold_windows(bars.index, in_sample="2Y", out_of_sample="6M"), result.chosen, strict=True
    ):
        best, values = brute_force(bars.iloc[fold.is_start : fold.is_end], "sharpe", "maximize")
        assert pick.params == strategies.get("sma_cross").resolve(GRID[best])
        assert pick.value == values[best]
        assert pick.trials == len(GRID)
        np.testing.assert_array_equal(pick.trial_values, values)
    assert result.folds["trials"].tolist() == [len(GRID)] * len(result.chosen)
    assert result.folds["params"].tolist() == [c.params for c in result.chosen]


@pytest.mark.parametrize(
    ("metric", "direction"), [("max_drawdown_pct", "maximize"), ("volatility_pct", "minimize")]
)
def test_grid_optimizer_ranks_by_any_batch_metric_in_either_direction(bars, metric, direction):
    fold = fold_windows(bars.index, in_sample="2Y", out_of_sample="6M")[3]
    is_bars = bars.iloc[fold.is_start : fold.is_end]
    ctx = FoldContext(fold=fold, strategy=strategies.get("sma_cross"), options=OPTIONS)
    pick = grid_optimizer("sma_cross", GRID, metric=metric, direction=direction)(is_bars, ctx)
    best, values = brute_force(is_bars, metric, direction)
    assert (pick.params["fast"], pick.params["slow"], pick.value) == (
        GRID[best]["fast"],
        GRID[best]["slow"],
        values[best],
    )


def test_best_trial_takes_the_first_of_ties_and_never_nan():
    values = np.array([np.nan, 1.0, 3.0, 3.0, np.nan, -2.0, -2.0])
    assert best_trial(values, "maximize") == 2
    assert best_trial(values, "minimize") == 5
    assert best_trial(np.array([np.nan, np.nan]), "maximize") is None


def test_grid_optimizer_breaks_ties_by_grid_order_and_never_picks_nan(bars):
    # On 60 bars a 100-bar SMA never exists: those sets never trade (0 trades, NaN Sharpe).
    grid = [{"fast": 5, "slow": 20}, {"fast": 5, "slow": 100}, {"fast": 10, "slow": 100}]
    fold = Fold(number=0, is_start=0, is_end=60, oos_start=60, oos_end=80)
    ctx = FoldContext(fold=fold, strategy=strategies.get("sma_cross"), options=OPTIONS)
    fewest = grid_optimizer("sma_cross", grid, metric="n_trades", direction="minimize")
    pick = fewest(bars.iloc[:60], ctx)
    assert (pick.params["slow"], pick.params["fast"], pick.value) == (100, 5, 0.0)
    assert pick.trial_values[0] > 0 and pick.trial_values[1:].tolist() == [0.0, 0.0]
    pick = grid_optimizer("sma_cross", grid)(bars.iloc[:60], ctx)
    assert np.isnan(pick.trial_values[1:]).all() and pick.params["slow"] == 20
    assert not pick.trial_values.flags.writeable


def test_grid_optimizer_and_fold_context_pickle_and_answer_alike(bars):
    fold = WINDOWS.folds(bars.index)[2]
    ctx = FoldContext(fold=fold, strategy=strategies.get("sma_cross"), options=OPTIONS)
    optimizer = grid_optimizer("sma_cross", GRID, commission=0.002)
    copy, ctx_copy = pickle.loads(pickle.dumps((optimizer, ctx)))
    is_bars = bars.iloc[fold.is_start : fold.is_end]
    mine, theirs = optimizer(is_bars, ctx), copy(is_bars, ctx_copy)
    assert (mine.params, mine.value) == (theirs.params, theirs.value)
    # The optimizer's own commission overrides the walk-forward's for the IS runs.
    best, values = brute_force(is_bars, "sharpe", "maximize", commission=0.002)
    assert mine.value == values[best]


def test_grid_optimizer_refuses_a_fold_where_every_metric_is_nan(bars):
    fold = Fold(number=4, is_start=0, is_end=60, oos_start=60, oos_end=80)
    ctx = FoldContext(fold=fold, strategy=strategies.get("sma_cross"), options=OPTIONS)
    with pytest.raises(ValidationError, match="fold 4: sharpe is undefined") as err:
        grid_optimizer("sma_cross", [{"fast": 5, "slow": 100}])(bars.iloc[:60], ctx)
    assert err.value.field == "metric"


@pytest.mark.parametrize(
    ("kwargs", "field", "says"),
    [
        ({"metric": "sharp"}, "metric", "did you mean 'sharpe'"),
        ({"direction": "up"}, "direction", "'maximize' or 'minimize'"),
        ({"comission": 0.001}, "comission", "did you mean 'commission'"),
    ],
)
def test_grid_optimizer_rejects_bad_arguments_naming_the_field(kwargs, field, says):
    with pytest.raises(ValidationError, match=says) as err:
        grid_optimizer("sma_cross", GRID, **kwargs)
    assert err.value.field == field


def test_grid_optimizer_rejects_an_empty_grid_and_bad_sets_up_front():
    with pytest.raises(ValidationError) as err:
        grid_optimizer("sma_cross", [])
    assert err.value.field == "param_sets"
    with pytest.raises(ParameterError) as perr:
        grid_optimizer("sma_cross", [{"fast": 50, "slow": 20}])
    assert perr.value.field == "fast"


# --- walk_forward -------------------------------------------------------------------------


def oracle_chain(
    bars: pd.DataFrame, folds: tuple[Fold, ...], params: list[dict[str, Any]], **options: Any
) -> tuple[np.ndarray, list[Any]]:
    """Each fold's OOS run done independently: sma_cross targets over the IS + OOS bars,
    zeroed up to the last bar whose target could fill before oos_start, replayed by a
    Scripted strategy; each fold starts with the previous one's final equity."""
    cash, curves, runs = 100_000.0, [], []
    for fold, p in zip(folds, params, strict=True):
        window = bars.iloc[fold.is_start : fold.oos_end]
        lead = fold.oos_start - fold.is_start
        targets = strategies.get("sma_cross").target(window, p).copy()
        targets[: lead - 1 if options.get("fill", "next_open") == "next_open" else lead] = 0.0
        run = run_backtest(
            window, Scripted(targets), None, cash=cash, finalize_trades=True, **options
        )
        assert (run.equity.iloc[:lead] == cash).all()  # flat, untouched cash before OOS
        curves.append(run.equity.to_numpy()[lead:])
        runs.append(run)
        cash = float(run.equity.iloc[-1])
    return np.concatenate(curves), runs


@pytest.mark.parametrize("fill", ["next_open", "close"])
def test_stitched_oos_equity_equals_independent_fold_runs_chained(bars, fill):
    wf = walk_forward(
        bars, "sma_cross", grid_optimizer("sma_cross", GRID), WINDOWS, fill=fill, **COSTS
    )
    folds = WINDOWS.folds(bars.index)
    expected, runs = oracle_chain(bars, folds, [c.params for c in wf.chosen], fill=fill, **COSTS)
    np.testing.assert_array_equal(wf.equity.to_numpy(), expected)
    oos = np.concatenate([np.arange(f.oos_start, f.oos_end) for f in folds])
    assert wf.equity.index.equals(bars.index[oos])
    assert sum(len(r.trades) for r in runs) == len(wf.trades) > 0
    for fold, run in zip(folds, runs, strict=True):
        mine = wf.trades[wf.trades["fold"] == fold.number]
        assert (mine["entry_time"] >= bars.index[fold.oos_start]).all()
        assert (mine["exit_time"] <= bars.index[fold.oos_end - 1]).all()
        np.testing.assert_array_equal(mine["pnl"].to_numpy(), run.trades["pnl"].to_numpy())
        assert wf.positions[bars.index[fold.oos_end - 1]] == 0.0  # closed at each fold's end


def test_a_fold_starts_flat_even_when_the_strategy_is_long_at_oos_start(bars, result):
    folds = WINDOWS.folds(bars.index)
    held = [
        strategies.get("sma_cross").target(bars.iloc[f.is_start : f.oos_start], c.params)[-1]
        for f, c in zip(folds, result.chosen, strict=True)
    ]
    assert 1.0 in held  # the scenario happens: a long state carried out of the warm-up
    for fold, state in zip(folds, held, strict=True):
        entries = result.trades.loc[result.trades["fold"] == fold.number, "entry_time"]
        if state == 1.0:  # entered afresh at the first OOS open, with OOS money
            assert entries.min() == bars.index[fold.oos_start]


def test_returns_stats_and_table_follow_from_the_stitched_equity(bars, result):
    cash = 100_000.0
    np.testing.assert_allclose((1 + result.returns).cumprod() * cash, result.equity, rtol=1e-12)
    assert result.stats["final_equity"] == result.equity.iloc[-1]
    assert result.stats["return_pct"] == pytest.approx((result.equity.iloc[-1] / cash - 1) * 100)
    assert result.stats["n_trades"] == len(result.trades)
    folds = WINDOWS.folds(bars.index)
    start = cash
    for fold, row in zip(folds, result.folds.itertuples(), strict=True):
        is_run = run_backtest(
            bars.iloc[fold.is_start : fold.is_end],
            "sma_cross",
            row.params,
            finalize_trades=True,
            **COSTS,
        )
        assert row.is_return_ann == is_run.stats["cagr_pct"]
        assert row.is_metric == is_run.stats["sharpe"]
        curve = result.equity.iloc[fold.oos_start - folds[0].oos_start :][
            : fold.oos_end - fold.oos_start
        ]
        anchored = pd.concat([pd.Series([start], [bars.index[fold.oos_start - 1]]), curve])
        oos = metrics.compute_stats(anchored, periods_per_year=252)
        assert row.oos_return_ann == pytest.approx(oos["cagr_pct"], rel=1e-12)
        assert row.oos_metric == pytest.approx(oos["sharpe"], rel=1e-12, nan_ok=True)
        start = float(curve.iloc[-1])
    assert result.folds.attrs["metric"] == result.metric == "sharpe"


def test_wfe_is_mean_oos_over_mean_is_annualized_return(result):
    table = result.folds
    assert result.wfe == table["oos_return_ann"].mean() / table["is_return_ann"].mean()
    assert result.wfe_reason is None


def test_efficiency_is_nan_with_a_reason_when_in_sample_did_not_earn():
    value, reason = efficiency([-4.0, 2.0], [3.0, 1.0])
    assert math.isnan(value) and "not positive" in reason
    value, reason = efficiency([5.0, float("nan")], [3.0, 1.0])
    assert math.isnan(value) and "undefined" in reason
    assert efficiency([10.0, 20.0], [3.0, 6.0]) == (0.3, None)


def test_changing_bars_after_a_fold_changes_nothing_of_that_fold(bars, result):
    folds = WINDOWS.folds(bars.index)
    k = 4
    changed = rescaled(bars, slice(folds[k].oos_end, None))
    wf = walk_forward(changed, "sma_cross", grid_optimizer("sma_cross", GRID), WINDOWS, **COSTS)
    upto = folds[k].oos_end - folds[0].oos_start
    pd.testing.assert_series_equal(wf.equity.iloc[:upto], result.equity.iloc[:upto])
    pd.testing.assert_frame_equal(wf.folds.iloc[: k + 1], result.folds.iloc[: k + 1])
    assert not wf.equity.iloc[upto:].equals(result.equity.iloc[upto:])  # later folds did change


def test_changing_a_folds_oos_bars_does_not_change_its_chosen_params(bars, result):
    folds = WINDOWS.folds(bars.index)
    k = 4
    changed = rescaled(bars, slice(folds[k].oos_start, folds[k].oos_end))
    wf = walk_forward(changed, "sma_cross", grid_optimizer("sma_cross", GRID), WINDOWS, **COSTS)
    for i in range(k + 1):
        assert wf.chosen[i].params == result.chosen[i].params
        np.testing.assert_array_equal(wf.chosen[i].trial_values, result.chosen[i].trial_values)
    assert wf.folds["oos_metric"][k] != result.folds["oos_metric"][k]


def test_the_optimizer_sees_only_the_in_sample_bars_and_the_run_options(bars):
    seen: list[tuple[pd.DatetimeIndex, FoldContext]] = []

    def fixed(is_bars: pd.DataFrame, ctx: FoldContext) -> Chosen:  # a hand-written optimizer
        seen.append((is_bars.index, ctx))
        return Chosen(
            params={"fast": 10, "slow": 60},
            metric="sortino",
            value=1.0,
            trials=1,
            trial_values=np.array([1.0]),
        )

    windows = Windows(in_sample=300, out_of_sample=120, anchored=True)
    wf = walk_forward(bars, "sma_cross", fixed, windows, cash=50_000.0, **COSTS)
    folds = windows.folds(bars.index)
    assert all(idx.equals(bars.index[: f.is_end]) for (idx, _), f in zip(seen, folds, strict=True))
    assert len(seen) == len(folds) > 5
    assert all(
        ctx.options["commission"] == 0.001
        and ctx.options["cash"] == 50_000.0
        and ctx.options["periods_per_year"] == 252.0
        for _, ctx in seen
    )
    assert (wf.folds["is_start"] == 0).all() and wf.metric == "sortino"
    assert wf.folds["oos_metric"].notna().all()


def test_warmup_limits_the_bars_before_oos_start_the_indicators_see(bars):
    def fixed(is_bars: pd.DataFrame, ctx: FoldContext) -> Chosen:
        return Chosen(
            params={"fast": 5, "slow": 30},
            metric="sharpe",
            value=0.0,
            trials=1,
            trial_values=np.array([0.0]),
        )

    short = walk_forward(bars, "sma_cross", fixed, WINDOWS, warmup=40, **COSTS)
    changed = rescaled(bars, slice(0, WINDOWS.folds(bars.index)[0].oos_start - 40))
    again = walk_forward(changed, "sma_cross", fixed, WINDOWS, warmup=40, **COSTS)
    n0 = WINDOWS.folds(bars.index)[0].oos_end - WINDOWS.folds(bars.index)[0].oos_start
    pd.testing.assert_series_equal(short.equity.iloc[:n0], again.equity.iloc[:n0])


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"warmup": 0}, "warmup"),
        ({"metric": "sharpee"}, "metric"),
        (
            {"windows": [Fold(number=0, is_start=0, is_end=99, oos_start=90, oos_end=200)]},
            "windows",
        ),
        ({"windows": "2Y"}, "windows"),
        ({"fill": "open"}, "fill"),
        ({"optimizer": lambda b, c: {"fast": 5, "slow": 30}}, "optimizer"),
        ({"optimizer": grid_optimizer("rsi_reversion", [{"period": 14}])}, "strategy"),
    ],
)
def test_walk_forward_rejects_bad_arguments_naming_the_field(bars, kwargs, field):
    args: dict[str, Any] = {"optimizer": grid_optimizer("sma_cross", GRID), "windows": WINDOWS}
    args.update(kwargs)
    with pytest.raises(ValidationError) as err:
        walk_forward(bars, "sma_cross", **args)
    assert err.value.field == field


def test_walk_forward_takes_precomputed_folds_like_their_windows(bars, result):
    folds = WINDOWS.folds(bars.index)
    wf = walk_forward(bars, "sma_cross", grid_optimizer("sma_cross", GRID), folds, **COSTS)
    pd.testing.assert_series_equal(wf.equity, result.equity)


def test_a_ruined_fold_leaves_the_later_folds_flat_at_zero():
    wild = daily(5, n=1500)  # 20x leveraged long/short SMA crossings on a volatile walk
    wild[["open", "high", "low", "close"]] **= 2.0
    wild["high"] *= 1.02
    wild["low"] *= 0.98
    grid = [{"fast": f, "slow": s} for f in (2, 3, 5) for s in (10, 20)]
    wf = walk_forward(
        wild,
        "sma_cross",
        grid_optimizer("sma_cross", grid),
        Windows(in_sample=250, out_of_sample=125),
        allow_short=True,
        margin=0.05,
    )
    ruined = int(np.argmax(wf.equity.to_numpy() <= 0))
    assert wf.equity.iloc[ruined] == 0.0 and (wf.equity.iloc[ruined:] == 0.0).all()
    later = wf.folds["oos_first"] > wf.equity.index[ruined]
    assert later.any() and set(wf.trades["fold"]).isdisjoint(wf.folds.loc[later, "fold"])
    assert wf.stats["final_equity"] == 0.0
