"""Input validation: bad prices and ranges, non-canonical frames, isolation, bad arguments."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from core.errors import DataError, ParameterError
from strategies.engine import Commission, run_backtest, run_batch, validate_bars
from strategies.portfolio import run_portfolio


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


@pytest.mark.parametrize(
    ("column", "value", "field"),
    [("high", "below_close", "high"), ("low", "above_open", "low"), ("high", "below_low", "high")],
)
def test_bars_outside_their_own_high_low_range_name_the_first_bad_bar(bars, column, value, field):
    close, opens = bars.close.iloc[60], bars.open.iloc[60]
    bad = {"below_close": close - 0.1, "above_open": opens + 0.1, "below_low": close - 0.5}[value]
    bars.iloc[60, bars.columns.get_loc(column)] = bad
    bars.iloc[90, bars.columns.get_loc("high")] = bars.close.iloc[90] - 1.0  # a later bad bar
    with pytest.raises(DataError, match=r"low <= min\(open, close\)") as info:
        run_backtest(bars, "buy_hold")
    assert str(bars.index[60]) in str(info.value) and info.value.field == field
    with pytest.raises(DataError, match=str(bars.index[60].date())):
        validate_bars(bars)


def test_non_finite_price_error_names_the_bar_and_the_column(bars):
    bars.iloc[70, bars.columns.get_loc("open")] = np.nan
    with pytest.raises(DataError, match="finite and positive") as info:
        validate_bars(bars)
    assert str(bars.index[70]) in str(info.value) and info.value.field == "open"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cash": np.inf}, "cash"),
        ({"cash": np.nan}, "cash"),
        ({"cash": "1000"}, "cash"),
        ({"slippage_bps": "5"}, "slippage_bps"),
        ({"slippage_bps": np.nan}, "slippage_bps"),
        ({"margin": "0.5"}, "margin"),
        ({"commission": None}, "commission"),
        ({"commission": np.nan}, "commission"),
        ({"stop_loss_pct": "2"}, "stop_loss_pct"),
        ({"take_profit_pct": np.inf}, "take_profit_pct"),
    ],
)
def test_non_numeric_or_non_finite_arguments_raise_parameter_errors(bars, kwargs, field):
    for call in (
        lambda: run_backtest(bars, "buy_hold", **kwargs),
        lambda: run_batch(bars, "buy_hold", [{}], **kwargs),
        lambda: run_portfolio({"X": bars}, "buy_hold", **kwargs),
    ):
        with pytest.raises(ParameterError) as info:
            call()
        assert info.value.field == field


@pytest.mark.parametrize(
    "fields",
    [
        {"rate": -0.001},
        {"per_share": -0.01},
        {"minimum": -1.0},
        {"max_pct": 0.0},
        {"max_pct": -0.01},
        {"rate": np.nan},
        {"minimum": np.inf},
        {"rate": "0.001"},
    ],
)
def test_commission_rejects_negative_non_finite_or_non_numeric_fields(fields):
    with pytest.raises(ParameterError, match="Commission") as info:
        Commission(**fields)
    assert info.value.field == "commission"


def test_commission_accepts_zero_fields_and_an_infinite_cap():
    assert Commission().of(10, 5.0) == 0.0
    assert Commission(rate=0.001, max_pct=math.inf).of(100, 10.0) == pytest.approx(1.0)
