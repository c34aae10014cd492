"""strategies.indicators against TA-Lib: same values, same NaN warm-up, clear errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
import talib

from core.errors import ParameterError
from strategies import indicators as ind

Bars = dict[str, np.ndarray]


def random_walk_bars(n: int = 2500, seed: int = 7) -> Bars:
    """A geometric random walk with plausible highs, lows and volumes."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0.0002, 0.015, n)))
    spread = close * np.abs(rng.normal(0, 0.01, n))
    high = close + spread * rng.uniform(0, 1, n)
    low = close - spread * rng.uniform(0, 1, n)
    volume = rng.integers(1_000, 100_000, n).astype(float)
    return {"high": high, "low": low, "close": close, "volume": volume}


def trend_gap_flat_bars(n: int = 2200, seed: int = 3) -> Bars:
    """A cent-rounded trend with a sine wobble, a gap up and two perfectly flat stretches."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    close = 50 + 0.05 * t + 3 * np.sin(t / 40)
    close[300:360] = close[300]
    close[1000:] += 15
    close[1500:1520] = close[1500]
    close = np.round(close, 2)
    high = close + np.round(rng.uniform(0, 1, n), 2)
    low = close - np.round(rng.uniform(0, 1, n), 2)
    high[300:360] = close[300]
    low[300:360] = close[300]
    volume = rng.integers(0, 5_000, n).astype(float)
    return {"high": high, "low": low, "close": close, "volume": volume}


def goog_bars() -> Bars:
    """backtesting.test.GOOG: real daily Alphabet prices 2004-2013 (2,148 bars)."""
    from backtesting.test import GOOG

    return {c.lower(): GOOG[c].to_numpy(np.float64) for c in ("High", "Low", "Close", "Volume")}


SERIES = {
    "random_walk": random_walk_bars(),
    "trend_gap_flat": trend_gap_flat_bars(),
    "goog": goog_bars(),
}

# (ours, TA-Lib's, input columns, positional params)
CASES: list[tuple[str, Callable[..., Any], Callable[..., Any], tuple[str, ...], tuple]] = [
    ("sma", ind.sma, talib.SMA, ("close",), ()),
    ("sma_10", ind.sma, talib.SMA, ("close",), (10,)),
    ("ema", ind.ema, talib.EMA, ("close",), ()),
    ("ema_9", ind.ema, talib.EMA, ("close",), (9,)),
    ("wma", ind.wma, talib.WMA, ("close",), ()),
    ("rsi", ind.rsi, talib.RSI, ("close",), ()),
    ("rsi_2", ind.rsi, talib.RSI, ("close",), (2,)),
    ("macd", ind.macd, talib.MACD, ("close",), ()),
    ("macd_5_35_5", ind.macd, talib.MACD, ("close",), (5, 35, 5)),
    ("macd_swapped", ind.macd, talib.MACD, ("close",), (26, 12, 9)),
    ("bbands", ind.bbands, talib.BBANDS, ("close",), ()),
    ("bbands_5_ema", ind.bbands, talib.BBANDS, ("close",), (5, 2.5, 1.5, 1)),
    ("stoch", ind.stoch, talib.STOCH, ("high", "low", "close"), ()),
    ("stoch_ema", ind.stoch, talib.STOCH, ("high", "low", "close"), (14, 3, 1, 5, 1)),
    ("atr", ind.atr, talib.ATR, ("high", "low", "close"), ()),
    ("atr_1", ind.atr, talib.ATR, ("high", "low", "close"), (1,)),
    ("adx", ind.adx, talib.ADX, ("high", "low", "close"), ()),
    ("adx_5", ind.adx, talib.ADX, ("high", "low", "close"), (5,)),
    ("plus_di", ind.plus_di, talib.PLUS_DI, ("high", "low", "close"), ()),
    ("minus_di", ind.minus_di, talib.MINUS_DI, ("high", "low", "close"), ()),
    ("cci", ind.cci, talib.CCI, ("high", "low", "close"), ()),
    ("cci_40", ind.cci, talib.CCI, ("high", "low", "close"), (40,)),
    ("willr", ind.willr, talib.WILLR, ("high", "low", "close"), ()),
    ("roc", ind.roc, talib.ROC, ("close",), ()),
    ("mom", ind.mom, talib.MOM, ("close",), ()),
    ("obv", ind.obv, talib.OBV, ("close", "volume"), ()),
    ("stddev", ind.stddev, talib.STDDEV, ("close",), ()),
    ("stddev_20_2", ind.stddev, talib.STDDEV, ("close",), (20, 2.0)),
    ("wma_200", ind.wma, talib.WMA, ("close",), (200,)),
    ("stddev_250", ind.stddev, talib.STDDEV, ("close",), (250,)),
    ("highest_60", ind.highest, talib.MAX, ("close",), (60,)),
    ("lowest_2", ind.lowest, talib.MIN, ("close",), (2,)),
    ("willr_100", ind.willr, talib.WILLR, ("high", "low", "close"), (100,)),
    ("stoch_200", ind.stoch, talib.STOCH, ("high", "low", "close"), (200, 3, 0, 3, 0)),
    ("trange", ind.trange, talib.TRANGE, ("high", "low", "close"), ()),
    ("highest", ind.highest, talib.MAX, ("close",), ()),
    ("lowest", ind.lowest, talib.MIN, ("close",), ()),
]


def as_tuple(result: Any) -> tuple[np.ndarray, ...]:
    return result if isinstance(result, tuple) else (result,)


def assert_same(ours: Any, theirs: Any) -> None:
    """Equal NaN masks and values within 1e-9 (relative and absolute)."""
    ours_t, theirs_t = as_tuple(ours), as_tuple(theirs)
    assert len(ours_t) == len(theirs_t)
    for mine, ref in zip(ours_t, theirs_t, strict=True):
        assert mine.dtype == np.float64
        np.testing.assert_array_equal(np.isnan(mine), np.isnan(ref))
        assert np.isfinite(ref).any()
        np.testing.assert_allclose(mine, ref, rtol=1e-9, atol=1e-9, equal_nan=True)


@pytest.mark.parametrize("series", sorted(SERIES))
@pytest.mark.parametrize(
    ("name", "ours", "theirs", "cols", "args"), CASES, ids=[c[0] for c in CASES]
)
def test_indicator_matches_talib(series, name, ours, theirs, cols, args) -> None:
    bars = SERIES[series]
    inputs = [bars[c] for c in cols]
    assert_same(ours(*inputs, *args), theirs(*inputs, *args))


@pytest.mark.parametrize(
    ("name", "ours", "theirs", "cols", "args"), CASES, ids=[c[0] for c in CASES]
)
def test_indicator_skips_leading_nans_like_talib(name, ours, theirs, cols, args) -> None:
    bars = {k: v[:300].copy() for k, v in SERIES["random_walk"].items()}
    bars["close"][:7] = np.nan
    bars["high"][:3] = np.nan
    inputs = [bars[c] for c in cols]
    assert_same(ours(*inputs, *args), theirs(*inputs, *args))


def test_macd_default_warmup_is_33_bars() -> None:
    line, signal, hist = ind.macd(SERIES["random_walk"]["close"])
    for out in (line, signal, hist):
        assert int(np.isnan(out).sum()) == 33
        assert np.isnan(out[:33]).all()


@pytest.mark.parametrize(("fn", "args"), [(ind.sma, (30,)), (ind.rsi, (14,)), (ind.ema, (11,))])
def test_short_input_gives_all_nan(fn, args) -> None:
    out = fn(np.linspace(1.0, 2.0, 10), *args)
    assert out.shape == (10,)
    assert np.isnan(out).all()


def test_empty_input_gives_empty_output() -> None:
    assert ind.sma(np.array([], dtype=float), 5).shape == (0,)


def test_accepts_pandas_series_and_lists() -> None:
    close = SERIES["random_walk"]["close"][:100]
    expected = talib.SMA(close, 10)
    np.testing.assert_allclose(ind.sma(pd.Series(close), 10), expected, equal_nan=True)
    np.testing.assert_allclose(ind.sma(close.tolist(), 10), expected, equal_nan=True)


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda x: ind.sma(x, 0), "timeperiod"),
        (lambda x: ind.rsi(x, -3), "timeperiod"),
        (lambda x: ind.ema(x, 2.5), "timeperiod"),
        (lambda x: ind.macd(x, signalperiod=0), "signalperiod"),
        (lambda x: ind.bbands(x, matype=3), "matype"),
        (lambda x: ind.bbands(x, nbdevup=float("nan")), "nbdevup"),
        (lambda x: ind.stoch(x, x, x, fastk_period=0), "fastk_period"),
        (lambda x: ind.donchian(x, x, 0), "timeperiod"),
    ],
)
def test_bad_parameter_raises_parameter_error_naming_it(call, field) -> None:
    with pytest.raises(ParameterError) as info:
        call(np.linspace(1.0, 2.0, 50))
    assert info.value.field == field
    assert field in str(info.value)


def test_mismatched_input_lengths_raise() -> None:
    with pytest.raises(ParameterError, match="as long as"):
        ind.atr(np.ones(10), np.ones(9), np.ones(10))


@pytest.mark.parametrize("n", [1, 5, 20])
def test_donchian_matches_pandas_rolling(n) -> None:
    bars = SERIES["trend_gap_flat"]
    upper, lower = ind.donchian(bars["high"], bars["low"], n)
    ref_upper = pd.Series(bars["high"]).rolling(n).max().to_numpy()
    ref_lower = pd.Series(bars["low"]).rolling(n).min().to_numpy()
    np.testing.assert_array_equal(upper, ref_upper)
    np.testing.assert_array_equal(lower, ref_lower)
    assert (upper[n - 1 :] >= lower[n - 1 :]).all()


def long_bars(n: int = 200_000, seed: int = 19) -> Bars:
    """A long, high-priced random walk (BTC-like levels) with a flat stretch and a spike:
    the running sums' rounding residue would show here if it drifted with the length."""
    rng = np.random.default_rng(seed)
    close = 3e4 * np.exp(np.cumsum(rng.normal(0, 0.004, n)))
    close[50_000:50_500] = close[50_000]
    close[120_000] *= 40.0
    high = close * (1 + np.abs(rng.normal(0, 0.002, n)))
    low = close * (1 - np.abs(rng.normal(0, 0.002, n)))
    return {"high": high, "low": low, "close": close}


LONG = long_bars()


@pytest.mark.parametrize("period", [2, 30, 1_000, 20_000])
@pytest.mark.parametrize(
    ("ours", "theirs", "cols"),
    [
        (ind.wma, talib.WMA, ("close",)),
        (ind.stddev, talib.STDDEV, ("close",)),
        (ind.bbands, talib.BBANDS, ("close",)),
        (ind.highest, talib.MAX, ("close",)),
        (ind.lowest, talib.MIN, ("close",)),
        (ind.willr, talib.WILLR, ("high", "low", "close")),
    ],
    ids=["wma", "stddev", "bbands", "max", "min", "willr"],
)
def test_running_sum_and_queue_kernels_do_not_drift_on_long_input(ours, theirs, cols, period):
    """TA-Lib 0.8 re-anchors its WMA/VAR running sums; matching its method keeps 1e-9."""
    inputs = [LONG[c] for c in cols]
    assert_same(ours(*inputs, period), theirs(*inputs, period))


def test_cci_period_is_capped_because_it_costs_bars_times_period() -> None:
    hlc = [LONG[c][:5_000] for c in ("high", "low", "close")]
    assert_same(ind.cci(*hlc, ind.CCI_MAX_PERIOD), talib.CCI(*hlc, ind.CCI_MAX_PERIOD))
    with pytest.raises(ParameterError, match="between 2 and 1000") as info:
        ind.cci(*hlc, ind.CCI_MAX_PERIOD + 1)
    assert info.value.field == "timeperiod"


def test_zero_guards_are_the_documented_ones() -> None:
    """The module docstring's division-by-zero rules, checked against TA-Lib."""
    rise_then_flat = np.r_[np.linspace(1.0, 5.0, 20), np.full(40, 5.0)]
    assert (ind.rsi(rise_then_flat, 14)[-20:] == 100.0).all()  # flat after a rise: not 0
    assert (ind.rsi(np.full(30, 5.0), 14)[14:] == 0.0).all()  # never moved: 0
    zero_back = np.array([0.0, 0.0, 1.0, 2.0, 3.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(ind.roc(zero_back, 1), talib.ROC(zero_back, 1))
    assert ind.roc(zero_back, 1)[2] == 0.0  # 1 against 0 bars back: 0, not inf
    flat = np.full(30, 5.0)
    assert ind.cci(flat, flat, flat, 14)[-1] == 0.0
    assert ind.willr(flat, flat, flat, 14)[-1] == 0.0
    assert ind.stoch(flat, flat, flat)[0][-1] == 0.0
    assert ind.stddev(flat, 5)[-1] == 0.0
