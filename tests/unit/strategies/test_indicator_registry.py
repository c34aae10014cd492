"""strategies.indicator_registry: lookup by name, parameter checks, JSON schema."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from core.errors import ParameterError
from strategies import indicators as ind
from strategies.indicator_registry import INDICATORS, compute, indicator_schema

REQUIRED = [
    "sma",
    "ema",
    "wma",
    "rsi",
    "macd",
    "bbands",
    "stoch",
    "atr",
    "adx",
    "cci",
    "roc",
    "mom",
    "obv",
    "willr",
    "donchian",
]


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    rng = np.random.default_rng(11)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 300)))
    idx = pd.date_range("2024-01-01", periods=300, freq="D", tz="UTC")
    return pd.DataFrame(
        {
            "open": close,
            "high": close * 1.01,
            "low": close * 0.99,
            "close": close,
            "volume": rng.integers(100, 1_000, 300).astype(float),
        },
        index=idx,
    )


def test_registry_holds_every_required_indicator() -> None:
    assert set(REQUIRED) <= set(INDICATORS)
    for name, spec in INDICATORS.items():
        assert spec.name == name
        assert spec.inputs and spec.outputs


def test_registry_defaults_match_function_defaults() -> None:
    import inspect

    for spec in INDICATORS.values():
        signature = inspect.signature(spec.function)
        for p in spec.params:
            assert signature.parameters[p.name].default == p.default, (spec.name, p.name)


def test_compute_by_name_equals_direct_call(bars) -> None:
    got = compute("rsi", bars, timeperiod=10)
    np.testing.assert_array_equal(got, ind.rsi(bars["close"].to_numpy(), 10), strict=False)
    upper, _middle, lower = compute("BBANDS", bars)
    assert np.nanmax(upper - lower) > 0
    slowk, _slowd = compute("stoch", bars, fastk_period=14)
    np.testing.assert_array_equal(
        slowk, ind.stoch(*(bars[c].to_numpy() for c in ("high", "low", "close")), 14)[0]
    )
    assert compute("obv", bars).shape == (300,)


def test_compute_accepts_a_bare_close_array(bars) -> None:
    close = bars["close"].to_numpy()
    np.testing.assert_array_equal(compute("sma", close, timeperiod=5), ind.sma(close, 5))


def test_compute_accepts_float_that_is_a_whole_number(bars) -> None:
    np.testing.assert_array_equal(
        compute("sma", bars, timeperiod=5.0), compute("sma", bars, timeperiod=5)
    )


@pytest.mark.parametrize(
    ("name", "params", "field", "text"),
    [
        ("smaa", {}, "indicator", "Did you mean: sma"),
        ("sma", {"timeperoid": 5}, "timeperoid", "Did you mean: timeperiod"),
        ("sma", {"timeperiod": 1}, "timeperiod", "between 2"),
        ("sma", {"timeperiod": "5"}, "timeperiod", "integer"),
        ("bbands", {"matype": 4}, "matype", "between 0 and 1"),
    ],
)
def test_compute_rejects_bad_names_and_values(bars, name, params, field, text) -> None:
    with pytest.raises(ParameterError, match=text) as info:
        compute(name, bars, **params)
    assert info.value.field == field


def test_compute_names_a_missing_column() -> None:
    with pytest.raises(ParameterError, match="'high'") as info:
        compute("atr", {"close": np.ones(20)})
    assert info.value.field == "high"


def test_indicator_schema_is_json_ready() -> None:
    schema = indicator_schema()
    decoded = json.loads(json.dumps(schema))
    by_name = {entry["name"]: entry for entry in decoded}
    assert by_name["macd"]["outputs"] == ["macd", "macdsignal", "macdhist"]
    assert by_name["stoch"]["inputs"] == ["high", "low", "close"]
    period = by_name["rsi"]["params"][0]
    assert period == {
        "name": "timeperiod",
        "type": "int",
        "default": 14,
        "min": 2,
        "max": 100000,
        "description": "bars",
    }


def test_period_parameters_are_marked_and_cci_is_capped(bars) -> None:
    assert all(p.period for p in INDICATORS["macd"].params)
    assert not any(p.period for p in INDICATORS["bbands"].params[1:])  # devs and matype
    by_name = {entry["name"]: entry for entry in indicator_schema()}
    assert by_name["cci"]["params"][0]["max"] == ind.CCI_MAX_PERIOD == 1000
    assert compute("cci", bars, timeperiod=200).shape == (300,)
    with pytest.raises(ParameterError, match="between 2 and 1000") as info:
        compute("cci", bars, timeperiod=1001)
    assert info.value.field == "timeperiod"
