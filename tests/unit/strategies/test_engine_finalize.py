"""finalize_trades: what is still open at the end is closed at the last close and counted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strategies.engine import run_backtest, run_batch
from strategies.portfolio import run_portfolio


def walk(n: int = 400, seed: int = 41) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0.0005, 0.015, n)))
    opens = close * np.exp(rng.normal(0, 0.004, n))
    idx = pd.date_range("2021-01-04", periods=n, freq="B", tz="UTC")
    return pd.DataFrame(
        {
            "open": opens,
            "high": np.maximum(opens, close) * 1.01,
            "low": np.minimum(opens, close) * 0.99,
            "close": close,
            "volume": 1e6,
        },
        index=idx,
    )


def test_buy_and_hold_becomes_one_trade_closed_at_the_last_close_net_of_its_costs():
    bars = walk()
    costs = {"commission": 0.001, "slippage_bps": 5.0}
    held = run_backtest(bars, "buy_hold", **costs)
    done = run_backtest(bars, "buy_hold", finalize_trades=True, **costs)
    assert held.trades.empty and held.stats["n_trades"] == 0
    assert held.positions.iloc[-1] > 0
    (trade,) = done.trades.itertuples()
    exit_price = bars["close"].iloc[-1] * (1 - 5.0 / 10_000)
    assert trade.exit_time == bars.index[-1] and trade.exit_price == pytest.approx(exit_price)
    assert trade.size == held.positions.iloc[-1] and done.positions.iloc[-1] == 0
    # The same path until the last bar; there the exit's slippage and commission are paid.
    pd.testing.assert_series_equal(done.equity.iloc[:-1], held.equity.iloc[:-1])
    exit_cost = trade.size * (bars["close"].iloc[-1] - exit_price) + 0.001 * trade.size * exit_price
    assert done.equity.iloc[-1] == pytest.approx(held.equity.iloc[-1] - exit_cost, rel=1e-12)
    assert done.stats["n_trades"] == 1 and done.stats["win_rate_pct"] in (0.0, 100.0)
    assert done.stats["final_equity"] == pytest.approx(done.equity.iloc[-1])


def test_a_short_left_open_is_bought_back_and_flat_runs_are_unchanged():
    bars = walk(seed=7)
    params = {"fast": 5, "slow": 30, "allow_short": True}
    held = run_backtest(bars, "sma_cross", params, commission=0.001)
    done = run_backtest(bars, "sma_cross", params, commission=0.001, finalize_trades=True)
    assert held.positions.iloc[-1] != 0
    assert len(done.trades) == len(held.trades) + 1
    pd.testing.assert_frame_equal(done.trades.iloc[:-1], held.trades)
    last = done.trades.iloc[-1]
    assert last.side == ("long" if held.positions.iloc[-1] > 0 else "short")
    assert last.exit_price == pytest.approx(bars["close"].iloc[-1])
    ends_flat = {"fast": 5, "slow": 50}  # on these 120 bars: 3 trades, flat at the end
    flat = run_backtest(bars.iloc[:120], "sma_cross", ends_flat, commission=0.001)
    again = run_backtest(
        bars.iloc[:120], "sma_cross", ends_flat, commission=0.001, finalize_trades=True
    )
    assert flat.positions.iloc[-1] == 0 and len(flat.trades) == 3
    pd.testing.assert_series_equal(again.equity, flat.equity)
    pd.testing.assert_frame_equal(again.trades, flat.trades)


def test_batch_rows_count_the_finalized_trade_like_single_backtests():
    bars = walk(seed=3)
    sets = [{"fast": f, "slow": s} for f, s in [(5, 20), (10, 40), (3, 60), (20, 90)]]
    table = run_batch(bars, "sma_cross", sets, commission=0.001, finalize_trades=True)
    for row, p in zip(table.itertuples(), sets, strict=True):
        single = run_backtest(bars, "sma_cross", p, commission=0.001, finalize_trades=True)
        assert row.n_trades == len(single.trades)
        assert row.return_pct == pytest.approx(single.stats["return_pct"], rel=1e-9)


def test_portfolio_closes_every_open_symbol_on_the_last_day():
    data = {s: walk(seed=i) for i, s in enumerate(("AAA", "BBB", "CCC"))}
    held = run_portfolio(data, "buy_hold", commission=0.001)
    done = run_portfolio(data, "buy_hold", commission=0.001, finalize_trades=True)
    assert held.trades.empty
    assert sorted(done.trades.symbol) == ["AAA", "BBB", "CCC"]
    assert (done.trades.exit_time == data["AAA"].index[-1]).all()
    assert (done.positions.iloc[-1] == 0).all()
    assert done.stats["n_trades"] == 3
