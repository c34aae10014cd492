"""Backtest engine benchmark: SCIZOR side by side with backtesting.py and vectorbt.

Run: ``.venv/bin/python benchmarks/engine.py``. Prints one table with the median times and
the ratios (peer time / SCIZOR time; above 1 means SCIZOR is faster). Numba compilation is
excluded: every contender does one warm-up call first.

(a) one SMA(10/30) crossover backtest on 2,520 daily bars vs backtesting.py;
(b) every fast < slow pair from 2..100 (4,851 sets) vs vectorbt, with the conventions
    aligned (signals on crossings, fills at the signal bar's close, long only, no costs),
    asserting that the closed-trade counts agree for every pair. Tie convention: SCIZOR's
    cross is strict on consecutive bars (fast < slow on bar i-1 and fast > slow on bar i;
    a bar where they are exactly equal is no cross and breaks the sequence), while
    vectorbt's ``crossed_above`` also fires on below, equal, ..., above. The two differ only
    on exact SMA ties, which the benchmark's continuous random walk never produces;
(c) one SMA crossover on a year of 1-minute bars (~98k) vs backtesting.py (one run).
"""

from __future__ import annotations

import itertools
import os
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
# backtesting.py draws a tqdm progress bar per run: switch it off, so the peer is timed on
# its backtest alone (and the table stays readable).
os.environ.setdefault("TQDM_DISABLE", "1")

from strategies import _kernels as k
from strategies import metrics
from strategies.bars import bar_values, ohlc_columns
from strategies.engine import run_backtest, run_batch
from strategies.indicators import sma
from strategies.results import trade_returns, trades_frame
from strategies.simulation import prepare, run_costs, seeded_cache, simulate
from strategies.sizing import periods_per_year, sizing


def random_walk(n: int, *, seed: int, freq: str) -> pd.DataFrame:
    """Return ``n`` seeded OHLCV bars."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0002, 0.012, n)))
    opens = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.002, n))
    idx = pd.date_range("2014-01-02", periods=n, freq=freq, tz="UTC")
    return pd.DataFrame(
        {
            "open": opens,
            "high": np.maximum(opens, close) * 1.003,
            "low": np.minimum(opens, close) * 0.997,
            "close": close,
            "volume": 1e6,
        },
        index=idx,
    )


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, Any]:
    """Return the median wall time of ``runs`` calls (after one warm-up) and the last result."""
    result = fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def backtesting_py(bars: pd.DataFrame, fast: int, slow: int) -> Callable[[], Any]:
    """Return a call running backtesting.py's SmaCross (long only) on ``bars``."""
    from backtesting import Backtest, Strategy
    from backtesting.lib import crossover

    class SmaCross(Strategy):
        def init(self) -> None:
            self.a = self.I(sma, self.data.Close, fast)
            self.b = self.I(sma, self.data.Close, slow)

        def next(self) -> None:
            if crossover(self.a, self.b):
                self.buy()
            elif crossover(self.b, self.a):
                self.position.close()

    data = bars.rename(columns=str.capitalize).tz_localize(None)

    def run() -> Any:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return Backtest(data, SmaCross, cash=100_000, commission=0.001).run()

    return run


def vectorbt_grid(bars: pd.DataFrame, windows: list[int]) -> Callable[[], Any]:
    """Return a call running the fast<slow SMA grid in vectorbt; it returns closed-trade counts."""
    import vectorbt as vbt

    close = bars["close"]

    def run() -> np.ndarray:
        fast, slow = vbt.MA.run_combs(close, window=windows, r=2, short_names=["fast", "slow"])
        entries = fast.ma_crossed_above(slow)
        exits = fast.ma_crossed_below(slow)
        pf = vbt.Portfolio.from_signals(close, entries, exits, init_cash=100_000, freq="1D")
        return np.asarray(pf.trades.closed.count().to_numpy())

    return run


def full_backtest(bars: pd.DataFrame) -> Any:
    """Run (a) and touch everything run_backtest promises (all built eagerly, inside the timing)."""
    result = run_backtest(bars, "sma_cross", {"fast": 10, "slow": 30}, commission=0.001)
    assert len(result.trades) and len(result.equity) == len(result.positions) == len(bars)
    assert len(result.stats) == len(metrics.STAT_KEYS)
    return result


def signals_and_fills(bars: pd.DataFrame) -> Any:
    """Run (a) without building stats or pandas outputs: validation, targets, numba fills."""
    strat, p = prepare("sma_cross", {"fast": 10, "slow": 30}, None)
    frame, values = bar_values(bars)
    target = strat.target(frame, p, indicators=seeded_cache(frame, values), resolved=True)
    costs = run_costs(
        strat,
        commission=0.001,
        currencies=["USD"],
        slippage_bps=0.0,
        stop_loss_pct=None,
        take_profit_pct=None,
        margin=1.0,
    )
    scale, mode = sizing(1.0, values[:, 3], periods_per_year=periods_per_year(frame.index))
    return simulate(
        frame,
        target[:, None],
        scale[:, None],
        mode,
        cash=1e5,
        costs=costs,
        fill="next_open",
        prices=ohlc_columns(values),
    )


def breakdown(bars: pd.DataFrame) -> dict[str, float]:
    """Return the median time of (a)'s stages after the fills: trades frame and stats."""
    equity, positions, rows = signals_and_fills(bars)
    frame = bars
    t_trades, _ = timed(lambda: trades_frame(rows, frame.index, [""]), runs=50)
    t_stats, _ = timed(
        lambda: metrics.summarize(
            equity,
            index=frame.index,
            benchmark=frame["close"].to_numpy(),
            positions=positions,
            pnl=rows[:, k.T_PNL],
            return_pct=trade_returns(rows),
            held_bars=rows[:, k.T_EXIT_IDX] - rows[:, k.T_ENTRY_IDX],
            periods_per_year=periods_per_year(frame.index),
        ),
        runs=50,
    )
    return {"trades frame": t_trades, "stats": t_stats}


def main() -> None:
    rows = []
    daily = random_walk(2520, seed=2520, freq="B")
    ours, res = timed(lambda: full_backtest(daily), runs=50)
    theirs, st = timed(backtesting_py(daily, 10, 30), runs=5)
    assert int(res.stats["n_trades"]) == int(st["# Trades"]), "trade counts differ in (a)"
    rows.append(("(a) SMA cross, 2,520 daily bars", "backtesting.py", ours, theirs))
    core, _ = timed(lambda: signals_and_fills(daily), runs=50)
    rows.append(("(a') same, targets + fills, no stats", "backtesting.py", core, theirs))
    parts = breakdown(daily)

    windows = list(range(2, 101))
    pairs = list(itertools.combinations(windows, 2))
    sets = [{"fast": f, "slow": s} for f, s in pairs]
    ours, table = timed(lambda: run_batch(daily, "sma_cross", sets, fill="close"), runs=3)
    theirs, counts = timed(vectorbt_grid(daily, windows), runs=3)
    same = int((table["n_trades"].to_numpy() == counts).sum())
    assert same == len(sets), f"trade counts differ in (b) for {len(sets) - same} pairs"
    rows.append((f"(b) grid of {len(sets):,} pairs, 2,520 bars", "vectorbt", ours, theirs))

    minute = random_walk(252 * 390, seed=98, freq="min")
    ours, res = timed(
        lambda: run_backtest(minute, "sma_cross", {"fast": 10, "slow": 30}, commission=0.001),
        runs=5,
    )
    start = time.perf_counter()
    st = backtesting_py(minute, 10, 30)()
    theirs = time.perf_counter() - start
    assert int(res.stats["n_trades"]) == int(st["# Trades"]), "trade counts differ in (c)"
    rows.append((f"(c) SMA cross, {len(minute):,} 1-min bars", "backtesting.py", ours, theirs))

    print(f"{'case':<40} {'peer':<15} {'SCIZOR s':>10} {'peer s':>10} {'speed-up':>9}")
    for case, peer, a, b in rows:
        print(f"{case:<40} {peer:<15} {a:>10.5f} {b:>10.4f} {b / a:>8.1f}x")
    print(f"(b) trade counts identical for {same:,} of {len(sets):,} pairs")
    print(
        "(a) stages after the fills: "
        + ", ".join(f"{name} {seconds * 1e3:.3f} ms" for name, seconds in parts.items())
    )


if __name__ == "__main__":
    main()
