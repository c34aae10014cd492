"""Ruin: equity at a close <= 0 closes everything at that close and stops trading."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import pytest

from strategies.engine import run_backtest, run_batch
from strategies.portfolio import run_portfolio
from tests.unit.strategies.scripted import Scripted


def frame(closes: Sequence[float]) -> pd.DataFrame:
    c = np.asarray(closes, dtype=float)
    idx = pd.date_range("2024-01-01", periods=len(c), freq="D", tz="UTC")
    return pd.DataFrame({"open": c, "high": c, "low": c, "close": c, "volume": 1.0}, idx)


RISING = [10, 10, 15, 25, 30, 40, 20, 5]


def test_short_into_a_rising_price_is_closed_at_the_ruin_close_and_trading_stops():
    # Short 100 at 10 with 1,000 cash; at 25 the equity is 2,000 - 2,500 < 0.
    r = run_backtest(frame(RISING), Scripted([-1] * 8), cash=1000.0, benchmark=False)
    assert r.equity.tolist() == [1000.0, 1000.0, 500.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    assert r.positions.tolist() == [0.0, -100.0, -100.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    (trade,) = r.trades.itertuples()
    assert trade.side == "short" and trade.size == 100
    assert trade.exit_time == r.equity.index[3] and trade.exit_price == 25.0
    assert trade.pnl == -1500.0
    assert r.stats["return_pct"] == -100.0 and r.stats["final_equity"] == 0.0
    assert r.stats["max_drawdown_pct"] == -100.0 and np.isfinite(r.stats["sharpe"])


def test_after_ruin_new_signals_are_ignored():
    targets = [-1, -1, -1, -1, 0, 1, 1, 1]  # a new long signal after the ruin bar
    r = run_backtest(frame(RISING), Scripted(targets), cash=1000.0, benchmark=False)
    assert len(r.trades) == 1 and (r.positions.iloc[3:] == 0).all()
    assert (r.equity.iloc[3:] == 0).all()


def test_ruin_liquidation_pays_slippage_and_commission_and_equity_is_floored_at_zero():
    r = run_backtest(
        frame(RISING), Scripted([-1] * 8), cash=1000.0, benchmark=False,
        commission=0.001, slippage_bps=10.0,
    )  # fmt: skip
    trade = r.trades.iloc[0]
    assert trade.exit_price == pytest.approx(25.0 * 1.001)
    assert trade.commission > 0 and r.equity.iloc[3] == 0.0 and r.equity.min() == 0.0


def test_leveraged_long_crash_is_ruin_too():
    closes = [10, 10, 8, 4, 12, 14]
    r = run_backtest(frame(closes), Scripted([1] * 6), cash=1000.0, margin=0.5, benchmark=False)
    assert r.positions.iloc[1] == 200  # 2x
    assert r.equity.iloc[3] == 0.0 and (r.equity.iloc[3:] == 0).all()
    assert r.trades.exit_price.tolist() == [4.0]


def test_solvent_account_is_untouched():
    r = run_backtest(frame([10, 10, 15, 18, 12]), Scripted([-1] * 5), cash=1000.0)
    assert r.trades.empty and r.positions.iloc[-1] == -100
    assert r.equity.iloc[-1] == pytest.approx(1000.0 + 100 * (10 - 12))


def test_batch_and_portfolio_apply_the_same_ruin_rule():
    strat = Scripted([-1] * 8)
    single = run_backtest(frame(RISING), strat, cash=1000.0)
    table = run_batch(frame(RISING), strat, [{}], cash=1000.0)
    port = run_portfolio({"X": frame(RISING)}, strat, cash=1000.0)
    assert table.return_pct.iloc[0] == single.stats["return_pct"] == -100.0
    assert table.n_trades.iloc[0] == 1
    np.testing.assert_array_equal(port.equity, single.equity)
