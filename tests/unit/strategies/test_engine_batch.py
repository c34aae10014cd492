"""run_batch: one kernel call over many parameter sets, equal to run_backtest per set."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from core.errors import ParameterError
from strategies.engine import run_backtest, run_batch

KEYS = ["return_pct", "cagr_pct", "sharpe", "sortino", "max_drawdown_pct", "n_trades",
        "win_rate_pct", "profit_factor"]  # fmt: skip


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    rng = np.random.default_rng(8080)
    n = 700
    close = 40 * np.exp(np.cumsum(rng.normal(0.0002, 0.018, n)))
    opens = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.005, n))
    idx = pd.date_range("2016-01-01", periods=n, freq="B", tz="UTC")
    return pd.DataFrame(
        {"open": opens, "high": np.maximum(opens, close) * 1.01,
         "low": np.minimum(opens, close) * 0.99, "close": close, "volume": 1e5},
        index=idx,
    )  # fmt: skip


@pytest.mark.parametrize(
    "costs",
    [
        {"commission": 0.001, "slippage_bps": 5.0},
        {"commission": "ibkr", "fill": "close", "allow_short": True},
        {"commission": 0.0, "stop_loss_pct": 3.0, "take_profit_pct": 8.0},
    ],
)
def test_each_row_equals_the_single_backtest_of_that_set(bars, costs):
    sets = [{"fast": f, "slow": s} for f, s in [(5, 20), (10, 30), (3, 60), (20, 50), (8, 9)]]
    table = run_batch(bars, "sma_cross", sets, cash=50_000, **costs)
    assert len(table) == len(sets)
    assert table[["fast", "slow"]].to_dict("records") == sets
    for row, params in zip(table.itertuples(), sets, strict=True):
        single = run_backtest(bars, "sma_cross", params, cash=50_000, **costs).stats
        for key in KEYS:
            assert getattr(row, key) == pytest.approx(single[key], rel=1e-9, nan_ok=True), key
    assert table.n_trades.sum() > 20


def test_indicators_are_computed_once_per_distinct_argument(bars, monkeypatch):
    from strategies import indicators

    calls: list[int] = []
    real = indicators.sma

    def counting(values, timeperiod=30):
        calls.append(timeperiod)
        return real(values, timeperiod)

    monkeypatch.setattr(indicators, "sma", counting)
    sets = [{"fast": f, "slow": s} for f, s in itertools.combinations(range(2, 12), 2)]
    run_batch(bars, "sma_cross", sets)
    assert sorted(calls) == list(range(2, 12))


def test_bad_parameter_set_is_rejected_before_running(bars):
    with pytest.raises(ParameterError, match="fast < slow"):
        run_batch(bars, "sma_cross", [{"fast": 5, "slow": 20}, {"fast": 30, "slow": 20}])


def test_score_from_scores_only_the_bars_from_it_on_with_the_history_traded_before(bars):
    import empyrical as ep

    sets = [{"fast": 5, "slow": 20}, {"fast": 10, "slow": 60}]
    start = 400
    table = run_batch(bars, "sma_cross", sets, commission=0.001, score_from=start)
    for row, params in zip(table.itertuples(), sets, strict=True):
        equity = run_backtest(bars, "sma_cross", params, commission=0.001).equity
        returns = equity.iloc[start - 1 :].pct_change().iloc[1:]  # the scored bars' returns
        assert len(returns) == len(bars) - start
        assert row.sharpe == pytest.approx(ep.sharpe_ratio(returns, annualization=252), rel=1e-9)
        total = (equity.iloc[-1] / equity.iloc[start - 1] - 1) * 100
        assert row.return_pct == pytest.approx(total, rel=1e-9)
    whole = run_batch(bars, "sma_cross", sets, commission=0.001)
    assert not np.allclose(table.sharpe, whole.sharpe)  # the first 400 bars are not scored


@pytest.mark.parametrize("start", [-1, 700])
def test_score_from_outside_the_bars_is_refused_naming_it(bars, start):
    with pytest.raises(ParameterError, match="score_from") as caught:
        run_batch(bars, "sma_cross", [{"fast": 5, "slow": 20}], score_from=start)
    assert caught.value.field == "score_from"
