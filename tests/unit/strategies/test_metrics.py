"""strategies.metrics against empyrical-reloaded, hand-computed trades, and batch parity."""

from __future__ import annotations

import math
import warnings

import empyrical as ep
import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from strategies.metrics import BATCH_KEYS, STAT_KEYS, batch_stats, compute_stats

TOL = {"rtol": 1e-9, "atol": 1e-12}


def make_equity(returns: np.ndarray, start: float = 10_000.0) -> pd.Series:
    idx = pd.date_range("2019-01-01", periods=len(returns) + 1, freq="B", tz="UTC")
    return pd.Series(start * np.concatenate([[1.0], np.cumprod(1.0 + returns)]), idx)


def normal_returns() -> np.ndarray:
    return np.random.default_rng(5).normal(0.0004, 0.012, 1500)


def fat_tailed_returns() -> np.ndarray:
    rng = np.random.default_rng(9)
    r = rng.standard_t(3, 900) * 0.01
    r[400:460] = -np.abs(r[400:460])  # a long slide
    return r


RETURNS = {"normal": normal_returns(), "fat_tailed": fat_tailed_returns()}


@pytest.fixture(params=sorted(RETURNS))
def case(request) -> tuple[np.ndarray, np.ndarray, pd.Series, pd.Series]:
    r = RETURNS[request.param]
    noise = np.random.default_rng(1).normal(0, 0.01, len(r))
    rb = 0.6 * r + noise
    return r, rb, make_equity(r), make_equity(rb, 100.0)


def test_return_metrics_equal_empyrical(case) -> None:
    r, rb, equity, bench = case
    s = compute_stats(equity, benchmark=bench)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        alpha, beta = ep.alpha_beta(r, rb)
        expected = {
            "return_pct": ep.cum_returns_final(r) * 100,
            "cagr_pct": ep.annual_return(r) * 100,
            "volatility_pct": ep.annual_volatility(r) * 100,
            "sharpe": ep.sharpe_ratio(r),
            "sortino": ep.sortino_ratio(r),
            "calmar": ep.calmar_ratio(r),
            "omega": ep.omega_ratio(r),
            "max_drawdown_pct": ep.max_drawdown(r) * 100,
            "tail_ratio": ep.tail_ratio(r),
            "var_95": ep.value_at_risk(r),
            "cvar_95": ep.conditional_value_at_risk(r),
            "alpha": alpha,
            "beta": beta,
            "stability": ep.stability_of_timeseries(r),
        }
    for key, value in expected.items():
        np.testing.assert_allclose(s[key], value, **TOL, err_msg=key)
    assert s["final_equity"] == pytest.approx(equity.iloc[-1], rel=1e-12)


def test_risk_free_matches_empyrical_per_period_convention(case) -> None:
    r, rb, equity, bench = case
    rf = 0.0001
    s = compute_stats(equity, benchmark=bench, risk_free=rf)
    np.testing.assert_allclose(s["sharpe"], ep.sharpe_ratio(r, risk_free=rf), **TOL)
    np.testing.assert_allclose(s["sortino"], ep.sortino_ratio(r, required_return=rf), **TOL)
    np.testing.assert_allclose(s["omega"], ep.omega_ratio(r, risk_free=rf), **TOL)
    alpha, beta = ep.alpha_beta(r, rb, risk_free=rf)
    np.testing.assert_allclose([s["alpha"], s["beta"]], [alpha, beta], **TOL)


def test_hourly_annualisation_matches_empyrical(case) -> None:
    r, _, equity, _ = case
    ppy = 252 * 7
    s = compute_stats(equity, periods_per_year=ppy)
    np.testing.assert_allclose(s["sharpe"], ep.sharpe_ratio(r, annualization=ppy), **TOL)
    np.testing.assert_allclose(s["cagr_pct"], ep.annual_return(r, annualization=ppy) * 100, **TOL)


def test_moments_and_psr_match_scipy(case) -> None:
    r, _, equity, _ = case
    s = compute_stats(equity)
    np.testing.assert_allclose(s["skew"], sps.skew(r), **TOL)
    np.testing.assert_allclose(s["kurtosis"], sps.kurtosis(r), **TOL)
    sr = r.mean() / r.std(ddof=1)
    g3, g4 = sps.skew(r), sps.kurtosis(r, fisher=False)
    z = sr * math.sqrt(len(r) - 1) / math.sqrt(1 - g3 * sr + (g4 - 1) / 4 * sr**2)
    np.testing.assert_allclose(s["psr"], sps.norm.cdf(z), rtol=1e-9)


def test_drawdown_duration_and_ulcer_index_by_hand() -> None:
    idx = pd.date_range("2024-01-01", periods=7, freq="D", tz="UTC")
    equity = pd.Series([100.0, 110.0, 99.0, 88.0, 105.0, 110.0, 121.0], idx)
    s = compute_stats(equity)
    assert s["max_drawdown_pct"] == pytest.approx(-20.0)
    assert s["max_drawdown_duration"] == 4  # peak on bar 1, back to it on bar 5
    assert s["max_drawdown_days"] == 4
    dd = np.array([0, 0, -0.1, -0.2, 105 / 110 - 1, 0, 0]) * 100
    assert s["ulcer_index"] == pytest.approx(math.sqrt(np.mean(dd**2)))


def test_unrecovered_drawdown_runs_to_the_last_bar() -> None:
    idx = pd.date_range("2024-01-01", periods=5, freq="D", tz="UTC")
    s = compute_stats(pd.Series([100.0, 120.0, 90.0, 95.0, 100.0], idx))
    assert s["max_drawdown_duration"] == 3
    assert s["max_drawdown_pct"] == pytest.approx(-25.0)


def small_trades(index: pd.DatetimeIndex) -> pd.DataFrame:
    rows = [  # pnl and return_pct chosen by hand
        ("AAA", "long", 10, index[0], 100.0, index[2], 110.0, 100.0, 10.0, 1.0),
        ("AAA", "long", 10, index[3], 110.0, index[4], 99.0, -110.0, -10.0, 1.0),
        ("AAA", "short", 5, index[5], 100.0, index[8], 80.0, 100.0, 20.0, 1.0),
        ("AAA", "long", 10, index[8], 80.0, index[9], 76.0, -40.0, -5.0, 1.0),
    ]
    cols = "symbol side size entry_time entry_price exit_time exit_price pnl return_pct commission"
    return pd.DataFrame(rows, columns=cols.split())


def test_trade_metrics_by_hand() -> None:
    idx = pd.date_range("2024-01-01", periods=10, freq="D", tz="UTC")
    equity = pd.Series(np.linspace(1000, 1050, 10), idx)
    positions = np.array([1, 1, 0, 1, 0, -1, -1, -1, 1, 0])
    s = compute_stats(equity, trades=small_trades(idx), positions=positions)
    assert s["n_trades"] == 4
    assert s["win_rate_pct"] == 50.0
    assert s["profit_factor"] == pytest.approx(200 / 150)
    assert s["expectancy"] == pytest.approx((10 - 10 + 20 - 5) / 4)
    assert s["avg_win_pct"] == pytest.approx(15.0)
    assert s["avg_loss_pct"] == pytest.approx(-7.5)
    assert s["best_trade_pct"] == 20.0
    assert s["worst_trade_pct"] == -10.0
    assert s["avg_holding_bars"] == pytest.approx((2 + 1 + 3 + 1) / 4)
    assert s["exposure_pct"] == pytest.approx(70.0)
    pnl = np.array([100.0, -110.0, 100.0, -40.0])
    assert s["sqn"] == pytest.approx(2 * pnl.mean() / pnl.std(ddof=1))
    assert s["kelly"] == pytest.approx(0.5 - 0.5 / (100 / 75))


def test_exposure_from_trades_when_no_positions() -> None:
    idx = pd.date_range("2024-01-01", periods=10, freq="D", tz="UTC")
    s = compute_stats(pd.Series(np.linspace(1000, 1050, 10), idx), trades=small_trades(idx))
    assert s["exposure_pct"] == pytest.approx(70.0)  # bars 0-1, 3, 5-7, 8


def test_all_winning_trades_leave_profit_factor_undefined() -> None:
    idx = pd.date_range("2024-01-01", periods=10, freq="D", tz="UTC")
    trades = small_trades(idx).iloc[[0, 2]]
    s = compute_stats(pd.Series(np.linspace(1000, 1050, 10), idx), trades=trades)
    assert math.isnan(s["profit_factor"]) and math.isnan(s["kelly"])
    assert s["win_rate_pct"] == 100.0


@pytest.mark.parametrize("length", [0, 1, 2])
def test_empty_and_tiny_inputs_never_raise(length) -> None:
    idx = pd.date_range("2024-01-01", periods=length, freq="D", tz="UTC")
    equity = pd.Series(np.full(length, 1000.0), idx)
    empty_trades = small_trades(pd.date_range("2024-01-01", periods=10, tz="UTC")).iloc[:0]
    s = compute_stats(equity, trades=empty_trades, positions=np.zeros(length))
    assert list(s) == STAT_KEYS
    assert all(isinstance(v, float) and not math.isinf(v) for v in s.values())
    assert s["n_trades"] == 0
    assert math.isnan(s["win_rate_pct"]) and math.isnan(s["sharpe"])


def test_flat_equity_gives_nan_ratios_not_infinities() -> None:
    idx = pd.date_range("2024-01-01", periods=50, freq="D", tz="UTC")
    s = compute_stats(pd.Series(1000.0, idx))
    assert s["return_pct"] == 0.0 and s["max_drawdown_pct"] == 0.0
    assert all(math.isnan(s[k]) for k in ("sharpe", "sortino", "calmar", "omega"))


def test_batch_stats_equals_compute_stats_column_by_column() -> None:
    rng = np.random.default_rng(3)
    returns = rng.normal(0.0003, 0.01, (700, 6))
    returns[:, 5] = 0.0  # a set that never trades
    batch = batch_stats(returns, 252)
    assert set(batch) == set(BATCH_KEYS)
    for j in range(returns.shape[1]):
        single = compute_stats(make_equity(returns[:, j]))
        for key in BATCH_KEYS:
            np.testing.assert_allclose(batch[key][j], single[key], **TOL, err_msg=f"{key}[{j}]")
    assert math.isnan(batch["sharpe"][5]) and batch["return_pct"][5] == 0.0


def test_batch_stats_handles_one_dimensional_and_empty_input() -> None:
    r = RETURNS["normal"]
    one = batch_stats(r, 252)
    np.testing.assert_allclose(one["sharpe"][0], ep.sharpe_ratio(r), **TOL)
    empty = batch_stats(np.empty((0, 3)), 252)
    assert all(v.shape == (3,) and np.isnan(v).all() for v in empty.values())
