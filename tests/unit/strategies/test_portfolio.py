"""run_portfolio: shared cash across symbols on a union calendar."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strategies.engine import run_backtest
from strategies.portfolio import run_portfolio


def walk(seed: int, n: int = 300, *, drop: slice | None = None) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    idx = pd.date_range("2021-01-01", periods=n, freq="D", tz="UTC")
    bars = pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99,
                         "close": close, "volume": 1.0}, index=idx)  # fmt: skip
    return bars.drop(bars.index[drop]) if drop is not None else bars


def test_single_symbol_portfolio_equals_run_backtest():
    bars = walk(1)
    single = run_backtest(bars, "sma_cross", {"fast": 5, "slow": 20}, commission=0.001)
    port = run_portfolio({"AAA": bars}, "sma_cross", {"fast": 5, "slow": 20}, commission=0.001)
    np.testing.assert_allclose(port.equity, single.equity, rtol=1e-12)
    assert port.trades.drop(columns="symbol").equals(single.trades.drop(columns="symbol"))
    assert set(port.trades.symbol) == {"AAA"}


def test_equal_weights_split_cash_and_cash_stays_non_negative():
    data = {"AAA": walk(1), "BBB": walk(2), "CCC": walk(3)}
    r = run_portfolio(data, "sma_cross", {"fast": 5, "slow": 20}, commission=0.002)
    assert set(r.trades.symbol) == {"AAA", "BBB", "CCC"}
    closes = pd.DataFrame({s: b.close for s, b in data.items()})
    cash = r.equity - (r.positions * closes).sum(axis=1)
    assert cash.min() >= -1e-9
    first = r.trades.groupby("symbol").first()
    value = first["size"] * first.entry_price
    assert (value <= 100_000 / 3 + 1e-6).all() and (value > 100_000 / 3 * 0.5).all()
    assert np.isfinite(r.stats["return_pct"])


def test_missing_bars_are_not_traded_and_prices_are_forward_filled():
    gappy = walk(2, drop=slice(100, 140))
    r = run_portfolio({"AAA": walk(1), "BBB": gappy}, "buy_hold")
    assert len(r.equity) == 300
    missing = r.equity.index[100:140]
    assert not r.trades.entry_time.isin(missing).any()
    assert (r.positions.BBB.loc[missing] == r.positions.BBB.iloc[99]).all()
    assert r.positions.iloc[-1].gt(0).all()


def test_custom_weights_and_unknown_symbol_weights():
    data = {"AAA": walk(1), "BBB": walk(2)}
    r = run_portfolio(data, "buy_hold", weights={"AAA": 0.8, "BBB": 0.2})
    value = r.positions.iloc[1] * pd.Series({"AAA": data["AAA"].open.iloc[1],
                                             "BBB": data["BBB"].open.iloc[1]})  # fmt: skip
    assert value.AAA / value.BBB == pytest.approx(4.0, rel=0.01)
    from core.errors import ParameterError

    with pytest.raises(ParameterError, match="unknown symbols"):
        run_portfolio(data, "buy_hold", weights={"ZZZ": 1.0})


def test_exposure_is_the_percent_of_bars_holding_any_symbol():
    # AAA holds from bar 1 on; BBB only trades on bars 200+ (no bars of its own before).
    late = walk(2, drop=slice(0, 200))
    r = run_portfolio({"AAA": walk(1), "BBB": late}, "buy_hold")
    held_any = (r.positions != 0).any(axis=1).mean() * 100
    assert r.stats["exposure_pct"] == pytest.approx(held_any)
    assert r.stats["exposure_pct"] == pytest.approx(299 / 300 * 100)
    symbol_bars = (r.positions != 0).to_numpy().mean() * 100
    assert symbol_bars < 70 < r.stats["exposure_pct"]  # not the flattened symbol-bars
