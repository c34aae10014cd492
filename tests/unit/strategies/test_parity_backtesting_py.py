"""Parity: sma_cross with next-open fills equals backtesting.py's SmaCross examples.

Two comparisons: a long-only rewrite (buy the cross up, close on the cross down) with
SCIZOR's own SMA, and backtesting.py's own ``backtesting.test._test.SmaCross`` (close and
reverse on every cross: long/short, with backtesting.py's pandas ``SMA``) against
``sma_cross`` with ``allow_short=True``.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from backtesting import Backtest
from backtesting import Strategy as BtStrategy
from backtesting.lib import crossover
from backtesting.test import GOOG, SMA

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


try:  # backtesting.py's own example strategy, exactly as its test suite runs it
    from backtesting.test._test import SmaCross as ReversingSmaCross
except ImportError:  # a backtesting.py without its test module: the same class, copied

    class ReversingSmaCross(BtStrategy):  # type: ignore[no-redef]
        """backtesting.test._test.SmaCross: close and reverse on every crossing."""

        fast = 10
        slow = 30

        def init(self):
            self.sma1 = self.I(SMA, self.data.Close, self.fast)
            self.sma2 = self.I(SMA, self.data.Close, self.slow)

        def next(self):
            if crossover(self.sma1, self.sma2):
                self.position.close()
                self.buy()
            elif crossover(self.sma2, self.sma1):
                self.position.close()
                self.sell()


def reversal_bars() -> pd.DataFrame:
    """1200 daily bars of a seeded random walk used only by the reversal parity test."""
    rng = np.random.default_rng(8675309)
    n = 1200
    close = 80 * np.exp(np.cumsum(rng.normal(0.0001, 0.017, n)))
    opens = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.005, n))
    idx = pd.date_range("2011-03-01", periods=n, freq="B", tz="UTC")
    return pd.DataFrame(
        {
            "open": opens,
            "high": np.maximum(opens, close) * 1.005,
            "low": np.minimum(opens, close) * 0.995,
            "close": close,
            "volume": 5e5,
        },
        index=idx,
    )


def goog_bars() -> pd.DataFrame:
    """backtesting.test.GOOG (daily Alphabet prices 2004-2013) in SCIZOR's column layout."""
    return GOOG.rename(columns=str.lower).astype(np.float64).tz_localize("UTC")


@pytest.mark.parametrize("data", ["random_walk", "goog"])
@pytest.mark.parametrize("commission", [0.0, COMMISSION])
def test_reversing_sma_cross_matches_backtesting_py_example(data, commission):
    bars = reversal_bars() if data == "random_walk" else goog_bars()
    frame = bars.rename(columns=str.capitalize).tz_localize(None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = Backtest(frame, ReversingSmaCross, cash=10_000, commission=commission).run()
    ours = run_backtest(
        bars,
        "sma_cross",
        {"fast": ReversingSmaCross.fast, "slow": ReversingSmaCross.slow, "allow_short": True},
        cash=10_000,
        commission=commission,
    )
    bt = theirs._trades
    tr = ours.trades
    assert len(tr) == len(bt) > 20
    assert set(tr.side) == {"long", "short"}
    assert (tr.entry_time.dt.tz_localize(None).to_numpy() == bt.EntryTime.to_numpy()).all()
    assert (tr.exit_time.dt.tz_localize(None).to_numpy() == bt.ExitTime.to_numpy()).all()
    np.testing.assert_allclose(tr.entry_price, bt.EntryPrice, rtol=1e-12)
    np.testing.assert_allclose(tr.exit_price, bt.ExitPrice, rtol=1e-12)
    signed = np.where(tr.side.astype(str) == "short", -tr["size"], tr["size"])
    np.testing.assert_array_equal(signed, bt.Size)
    assert ours.equity.iloc[-1] == pytest.approx(theirs["Equity Final [$]"], rel=1e-3)
