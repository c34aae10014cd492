"""Bar validation on the engine's no-copy path: bad prices, non-canonical frames, isolation."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from core.errors import DataError
from strategies.engine import run_backtest, validate_bars


@pytest.fixture
def bars() -> pd.DataFrame:
    close = 20 + np.cumsum(np.random.default_rng(4).normal(0, 0.5, 200)).clip(-15)
    idx = pd.date_range("2022-01-03", periods=200, freq="B", tz="UTC")
    return pd.DataFrame(
        {"open": close, "high": close + 0.3, "low": close - 0.3, "close": close, "volume": 1e4},
        index=idx,
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 0.0, -1.0])
def test_non_finite_or_non_positive_prices_are_rejected(bars, bad):
    bars.iloc[50, 2] = bad
    with pytest.raises(DataError, match="finite and positive"):
        run_backtest(bars, "buy_hold")


def test_frame_with_extra_and_integer_columns_is_normalised(bars):
    odd = bars.assign(volume=np.arange(len(bars)), note="x")[
        ["note", "close", "volume", "open", "low", "high"]
    ]
    frame = validate_bars(odd)
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert all(dtype == np.float64 for dtype in frame.dtypes)
    expected = run_backtest(bars, "sma_cross", {"fast": 5, "slow": 20}).stats
    got = run_backtest(odd, "sma_cross", {"fast": 5, "slow": 20}).stats
    assert got == pytest.approx(expected, rel=0, abs=0, nan_ok=True)
    assert expected["n_trades"] > 0


def test_result_bars_do_not_follow_later_edits_of_the_input(bars):
    result = run_backtest(bars, "buy_hold")
    before = float(result.bars["close"].iloc[10])
    bars.loc[bars.index[10], "close"] = 999.0
    assert result.bars["close"].iloc[10] == before
