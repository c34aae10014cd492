"""metrics.summarize (the engine's array path) against compute_stats, and warning hygiene."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

from strategies import _metric_kernels as mk
from strategies.engine import run_backtest
from strategies.metrics import STAT_KEYS, compute_stats, summarize


def test_kernel_slots_follow_stat_keys():
    slots = {name: getattr(mk, name) for name in dir(mk) if name.startswith("S_")}
    assert sorted(slots.values()) == list(range(len(STAT_KEYS))) == list(range(mk.N_STATS))
    assert STAT_KEYS[mk.S_RETURN] == "return_pct"
    assert STAT_KEYS[mk.S_EXPOSURE] == "exposure_pct"
    assert STAT_KEYS[mk.S_FINAL] == "final_equity"


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    rng = np.random.default_rng(12)
    n = 800
    close = 30 * np.exp(np.cumsum(rng.normal(0.0002, 0.02, n)))
    idx = pd.date_range("2015-01-01", periods=n, freq="B", tz="UTC")
    return pd.DataFrame(
        {"open": close, "high": close * 1.02, "low": close * 0.98, "close": close, "volume": 1e5},
        index=idx,
    )


def test_backtest_stats_equal_compute_stats_on_its_outputs(bars):
    result = run_backtest(bars, "sma_cross", {"fast": 5, "slow": 40}, commission=0.001)
    again = compute_stats(
        result.equity,
        trades=result.trades,
        positions=result.positions,
        benchmark=bars["close"],
    )
    assert result.stats["n_trades"] > 5
    for key in STAT_KEYS:
        assert result.stats[key] == pytest.approx(again[key], rel=1e-12, nan_ok=True), key


def test_summarize_without_optional_inputs_leaves_their_metrics_nan():
    equity = 1000 * np.cumprod(1 + np.random.default_rng(2).normal(0, 0.01, 300))
    s = summarize(equity)
    assert s["n_trades"] == 0
    assert all(math.isnan(s[k]) for k in ("alpha", "beta", "exposure_pct", "max_drawdown_days"))
    assert not math.isnan(s["max_drawdown_duration"]) and s["sharpe"] == s["sharpe"]


def test_undefined_metrics_raise_no_runtime_warnings(bars):
    idx = pd.date_range("2024-01-01", periods=40, freq="D", tz="UTC")
    flat = bars.iloc[:40].set_axis(idx).assign(open=10.0, high=10.0, low=10.0, close=10.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s = compute_stats(pd.Series(1000.0, idx), positions=np.zeros(40))
        r = run_backtest(flat, "sma_cross", {"fast": 2, "slow": 5})
    assert math.isnan(s["sharpe"]) and math.isnan(r.stats["beta"])
    assert r.stats["n_trades"] == 0 and math.isnan(r.stats["profit_factor"])


@pytest.mark.parametrize("shape", ["normal", "mostly_flat", "gains_only", "losses_only", "ticks"])
def test_tail_percentiles_and_cvar_equal_numpy_whatever_the_sign_mix(shape):
    rng = np.random.default_rng(len(shape))
    for m in (1, 2, 3, 19, 20, 21, 250, 2519):
        r = rng.normal(0, 0.01, m)
        if shape == "mostly_flat":
            r[rng.random(m) < 0.7] = 0.0
        elif shape == "gains_only":
            r = np.abs(r) * (rng.random(m) < 0.5)
        elif shape == "losses_only":
            r = -np.abs(r) * (rng.random(m) < 0.8)
        elif shape == "ticks":
            r = np.round(r, 3)
        low, high, cvar = mk._tails(r, 0.05)
        smallest = np.sort(r)[: int((m - 1) * 0.05) + 1]
        assert low == pytest.approx(np.percentile(r, 5), rel=1e-12, abs=1e-18), (shape, m)
        assert high == pytest.approx(np.percentile(r, 95), rel=1e-12, abs=1e-18), (shape, m)
        assert cvar == pytest.approx(smallest.mean(), rel=1e-12, abs=1e-18), (shape, m)


def test_exposure_of_two_dimensional_positions_counts_bars_with_any_position():
    equity = np.linspace(100.0, 110.0, 8)
    positions = np.array(
        [[0, 0], [1, 0], [1, 2], [0, 2], [0, 0], [0, np.nan], [3, 0], [0, 0]], dtype=float
    )
    assert summarize(equity, positions=positions)["exposure_pct"] == pytest.approx(50.0)
    idx = pd.date_range("2024-01-01", periods=8, freq="D", tz="UTC")
    frame = pd.DataFrame(positions, idx, ["A", "B"])
    stats = compute_stats(pd.Series(equity, idx), positions=frame)
    assert stats["exposure_pct"] == pytest.approx(50.0)
    single = summarize(equity, positions=positions[:, :1])["exposure_pct"]
    assert single == pytest.approx(37.5)  # one column: as before


def test_returns_after_ruin_are_zero_not_undefined():
    equity = np.array([100.0, 120.0, 0.0, 0.0, 0.0])
    stats = summarize(equity)
    assert stats["return_pct"] == -100.0 and stats["max_drawdown_pct"] == -100.0
    assert np.isfinite(stats["sharpe"]) and np.isfinite(stats["volatility_pct"])
