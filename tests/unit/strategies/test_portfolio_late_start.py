"""run_portfolio with an instrument that starts later: nothing of it exists before its first
bar (no target, no fill, no value, no benchmark weight), so nothing earlier can depend on
its prices."""

from __future__ import annotations

import numpy as np
import pandas as pd

from strategies.engine import VolTarget
from strategies.portfolio import equal_weight_benchmark, run_portfolio
from tests.unit.strategies.scripted import Scripted

N, LATE = 60, 25


def walk(seed: int, n: int = N, *, start: float = 50.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = start * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    idx = pd.date_range("2021-01-01", periods=n, freq="D", tz="UTC")
    return pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1.0},
        index=idx,
    )


def late(first_close: float = 80.0) -> pd.DataFrame:
    """BBB: bars from day LATE on; its first bar's prices are ``first_close``-based."""
    bars = walk(7).iloc[LATE:].copy()
    bars.iloc[0, :4] = [first_close, first_close * 1.01, first_close * 0.99, first_close]
    return bars


def test_the_late_instrument_neither_trades_nor_counts_before_its_first_bar():
    aaa, bbb = walk(1), late()
    r = run_portfolio({"AAA": aaa, "BBB": bbb}, "buy_hold", commission=0.001)
    assert (r.positions.BBB.iloc[:LATE] == 0).all()
    assert r.trades.empty or (r.trades[r.trades.symbol == "BBB"].entry_time >= bbb.index[0]).all()
    assert r.positions.BBB.iloc[LATE + 1] > 0  # it does trade once it exists
    alone = aaa.close.iloc[: LATE + 1] / aaa.close.iloc[0]
    assert r.benchmark is not None
    np.testing.assert_allclose(r.benchmark.iloc[: LATE + 1], alone.to_numpy(), rtol=1e-13)


def test_nothing_before_the_first_bar_depends_on_the_late_instruments_first_price():
    aaa = walk(1)
    runs = [
        run_portfolio({"AAA": aaa, "BBB": late(price)}, "buy_hold", commission="ibkr")
        for price in (80.0, 20.0)
    ]
    one, two = runs
    assert one.benchmark is not None and two.benchmark is not None
    pd.testing.assert_series_equal(one.equity.iloc[:LATE], two.equity.iloc[:LATE])
    pd.testing.assert_series_equal(one.benchmark.iloc[: LATE + 1], two.benchmark.iloc[: LATE + 1])
    pd.testing.assert_frame_equal(one.positions.iloc[:LATE], two.positions.iloc[:LATE])
    assert not one.benchmark.iloc[LATE + 1 :].equals(two.benchmark.iloc[LATE + 1 :])


def test_benchmark_re_splits_its_value_when_an_instrument_starts():
    closes = np.array([[10.0, np.nan], [12.0, np.nan], [15.0, 40.0], [15.0, 50.0], [18.0, 60.0]])
    idx = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    bench = equal_weight_benchmark(closes, idx)
    # 1.0 in A; 1.5 by bar 2, then 0.75 in each: A 0.75 x 15/15, B 0.75 x 50/40 ...
    expected = [1.0, 1.2, 1.5, 0.75 + 0.75 * 50 / 40, 0.75 * 18 / 15 + 0.75 * 60 / 40]
    np.testing.assert_allclose(bench.to_numpy(), expected, rtol=1e-15)
    common = np.array([[10.0, 40.0], [11.0, 44.0], [12.0, 36.0]])
    np.testing.assert_allclose(
        equal_weight_benchmark(common, idx[:3]).to_numpy(), (common / common[0]).mean(axis=1)
    )


def test_vol_target_sizes_the_late_instrument_from_its_own_returns_only():
    aaa, bbb = walk(1), late()
    flip = Scripted(np.r_[0.0, 0.0, np.ones(N)])  # each symbol: long from its own bar 2
    # Two own returns are not a 5-bar lookback: BBB stays flat (no flat made-up history).
    five = run_portfolio({"AAA": aaa, "BBB": bbb}, flip, size=VolTarget(0.2, 5), benchmark=False)
    assert (five.positions.BBB == 0).all()
    # With a 2-bar lookback BBB's size comes from its own two returns, at its own bar 3.
    r = run_portfolio({"AAA": aaa, "BBB": bbb}, flip, size=VolTarget(0.2, 2), benchmark=False)
    vol = np.std(np.diff(np.log(bbb.close.to_numpy()[:3])), ddof=1) * np.sqrt(252)
    held_a = r.positions.AAA.iloc[3]
    equity = 100_000 + held_a * (aaa.open.iloc[LATE + 3] - aaa.open.iloc[3])
    expected = np.floor(min(0.2 / vol, 1.0) * 0.5 * equity / bbb.open.iloc[3])
    assert held_a > 0 and expected > 0
    assert r.positions.BBB.iloc[LATE + 2] == 0
    assert r.positions.BBB.iloc[LATE + 3] == expected
