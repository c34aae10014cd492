"""Library strategies: causal targets, long-only by default, shorts on request."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import strategies
from strategies.library import LIBRARY, crosses_above, crosses_below
from strategies.lookahead import check_lookahead


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    rng = np.random.default_rng(424242)
    n = 600
    close = 80 * np.exp(np.cumsum(rng.normal(0, 0.015, n)))
    opens = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.003, n))
    idx = pd.date_range("2018-01-01", periods=n, freq="B", tz="UTC")
    return pd.DataFrame(
        {
            "open": opens,
            "high": np.maximum(opens, close) * 1.01,
            "low": np.minimum(opens, close) * 0.99,
            "close": close,
            "volume": 1e5,
        },
        index=idx,
    )


def test_crossings_need_a_strict_move_from_one_side_to_the_other():
    a = np.array([1.0, 2.0, 3.0, 3.0, 2.0, np.nan, 4.0])
    b = np.full(7, 2.5)
    assert crosses_above(a, b).tolist() == [False, False, True, False, False, False, False]
    assert crosses_below(a, b).tolist() == [False, False, False, False, True, False, False]
    assert crosses_above(a, 2.5).tolist() == crosses_above(a, b).tolist()


@pytest.mark.parametrize("name", list(LIBRARY))
def test_every_library_strategy_trades_and_passes_the_lookahead_check(name, bars):
    strat = strategies.get(name)
    target = strat.target(bars)
    assert target.shape == (len(bars),)
    assert set(np.unique(target)) <= {0.0, 1.0}
    assert (target == 1.0).any()
    params = {"allow_short": True} if "allow_short" in strat.params else None
    report = check_lookahead(strat, bars, params, samples=12)
    assert report.passed, str(report)
    assert report.checked == 12


@pytest.mark.parametrize("name", [n for n, s in LIBRARY.items() if "allow_short" in s.params])
def test_allow_short_turns_exits_into_short_entries(name, bars):
    strat = strategies.get(name)
    target = strat.target(bars, {"allow_short": True})
    assert (target == -1.0).any() and (target == 1.0).any()
    long_only = strat.target(bars)
    assert ((long_only == 1.0) <= (target == 1.0) | (long_only == 0)).all()


def test_sma_cross_matches_a_hand_written_crossover_state(bars):
    close = bars.close
    fast, slow = close.rolling(5).mean().to_numpy(), close.rolling(20).mean().to_numpy()
    state, expected = 0.0, []
    for t in range(len(close)):
        if t > 0 and fast[t - 1] < slow[t - 1] and fast[t] > slow[t]:
            state = 1.0
        elif t > 0 and fast[t - 1] > slow[t - 1] and fast[t] < slow[t]:
            state = 0.0
        expected.append(state)
    got = strategies.get("sma_cross").target(bars, {"fast": 5, "slow": 20})
    assert got.tolist() == expected


def test_buy_hold_is_always_long(bars):
    assert (strategies.get("buy_hold").target(bars) == 1.0).all()
