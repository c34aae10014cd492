"""VolTarget sizing and the bars-per-year that annualizes it (inferred or overridden)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.errors import ParameterError
from strategies.engine import VolTarget, periods_per_year, run_backtest, run_batch
from strategies.portfolio import run_portfolio
from tests.unit.strategies.scripted import Scripted

MINUTES_PER_YEAR = 252.0 * 390


def minute_bars(n: int = 120, sigma: float = 0.001) -> pd.DataFrame:
    """One-minute bars whose per-minute volatility (~0.1 %) is ~31 % a year on 98,280 bars."""
    close = 100 * np.exp(np.cumsum(np.random.default_rng(11).normal(0, sigma, n)))
    idx = pd.date_range("2024-03-04 14:30", periods=n, freq="min", tz="UTC")
    return pd.DataFrame(
        {"open": close, "high": close, "low": close, "close": close, "volume": 1.0}, idx
    )


def expected_shares(close: np.ndarray, *, signal_bar: int, ppy: float, vol: float) -> int:
    rets = pd.Series(np.log(close)).diff()
    realized = rets.rolling(20).std().iloc[signal_bar] * math.sqrt(ppy)
    return math.floor(min(vol / realized, 1.0) * 100_000 / close[signal_bar + 1])


def test_vol_target_on_one_minute_bars_annualizes_with_minutes_per_year():
    bars = minute_bars()
    close = bars.close.to_numpy()
    targets = np.r_[np.zeros(40), np.ones(80)]
    size = VolTarget(annual_vol=0.15, lookback=20)
    r = run_backtest(bars, Scripted(targets), size=size, cash=100_000, benchmark=False)
    assert periods_per_year(bars.index) == pytest.approx(MINUTES_PER_YEAR)
    shares = expected_shares(close, signal_bar=40, ppy=MINUTES_PER_YEAR, vol=0.15)
    assert r.positions.iloc[41] == shares
    # Not the cap: with sqrt(252) the fraction would be min(~9, 1) = 1 (all in).
    assert 0.2 < shares * close[41] / 100_000 < 0.8


def test_vol_target_uses_the_periods_per_year_override():
    bars = minute_bars()
    close = bars.close.to_numpy()
    targets = np.r_[np.zeros(40), np.ones(80)]
    size = VolTarget(annual_vol=0.15, lookback=20)
    ppy = 365.0 * 24 * 60  # a 24-hour market
    r = run_backtest(
        bars, Scripted(targets), size=size, cash=100_000, benchmark=False, periods_per_year=ppy
    )
    assert r.positions.iloc[41] == expected_shares(close, signal_bar=40, ppy=ppy, vol=0.15)


def test_vol_target_minute_sizing_is_the_same_in_batch_and_portfolio():
    bars = minute_bars(200)
    size = VolTarget(annual_vol=0.15, lookback=20)
    params = {"fast": 5, "slow": 20}
    single = run_backtest(bars, "sma_cross", params, size=size, cash=100_000, benchmark=False)
    table = run_batch(bars, "sma_cross", [params], size=size, cash=100_000)
    port = run_portfolio({"X": bars}, "sma_cross", params, size=size, cash=100_000)
    assert single.stats["n_trades"] > 0
    assert table.return_pct.iloc[0] == pytest.approx(single.stats["return_pct"], rel=1e-12)
    np.testing.assert_allclose(port.equity, single.equity, rtol=1e-12)
    assert single.positions.abs().max() * bars.close.max() < 0.9 * 100_000  # never all in


def test_periods_per_year_override_annualizes_the_metrics():
    bars = minute_bars(300)
    base = run_backtest(bars, "buy_hold", cash=100_000)
    calendar = run_backtest(bars, "buy_hold", cash=100_000, periods_per_year=365.0 * 1440)
    ratio = math.sqrt(365.0 * 1440 / MINUTES_PER_YEAR)
    assert calendar.stats["sharpe"] == pytest.approx(base.stats["sharpe"] * ratio, rel=1e-9)
    assert calendar.stats["return_pct"] == base.stats["return_pct"]
    table = run_batch(bars, "buy_hold", [{}], periods_per_year=365.0 * 1440)
    assert table.sharpe.iloc[0] == pytest.approx(calendar.stats["sharpe"], rel=1e-9)
    port = run_portfolio({"X": bars}, "buy_hold", periods_per_year=365.0 * 1440)
    assert port.stats["sharpe"] == pytest.approx(calendar.stats["sharpe"], rel=1e-9)


@pytest.mark.parametrize("bad", [0.0, -252.0, math.inf, math.nan, "252"])
def test_bad_periods_per_year_is_rejected_by_every_entry_point(bad):
    bars = minute_bars()
    calls = [
        lambda: run_backtest(bars, "buy_hold", periods_per_year=bad),
        lambda: run_batch(bars, "buy_hold", [{}], periods_per_year=bad),
        lambda: run_portfolio({"X": bars}, "buy_hold", periods_per_year=bad),
    ]
    for call in calls:
        with pytest.raises(ParameterError) as info:
            call()
        assert info.value.field == "periods_per_year"
