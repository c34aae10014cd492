"""The live evaluator gives, bar by bar, exactly the full-array targets of the backtest.

Realistic data: ibsim's seeded market (daily bars of a few listings over four years).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import strategies
from core.errors import DataError, ParameterError
from ibsim.contracts import default_world
from ibsim.market import Market
from strategies.library import LIBRARY
from strategies.live import IncrementalEvaluator, target_shares
from strategies.rulespec import compile_rules
from strategies.sizing import FixedShares

SYMBOLS = ("AAPL", "MSFT", "BHP")
CASES = [
    ("sma_cross", {"fast": 10, "slow": 30}),
    ("sma_cross", {"fast": 5, "slow": 20, "allow_short": True}),
    ("rsi_reversion", {"period": 14, "lower": 35.0, "upper": 65.0}),
    ("rsi_reversion", {"period": 7, "allow_short": True}),
    ("buy_hold", {}),
    ("macd_trend", {}),
    ("macd_trend", {"fast": 5, "slow": 35, "signal": 5, "allow_short": True}),
    ("bollinger_reversion", {"period": 20, "nbdev": 1.5}),
    ("bollinger_reversion", {"allow_short": True}),
    ("donchian_breakout", {"period": 20, "exit_period": 10}),
    ("donchian_breakout", {"period": 55, "exit_period": 20, "allow_short": True}),
]
RULES = {
    "name": "sma_rsi",
    "entry": "crosses_above(sma(close, 10), sma(close, 40)) and rsi(14) < 70",
    "exit": "rsi(close, 14) > 75 or crosses_below(close, sma(close, 40))",
}


def _bars(symbol: str) -> pd.DataFrame:
    contract = default_world().get(symbol)
    assert contract is not None
    daily = Market(seed=0).daily(contract)
    daily = daily.set_axis(daily.index.tz_localize("UTC"), axis=0)
    return daily.loc["2017-01-01":"2020-12-31"]


@pytest.fixture(scope="module")
def market() -> dict[str, pd.DataFrame]:
    return {s: _bars(s) for s in SYMBOLS}


def _assert_parity(strategy, params, bars: pd.DataFrame, *, tight: bool = True) -> int:
    """Feed bars one at a time after the warm-up; return how many targets were non-flat."""
    full = strategy.target(bars, params)
    warmup = strategy.warmup(params)
    if tight:  # the library's warm-ups are exact look-backs: nothing trades inside them
        assert not full[:warmup].any(), "every target inside the warm-up is flat"
    ev = IncrementalEvaluator(strategy, params, history=bars.iloc[:warmup])
    assert not ev.ready
    for t in range(warmup, len(bars)):
        got = ev.push(bars.iloc[t : t + 1])
        assert ev.ready
        assert got == full[t], f"{strategy.name}: bar {bars.index[t]}: {got} != {full[t]}"
    assert ev.anchor == bars.index[0] and ev.last_time == bars.index[-1]
    return int(np.count_nonzero(full))


@pytest.mark.parametrize(("name", "params"), CASES, ids=[f"{n}-{i}" for i, (n, _) in
                                                         enumerate(CASES)])  # fmt: skip
def test_incremental_targets_equal_full_array_targets_bar_by_bar(market, name, params):
    active = 0
    for bars in market.values():
        active += _assert_parity(strategies.get(name), params, bars)
    assert active > 0, "the data exercises the strategy's entries"


def test_every_library_strategy_is_covered():
    assert {name for name, _ in CASES} == set(LIBRARY)


def test_rule_spec_incremental_targets_equal_full_array_targets(market):
    strategy = compile_rules(RULES)
    assert strategy.warmup() == 2 * (10 + 14 + 40) + 1
    active = sum(_assert_parity(strategy, {}, bars, tight=False) for bars in market.values())
    assert active > 0


def test_catching_up_on_many_bars_gives_the_newest_bars_full_target(market):
    bars = market["AAPL"]
    strategy = strategies.get("macd_trend")
    full = strategy.target(bars, {})
    ev = IncrementalEvaluator(strategy, history=bars.iloc[: strategy.warmup()])
    for end in (300, 301, 700, len(bars)):
        assert ev.extend(bars.iloc[:end]) == full[end - 1]  # the old bars are skipped
    assert ev.extend(bars.iloc[-5:]) is None, "nothing new: nothing evaluated"
    assert len(ev) == len(bars)


def test_a_window_of_warmup_bars_does_not_reproduce_latched_targets(market):
    """Why the evaluator keeps its history since the anchor (strategies.live docstring)."""
    bars = market["AAPL"]
    strategy = strategies.get("sma_cross")
    full = strategy.target(bars, {})
    w = strategy.warmup({})
    windowed = [strategy.target(bars.iloc[t - w : t + 1], {})[-1] for t in range(w, len(bars))]
    assert (np.asarray(windowed) != full[w:]).any()


def test_warmups_follow_the_parameters():
    assert strategies.get("sma_cross").warmup({"fast": 5, "slow": 50}) == 50
    assert strategies.get("rsi_reversion").warmup({"period": 9}) == 9
    assert strategies.get("macd_trend").warmup({}) == 26 + 9 - 2
    assert strategies.get("bollinger_reversion").warmup({"period": 30}) == 29
    assert strategies.get("donchian_breakout").warmup({"period": 40, "exit_period": 5}) == 40
    assert strategies.get("buy_hold").warmup() == 0
    with pytest.raises(ParameterError, match="fast < slow"):
        strategies.get("sma_cross").warmup({"fast": 50, "slow": 20})


def test_push_refuses_a_bar_that_is_not_newer(market):
    bars = market["MSFT"]
    ev = IncrementalEvaluator("buy_hold", history=bars.iloc[:10])
    with pytest.raises(DataError, match="not after the last bar"):
        ev.push(bars.iloc[5:6])
    broken = bars.iloc[10:11].copy()
    broken["high"] = broken["low"] / 2
    with pytest.raises(DataError):
        ev.push(broken)
    assert len(ev) == 10, "a refused bar changes nothing"


def test_target_shares_sizes_like_the_engine():
    assert target_shares(1.0, price=100.0, capital=10_050.0) == 100
    assert target_shares(-0.5, price=100.0, capital=10_000.0) == -50
    assert target_shares(0.0, price=100.0, capital=10_000.0) == 0
    assert target_shares(1.0, price=100.0, capital=10_000.0, size=0.25) == 25
    assert target_shares(-1.0, price=100.0, capital=1.0, size=FixedShares(7)) == -7
    with pytest.raises(ParameterError, match="price"):
        target_shares(1.0, price=float("nan"), capital=1.0)
    with pytest.raises(ParameterError, match="size"):
        target_shares(1.0, price=1.0, capital=1.0, size=1.5)
