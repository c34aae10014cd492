"""Engine tests that script targets bar by bar on tiny hand-made frames."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.errors import DataError, ParameterError
from strategies.engine import Commission, FixedShares, VolTarget, run_backtest
from tests.unit.strategies.scripted import Scripted


def frame(opens, closes=None, highs=None, lows=None) -> pd.DataFrame:
    o = np.asarray(opens, dtype=float)
    c = np.asarray(closes if closes is not None else opens, dtype=float)
    h = np.asarray(highs, dtype=float) if highs is not None else np.maximum(o, c)
    lo = np.asarray(lows, dtype=float) if lows is not None else np.minimum(o, c)
    idx = pd.date_range("2024-01-01", periods=len(o), freq="D", tz="UTC")
    return pd.DataFrame({"open": o, "high": h, "low": lo, "close": c, "volume": 1.0}, idx)


def run(bars, targets, **kw):
    kw.setdefault("cash", 1000.0)
    kw.setdefault("benchmark", False)
    return run_backtest(bars, Scripted(targets), **kw)


def test_next_open_fill_buys_at_the_bar_after_the_signal_and_sells_likewise():
    bars = frame([10, 10, 11, 12, 13, 14], closes=[10, 10.5, 11.5, 12.5, 13.5, 14.5])
    r = run(bars, [0, 1, 1, 1, 0, 0])
    (t,) = r.trades.itertuples()
    assert (t.entry_time, t.entry_price, t.size) == (bars.index[2], 11.0, 90.0)
    assert (t.exit_time, t.exit_price) == (bars.index[5], 14.0)
    assert t.pnl == pytest.approx(90 * 3.0)
    assert r.positions.tolist() == [0, 0, 90, 90, 90, 0]
    assert r.equity.iloc[3] == pytest.approx(1000 - 990 + 90 * 12.5)
    assert r.equity.iloc[-1] == pytest.approx(1270.0)


def test_fill_close_trades_at_the_signal_bars_close():
    bars = frame([10, 10, 11, 12, 13, 14], closes=[10, 10.0, 11.5, 12.5, 12.5, 14.5])
    r = run(bars, [0, 1, 1, 1, 0, 0], fill="close")
    (t,) = r.trades.itertuples()
    assert (t.entry_time, t.entry_price, t.size) == (bars.index[1], 10.0, 100.0)
    assert (t.exit_time, t.exit_price) == (bars.index[4], 12.5)
    assert r.positions.tolist() == [0, 100, 100, 100, 0, 0]


def test_fractional_commission_is_charged_on_entry_and_exit_and_sizes_net_of_it():
    bars = frame([10, 10, 10, 20, 20])
    r = run(bars, [1, 1, 0, 0, 0], commission=0.01)
    (t,) = r.trades.itertuples()
    assert t.size == 99  # floor(1000 / (10 * 1.01))
    assert t.commission == pytest.approx(99 * 10 * 0.01 + 99 * 20 * 0.01)
    assert r.equity.iloc[-1] == pytest.approx(1000 - 990 - 9.9 + 1980 - 19.8)
    assert t.pnl == pytest.approx(99 * 10 - 9.9 - 19.8)


def test_ibkr_commission_applies_the_one_dollar_minimum():
    bars = frame([10, 10, 10, 10])
    r = run(bars, [1, 0, 0, 0], commission="ibkr")
    (t,) = r.trades.itertuples()
    assert t.size == 99  # 99 * 10 + 1.00 minimum fits in 1000; 100 shares would not
    assert t.commission == pytest.approx(2.0)
    assert r.equity.iloc[-1] == pytest.approx(998.0)


def test_ibkr_commission_is_capped_at_one_percent_of_value_and_per_share_above_minimum():
    cheap = run(frame([5, 5, 5, 5]), [1, 0, 0, 0], commission="ibkr", size=FixedShares(1))
    assert cheap.trades.commission.iloc[0] == pytest.approx(2 * 0.05)  # 1% of $5, not $1
    big = run(frame([10, 10, 10]), [1, 0, 0], commission="ibkr", cash=1e6, size=FixedShares(1000))
    assert big.trades.commission.iloc[0] == pytest.approx(2 * 5.0)  # 1000 x 0.005


def test_commission_object_combines_rate_per_share_and_minimum():
    fee = Commission(rate=0.001, per_share=0.01, minimum=2.0)
    assert fee.of(10, 100.0) == pytest.approx(2.0 + 1.0)
    assert fee.of(1000, 10.0) == pytest.approx(10.0 + 10.0)


def test_slippage_moves_fills_against_the_trader_both_ways():
    bars = frame([100, 100, 100, 100, 100])
    r = run(bars, [1, 0, -1, 0, 0], slippage_bps=100, cash=10_000, allow_short=True)
    long, short = r.trades.itertuples()
    assert (long.entry_price, long.exit_price) == (pytest.approx(101.0), pytest.approx(99.0))
    assert long.size == 99  # floor(10000 / 101)
    assert short.side == "short" and short.entry_price == pytest.approx(99.0)


def test_stop_loss_fills_at_the_stop_price_intrabar():
    bars = frame([10, 10, 9.8, 9.8], closes=[10, 10, 9.7, 9.9], lows=[10, 10, 9.4, 9.7])
    r = run(bars, [1, 1, 1, 1], stop_loss_pct=5)
    (t,) = r.trades.itertuples()
    assert (t.entry_time, t.exit_time) == (bars.index[1], bars.index[2])
    assert t.exit_price == pytest.approx(9.5)
    assert r.positions.iloc[-1] == 0  # no re-entry while the target is unchanged


def test_stop_loss_gapped_through_fills_at_the_open():
    bars = frame([10, 10, 9.0, 9.5], lows=[10, 10, 8.9, 9.4])
    r = run(bars, [1, 1, 1, 1], stop_loss_pct=5)
    assert r.trades.exit_price.iloc[0] == pytest.approx(9.0)


def test_take_profit_fills_at_target_or_at_a_better_gapping_open():
    touched = run(
        frame([10, 10, 10.5, 10], highs=[10, 10.2, 11.2, 10]), [1] * 4, take_profit_pct=10
    )
    assert touched.trades.exit_price.iloc[0] == pytest.approx(11.0)
    gapped = run(frame([10, 10, 11.5, 10]), [1] * 4, take_profit_pct=10)
    assert gapped.trades.exit_price.iloc[0] == pytest.approx(11.5)


def test_stop_wins_when_stop_and_target_are_touched_in_one_bar():
    bars = frame([10, 10, 10, 10], highs=[10, 10, 11.5, 10], lows=[10, 10, 9.0, 10])
    r = run(bars, [1] * 4, stop_loss_pct=5, take_profit_pct=10)
    assert r.trades.exit_price.iloc[0] == pytest.approx(9.5)


def test_short_stop_is_above_entry():
    bars = frame([10, 10, 10.2, 10], highs=[10, 10, 10.8, 10])
    r = run(bars, [-1] * 4, stop_loss_pct=5)
    (t,) = r.trades.itertuples()
    assert t.side == "short" and t.exit_price == pytest.approx(10.5)
    assert t.pnl == pytest.approx(-t.size * 0.5)


def test_short_profits_when_price_falls_and_reversal_closes_then_opens():
    bars = frame([10, 10, 8, 8, 9, 9])
    r = run(bars, [-1, -1, 1, 1, 0, 0])
    short, long = r.trades.itertuples()
    assert (short.side, short.size, short.exit_price) == ("short", 100, 8.0)
    assert short.pnl == pytest.approx(200.0)
    assert (long.entry_time, long.entry_price, long.size) == (bars.index[3], 8.0, 150)
    assert long.exit_price == 9.0 and r.equity.iloc[-1] == pytest.approx(1350.0)


def test_allow_short_false_drops_short_targets():
    r = run(frame([10, 10, 8, 8]), [-1, -1, 0, 0], allow_short=False)
    assert r.trades.empty and (r.positions == 0).all()


def test_cash_never_goes_negative_with_costs_and_all_in_sizing():
    rng = np.random.default_rng(77)
    close = 20 * np.exp(np.cumsum(rng.normal(0, 0.03, 400)))
    opens = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.01, 400))
    targets = rng.choice([0.0, 0.5, 1.0], size=400)
    bars = frame(opens, close)
    for commission in (0.003, "ibkr"):
        r = run(bars, targets, commission=commission, slippage_bps=25, cash=5000)
        cash = r.equity - r.positions * bars.close
        assert len(r.trades) > 20
        assert cash.min() >= -1e-9


def test_fixed_shares_sizes_every_entry_and_is_capped_by_cash():
    r = run(frame([10, 10, 10, 10, 10]), [1, 0, 1, 0, 0], size=FixedShares(7))
    assert r.trades["size"].tolist() == [7, 7]
    capped = run(frame([10, 10, 10]), [1, 0, 0], size=FixedShares(500))
    assert capped.trades["size"].tolist() == [100]


def test_fractional_size_and_fractional_targets_scale_the_position():
    r = run(frame([10, 10, 10, 10, 10]), [0.5, 1, 0, 0, 0], size=0.5)
    assert r.positions.tolist()[1:3] == [25, 50]


def test_vol_target_sizes_by_realized_volatility_up_to_the_signal_bar():
    rng = np.random.default_rng(5)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, 60)))
    bars = frame(close)
    targets = np.r_[np.zeros(30), np.ones(30)]
    r = run(bars, targets, size=VolTarget(annual_vol=0.1, lookback=20), cash=100_000)
    vol = pd.Series(np.log(close)).diff().rolling(20).std().iloc[30] * math.sqrt(252)
    expected = math.floor(min(0.1 / vol, 1.0) * 100_000 / close[31])
    assert r.trades.empty and r.positions.iloc[31] == expected
    assert 0 < expected < 100_000 / close[31] / 2


def test_open_position_at_the_end_stays_open_and_is_marked_at_the_last_close():
    r = run(frame([10, 10, 12], closes=[10, 11, 13]), [1, 1, 1])
    assert r.trades.empty and r.positions.iloc[-1] == 100
    assert r.equity.iloc[-1] == pytest.approx(1300.0)


def test_result_is_frozen_and_trades_have_the_public_columns():
    r = run(frame([10, 10, 11, 11]), [1, 0, 0, 0])
    assert list(r.trades.columns) == [
        "symbol",
        "side",
        "size",
        "entry_time",
        "entry_price",
        "exit_time",
        "exit_price",
        "pnl",
        "return_pct",
        "commission",
    ]
    assert r.trades.return_pct.iloc[0] == pytest.approx(10.0)
    assert list(r.trades.side.cat.categories) == ["long", "short"]
    assert r.trades.side.tolist() == ["long"] and r.trades.symbol.tolist() == [""]
    assert str(r.trades.entry_time.dtype) == str(r.equity.index.dtype)
    with pytest.raises(AttributeError):
        r.equity = r.equity  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"commission": "ibkrr"}, "commission"),
        ({"commission": 0.5}, "commission"),
        ({"fill": "next_close"}, "fill"),
        ({"size": 1.5}, "size"),
        ({"margin": 0}, "margin"),
        ({"stop_loss_pct": -1}, "stop_loss_pct"),
        ({"slippage_bps": -3}, "slippage_bps"),
    ],
)
def test_bad_arguments_raise_parameter_errors_naming_the_field(kwargs, field):
    with pytest.raises(ParameterError) as info:
        run(frame([10, 10, 10]), [0, 0, 0], **kwargs)
    assert info.value.field == field


def test_bad_bars_raise_data_error():
    bars = frame([10, 10, 10]).drop(columns="volume")
    with pytest.raises(DataError, match="volume"):
        run(bars, [0, 0, 0])
    naive = frame([10, 10, 10]).tz_localize(None)
    with pytest.raises(DataError, match="timezone"):
        run(naive, [0, 0, 0])
    words = frame([10, 10, 10]).assign(volume=["a", "b", "c"])
    with pytest.raises(DataError, match="numeric") as info:
        run(words, [0, 0, 0])
    assert info.value.field == "volume"


def test_result_bars_are_float64_and_isolated_from_later_edits_of_the_input():
    bars = frame([10, 11, 12]).assign(volume=[1, 2, 3], extra="x")  # int volume, extra column
    r = run(bars, [1, 1, 1])
    assert list(r.bars.columns) == ["open", "high", "low", "close", "volume"]
    assert (r.bars.dtypes == np.float64).all()
    bars.loc[bars.index[0], "close"] = 99.0
    canonical = frame([10, 11, 12])
    r2 = run(canonical, [1, 1, 1])
    canonical.loc[canonical.index[0], "close"] = 99.0
    assert r.bars.close.iloc[0] == 10.0 and r2.bars.close.iloc[0] == 10.0
    r2.bars.loc[r2.bars.index[1], "close"] = 5.0  # the result's frame is writable
    assert canonical.close.iloc[1] == 11.0


def test_margin_allows_leverage_but_not_beyond_it():
    r = run(frame([10, 10, 10]), [1, 1, 1], margin=0.5)
    assert r.positions.iloc[-1] == 200


@pytest.mark.parametrize("unit", ["s", "ms", "us", "ns"])
def test_periods_per_year_does_not_depend_on_the_index_time_unit(unit):
    from strategies.engine import periods_per_year

    daily = pd.date_range("2020-01-01", periods=300, freq="B", tz="UTC").as_unit(unit)
    minutes = pd.date_range("2020-01-02 14:30", periods=300, freq="min", tz="UTC").as_unit(unit)
    assert periods_per_year(daily) == 252.0
    assert periods_per_year(minutes) == pytest.approx(252.0 * 390)


def test_bar_store_frames_with_extra_columns_backtest_like_the_five_columns():
    rng = np.random.default_rng(5)
    close = 50 * np.exp(np.cumsum(rng.normal(0, 0.02, 300)))
    bars = frame(close)
    stored = bars.assign(wap=close, bar_count=np.arange(300))[
        ["open", "high", "low", "close", "volume", "wap", "bar_count"]
    ]
    plain = run_backtest(bars, "sma_cross", {"fast": 5, "slow": 20}, commission=0.001)
    wide = run_backtest(stored, "sma_cross", {"fast": 5, "slow": 20}, commission=0.001)
    assert len(plain.trades) > 3
    pd.testing.assert_frame_equal(plain.trades, wide.trades)
    pd.testing.assert_series_equal(plain.equity, wide.equity)
    assert list(wide.bars.columns) == ["open", "high", "low", "close", "volume"]


def test_a_pandas_without_the_block_constructor_gives_the_same_result(monkeypatch):
    rng = np.random.default_rng(9)
    bars = frame(50 * np.exp(np.cumsum(rng.normal(0, 0.02, 200))))
    fast = run_backtest(bars, "sma_cross", {"fast": 5, "slow": 20}, commission=0.001)
    monkeypatch.delattr(pd.api.internals, "create_dataframe_from_blocks")
    slow = run_backtest(bars, "sma_cross", {"fast": 5, "slow": 20}, commission=0.001)
    assert len(fast.trades) > 2
    pd.testing.assert_frame_equal(slow.trades, fast.trades)
    pd.testing.assert_frame_equal(slow.bars, fast.bars)
    assert pd.Series(slow.stats).equals(pd.Series(fast.stats))
