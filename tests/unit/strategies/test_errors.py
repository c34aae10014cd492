"""Bad input anywhere in strategies raises the core error tree, naming the field and the fix."""

from __future__ import annotations

import ast
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import strategies
from core.errors import DataError, ParameterError, ValidationError
from strategies import indicators
from strategies.base import IndicatorCache, Strategy
from strategies.engine import FixedShares, VolTarget, run_backtest, run_batch
from strategies.indicator_registry import compute
from strategies.lookahead import check_lookahead
from strategies.portfolio import run_portfolio
from strategies.rulespec import RuleError, compile_rules, parse_rule
from tests.unit.strategies.scripted import Scripted

PACKAGE = Path(__file__).resolve().parents[3] / "strategies"
BARE = {"ValueError", "TypeError", "KeyError", "IndexError", "AttributeError", "Exception"}


@pytest.fixture
def bars() -> pd.DataFrame:
    close = 30 + np.cumsum(np.random.default_rng(8).normal(0, 0.4, 80))
    idx = pd.date_range("2023-01-02", periods=80, freq="B", tz="UTC")
    return pd.DataFrame(
        {"open": close, "high": close + 0.5, "low": close - 0.5, "close": close, "volume": 1e4},
        index=idx,
    )


def raised_names(tree: ast.AST) -> list[str]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            if isinstance(exc, ast.Name):
                names.append(exc.id)
    return names


def test_no_strategies_module_raises_a_bare_builtin_error():
    assert raised_names(ast.parse("raise ValueError('x')")) == ["ValueError"]  # the finder
    found = {
        path.name: sorted(set(raised_names(ast.parse(path.read_text()))) & BARE)
        for path in PACKAGE.glob("*.py")
    }
    assert {name: bad for name, bad in found.items() if bad} == {}


def test_signal_of_the_wrong_length_is_a_validation_error_naming_signal(bars):
    with pytest.raises(ValidationError, match=r"shape \(3,\); expected \(80,\)") as info:
        run_backtest(bars, Scripted([1.0, 0.0, 1.0]))
    assert info.value.field == "signal"


class Words(Strategy):
    name = "words"

    def signal(self, bars: pd.DataFrame, p: Mapping[str, Any], ind: IndicatorCache) -> Any:
        return ["buy"] * len(bars)


def test_signal_of_non_numbers_is_a_validation_error_naming_signal(bars):
    with pytest.raises(ValidationError, match="one number per bar") as info:
        Words().target(bars)
    assert info.value.field == "signal"


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda b: run_backtest(b, 42), "strategy"),
        (lambda b: run_backtest(b, "sma_cross", [("fast", 5)]), "params"),
        (lambda b: run_backtest(b, "sma_cross", allow_short="yes"), "allow_short"),
        (lambda b: run_backtest(b, "buy_hold", symbol=None), "symbol"),
        (lambda b: run_batch(b, "sma_cross", {"fast": 5}), "param_sets"),
        (lambda b: run_batch(b, "sma_cross", [[5, 20]]), "params"),
        (lambda b: strategies.get(["sma_cross"]), "strategy"),
    ],
)
def test_bad_engine_arguments_raise_parameter_errors_naming_the_field(bars, call, field):
    with pytest.raises(ParameterError) as info:
        call(bars)
    assert info.value.field == field


def test_bars_that_are_not_a_frame_are_a_data_error():
    with pytest.raises(DataError, match="must be a pandas DataFrame") as info:
        run_backtest([[1, 2, 3]], "buy_hold")  # type: ignore[arg-type]
    assert info.value.field == "bars"


@pytest.mark.parametrize(
    "build",
    [
        lambda: FixedShares(0),
        lambda: FixedShares(2.5),
        lambda: FixedShares("3"),  # type: ignore[arg-type]
        lambda: VolTarget(annual_vol="high"),  # type: ignore[arg-type]
        lambda: VolTarget(annual_vol=0.0),
        lambda: VolTarget(lookback=2.5),  # type: ignore[arg-type]
        lambda: VolTarget(lookback=1),
        lambda: VolTarget(max_fraction=math.nan),
    ],
)
def test_bad_sizing_objects_are_refused_when_built(build):
    with pytest.raises(ParameterError) as info:
        build()
    assert info.value.field == "size"


@pytest.mark.parametrize(
    ("weights", "match"),
    [
        ({"AAA": "half"}, r"weights\['AAA'\] must be a number"),
        ([0.5, 0.5], "must be 'equal' or a mapping"),
        ({"AAA": -0.5}, "non-negative"),
    ],
)
def test_bad_portfolio_weights_raise_parameter_errors(bars, weights, match):
    with pytest.raises(ParameterError, match=match) as info:
        run_portfolio({"AAA": bars, "BBB": bars}, "buy_hold", weights=weights)
    assert info.value.field == "weights"


def test_portfolio_bar_errors_name_the_symbol(bars):
    broken = bars.drop(columns="low")
    with pytest.raises(DataError, match="bars of 'BBB': bars lack columns") as info:
        run_portfolio({"AAA": bars, "BBB": broken}, "buy_hold")
    assert info.value.field == "low"
    with pytest.raises(DataError, match="non-empty mapping") as info:
        run_portfolio([bars], "buy_hold")  # type: ignore[arg-type]
    assert info.value.field == "bars_by_symbol"


def test_indicator_cache_names_unknown_indicators_and_missing_columns(bars):
    cache = IndicatorCache(bars)
    with pytest.raises(ParameterError, match="did you mean 'sma'") as info:
        cache("smaa", "close", 5)
    assert info.value.field == "indicator"
    with pytest.raises(DataError, match="no column 'vwap'") as info:
        cache.column("vwap")
    assert info.value.field == "vwap"


def test_indicators_and_registry_refuse_non_numeric_inputs():
    with pytest.raises(ParameterError, match="input 0 must be an array of numbers") as info:
        indicators.sma(["a", "b", "c"], 2)  # type: ignore[arg-type]
    assert info.value.field == "input0"
    with pytest.raises(DataError) as info:
        compute("sma", {"close": ["a", "b"]}, timeperiod=2)
    assert info.value.field == "close"
    with pytest.raises(DataError) as info:
        compute("sma", 42)  # type: ignore[arg-type]
    assert info.value.field == "bars"


def test_rule_errors_are_validation_errors_and_compile_rules_names_the_spec_field():
    with pytest.raises(ValidationError) as info:
        parse_rule("close >")
    assert isinstance(info.value, RuleError) and info.value.field == "rule"
    with pytest.raises(ValidationError) as info:
        compile_rules({"entry": "close > 1", "exit": "close >"})
    assert info.value.field == "exit"


def test_check_lookahead_refuses_bad_bars_and_sample_counts(bars):
    with pytest.raises(DataError) as info:
        check_lookahead("buy_hold", [1.0, 2.0])  # type: ignore[arg-type]
    assert info.value.field == "bars"
    with pytest.raises(ParameterError) as info:
        check_lookahead("buy_hold", bars, samples=0)
    assert info.value.field == "samples"
