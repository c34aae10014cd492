"""Parity: sma_cross with next-open fills equals backtesting.py's classic SmaCross example."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest
from backtesting import Strategy as BtStrategy
from backtesting.lib import crossover

from strategies.engine import run_backtest
from strategies.indicators import sma

COMMISSION = 0.002


def parity_bars() -> pd.DataFrame:
    """1500 daily bars of a seeded random walk used only by this test."""
    rng = np.random.default_rng(20240611)
    n = 1500
    close = 50 * np.exp(np.cumsum(rng.normal(0.0003, 0.015, n)))
    opens = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.004, n))
    idx = pd.date_range("2015-01-01", periods=n, freq="B", tz="UTC")
    return pd.DataFrame(
        {
            "open": opens,
            "high": np.maximum(opens, close) * 1.004,
            "low": np.minimum(opens, close) * 0.996,
            "close": close,
            "volume": 1e6,
        },
        index=idx,
    )


class SmaCross(BtStrategy):
    """backtesting.py's classic example; long-only: buy the cross up, close on the cross down."""

    n1 = 10
    n2 = 30

    def init(self):
        self.fast = self.I(sma, self.data.Close, self.n1)
        self.slow = self.I(sma, self.data.Close, self.n2)

    def next(self):
        if crossover(self.fast, self.slow):
            self.buy()
        elif crossover(self.slow, self.fast):
            self.position.close()


@pytest.mark.parametrize(("fast", "slow"), [(10, 30), (5, 50)])
def test_sma_cross_trades_and_equity_match_backtesting_py(fast, slow):
    bars = parity_bars()
    data = bars.rename(columns=str.capitalize).tz_localize(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = Backtest(data, SmaCross, cash=100_000, commission=COMMISSION).run(n1=fast, n2=slow)
    ours = run_backtest(
        bars, "sma_cross", {"fast": fast, "slow": slow}, cash=100_000, commission=COMMISSION
    )
    bt = theirs._trades
    tr = ours.trades
    assert len(tr) == len(bt) > 10
    assert (tr.entry_time.dt.tz_localize(None).to_numpy() == bt.EntryTime.to_numpy()).all()
    assert (tr.exit_time.dt.tz_localize(None).to_numpy() == bt.ExitTime.to_numpy()).all()
    np.testing.assert_allclose(tr.entry_price, bt.EntryPrice, rtol=1e-12)
    np.testing.assert_allclose(tr.exit_price, bt.ExitPrice, rtol=1e-12)
    np.testing.assert_array_equal(tr["size"], bt.Size)
    np.testing.assert_allclose(tr.pnl, bt.PnL, rtol=1e-9)
    assert ours.equity.iloc[-1] == pytest.approx(theirs["Equity Final [$]"], rel=1e-3)
    np.testing.assert_allclose(ours.equity.to_numpy(), theirs._equity_curve.Equity, rtol=1e-9)
