"""Strategy.targets_batch: the vectorized sma_cross hook equals per-set targets."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

import strategies
from strategies.base import IndicatorCache, IntParam, Strategy
from strategies.engine import run_backtest, run_batch


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    rng = np.random.default_rng(77)
    n = 600
    close = 50 * np.exp(np.cumsum(rng.normal(0.0001, 0.015, n)))
    idx = pd.date_range("2018-01-01", periods=n, freq="B", tz="UTC")
    return pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1e5},
        index=idx,
    )


@pytest.mark.parametrize("short", [False, True])
def test_sma_cross_batch_targets_equal_each_sets_target(bars, short):
    strat = strategies.get("sma_cross")
    sets = [
        strat.resolve({"fast": f, "slow": s, "allow_short": short})
        for f, s in itertools.combinations([2, 3, 5, 8, 13, 21, 34], 2)
    ]
    batch = strat.targets_batch(bars, sets, IndicatorCache(bars))
    assert batch.shape == (len(bars), len(sets))
    assert batch.flags.f_contiguous
    for j, p in enumerate(sets):
        np.testing.assert_array_equal(batch[:, j], strat.target(bars, p, resolved=True))
    assert (batch < 0).any() == short
    assert (batch > 0).any()


class _Momentum(Strategy):
    """A strategy without a vectorized hook: long after an up bar (the default fallback)."""

    name = "test_momentum"
    params = {"lag": IntParam(1, 1, 10)}  # noqa: RUF012 - ClassVar mapping, as in the library

    def signal(self, bars, p, ind):
        close = ind.column("close")
        out = np.zeros(len(close))
        out[p["lag"] :] = np.sign(close[p["lag"] :] - close[: -p["lag"]])
        return out


def test_default_targets_batch_stacks_target_per_set(bars):
    strat = _Momentum()
    sets = [{"lag": lag} for lag in (1, 2, 5)]
    batch = strat.targets_batch(bars, sets, IndicatorCache(bars))
    for j, p in enumerate(sets):
        np.testing.assert_array_equal(batch[:, j], strat.target(bars, p, resolved=True))
    assert (batch < 0).any()


def test_long_only_override_clips_batch_targets_of_a_strategy_without_allow_short(bars):
    sets = [{"lag": 1}, {"lag": 3}]
    table = run_batch(bars, _Momentum(), sets, allow_short=False, commission=0.001)
    for row, p in zip(table.itertuples(), sets, strict=True):
        single = run_backtest(bars, _Momentum(), p, allow_short=False, commission=0.001)
        assert row.n_trades == single.stats["n_trades"]
        assert row.sharpe == pytest.approx(single.stats["sharpe"], rel=1e-9, nan_ok=True)
        assert (single.trades["side"] == "long").all()


def test_run_batch_spans_several_chunks_and_keeps_row_order(bars, monkeypatch):
    from strategies import batch

    monkeypatch.setattr(batch, "CHUNK", 4)
    sets = [{"fast": f, "slow": s} for f, s in itertools.combinations(range(3, 9), 2)]
    table = run_batch(bars, "sma_cross", sets, fill="close")
    assert table[["fast", "slow"]].to_dict("records") == sets
    for i in (0, 5, len(sets) - 1):
        single = run_backtest(bars, "sma_cross", sets[i], fill="close").stats
        assert table.loc[i, "n_trades"] == single["n_trades"]
        assert table.loc[i, "return_pct"] == pytest.approx(single["return_pct"], rel=1e-9)
