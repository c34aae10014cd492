"""Rule specs: a whitelisted grammar compiled to vectorized targets; hostile input rejected."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import strategies
from core.errors import ValidationError
from strategies.engine import run_backtest
from strategies.lookahead import check_lookahead
from strategies.rulespec import RuleSpec, compile_rules


@pytest.fixture(scope="module")
def bars() -> pd.DataFrame:
    rng = np.random.default_rng(31337)
    n = 500
    close = 60 * np.exp(np.cumsum(rng.normal(0, 0.015, n)))
    idx = pd.date_range("2019-01-01", periods=n, freq="B", tz="UTC")
    return pd.DataFrame({"open": close, "high": close * 1.01, "low": close * 0.99,
                         "close": close, "volume": 1e5}, index=idx)  # fmt: skip


SMA_RULES = {
    "entry": "crosses_above(sma(close, 10), sma(close, 30))",
    "exit": "crosses_below(sma(close, 10), sma(close, 30))",
}


def test_rule_spec_equals_the_library_sma_cross(bars):
    rules = compile_rules(SMA_RULES)
    expected = strategies.get("sma_cross").target(bars, {"fast": 10, "slow": 30})
    assert (rules.target(bars) == expected).all() and expected.any()


def test_json_string_input_and_stops_flow_into_the_backtest(bars):
    spec = json.dumps({**SMA_RULES, "stop_loss_pct": 2, "take_profit_pct": 4})
    rules = compile_rules(spec)
    assert (rules.stop_loss_pct, rules.take_profit_pct) == (2, 4)
    result = run_backtest(bars, rules, benchmark=False)
    plain = run_backtest(bars, compile_rules(SMA_RULES), benchmark=False)
    assert len(result.trades) > 0
    assert not result.trades.exit_price.equals(plain.trades.exit_price)


def test_richer_grammar_compiles_and_is_causal(bars):
    rules = compile_rules({
        "entry": "rsi(close, 14) < 35 and not (close > bbands(close, 20, 2, 2)[0])",
        "exit": "rsi(close, 14) > 65 or close > sma(close, 50) * 1.05 or -mom(close, 5) > 3",
        "direction": "short",
    })  # fmt: skip
    target = rules.target(bars)
    assert set(np.unique(target)) <= {-1.0, 0.0} and (target == -1.0).any()
    assert check_lookahead(rules, bars, samples=8).passed


def test_multi_output_and_multi_input_indicators(bars):
    rules = compile_rules({"entry": "macd(close)[0] > macd(close, 12, 26, 9)[1] and "
                                    "atr(high, low, close, timeperiod=14) > 0"})  # fmt: skip
    assert rules.target(bars).any()


@pytest.mark.parametrize(
    ("short", "explicit"),
    [
        ("rsi(14) < 30", "rsi(close, 14) < 30"),
        ("crosses_above(sma(10), sma(50))", "crosses_above(sma(close, 10), sma(close, 50))"),
        ("atr(timeperiod=10) > 0.02 * close", "atr(high, low, close, 10) > 0.02 * close"),
        ("macd()[0] > macd(12, 26, 9)[1]", "macd(close)[0] > macd(close, 12, 26, 9)[1]"),
        ("rsi() > 55 and obv() > 0", "rsi(close, 14) > 55 and obv(close, volume) > 0"),
    ],
)
def test_indicator_without_series_reads_its_default_columns(bars, short, explicit):
    """The issue's own syntax: rsi(14) is rsi(close, 14); atr(10) reads high, low, close."""
    implicit_rules = compile_rules({"entry": short, "exit": "close < sma(close, 20)"})
    explicit_rules = compile_rules({"entry": explicit, "exit": "close < sma(close, 20)"})
    target = implicit_rules.target(bars)
    np.testing.assert_array_equal(target, explicit_rules.target(bars))
    assert target.any()
    ours = run_backtest(bars, implicit_rules, benchmark=False)
    reference = run_backtest(bars, explicit_rules, benchmark=False)
    assert len(ours.trades) > 0
    pd.testing.assert_frame_equal(ours.trades, reference.trades)


def test_sma_cross_in_the_short_syntax_equals_the_library_strategy(bars):
    rules = compile_rules({"entry": "crosses_above(sma(10), sma(50))",
                           "exit": "crosses_below(sma(10), sma(50))"})  # fmt: skip
    expected = strategies.get("sma_cross").target(bars, {"fast": 10, "slow": 50})
    assert (rules.target(bars) == expected).all() and expected.any()


@pytest.mark.parametrize(
    "entry",
    [
        "not (close > sma(close, 50))",
        "close != sma(close, 50)",
        "not (close >= sma(50)) or not (close > sma(close, 50))",
        "not crosses_above(close, sma(close, 50))",
        "not (close / (sma(close, 50) - sma(close, 50)) > 1)",  # x/0 is undefined too
    ],
)
def test_conditions_are_unknown_and_do_not_fire_during_the_warm_up(bars, entry):
    """NaN compares False, so a bare `not`/`!=` used to go long on the warm-up bars."""
    target = compile_rules({"entry": entry}).target(bars)
    assert not target[:49].any()
    if "/" not in entry:
        assert target[49:].any()


def test_three_valued_logic_decides_what_a_known_side_decides(bars):
    sma50 = strategies.indicators.sma(bars["close"].to_numpy(), 50)
    close = bars["close"].to_numpy()
    # `or` is True when a defined side is True, even while the other is still undefined.
    either = compile_rules({"entry": "close > 0 or close > sma(close, 50)"})
    assert either.target(bars)[0] == 1.0
    # `and` is False when a defined side is False, so `not (...)` is then True.
    neither = compile_rules({"entry": "not (close < 0 and close > sma(close, 50))"})
    assert neither.target(bars)[0] == 1.0
    # Otherwise unknown: the entry waits for the SMA and then follows the comparison.
    waits = compile_rules({"entry": "not (close > 0 and close > sma(close, 50))",
                           "exit": "close > sma(close, 50)"})  # fmt: skip
    target = waits.target(bars)
    assert not target[:49].any()
    first = 49 + int(np.flatnonzero(close[49:] <= sma50[49:])[0])
    assert target[first] == 1.0 and not target[:first].any()


def test_rule_spec_periods_are_capped(bars):
    with pytest.raises(ValidationError, match=r"timeperiod must be at most 5000 bars") as info:
        compile_rules({"entry": "wma(close, 20000) > close"})
    assert info.value.field == "entry"
    with pytest.raises(ValidationError, match=r"slowperiod must be at most 5000") as info:
        compile_rules({"entry": "close > 1", "exit": "macd(close, 12, 6000)[0] > 0"})
    assert info.value.field == "exit"
    with pytest.raises(ValidationError, match="between 2 and 1000"):
        compile_rules({"entry": "cci(1500) > 100"})
    assert compile_rules({"entry": "wma(close, 5000) > close"}).name == "rulespec"


def test_a_period_longer_than_the_data_is_rejected_naming_it(bars):
    spec = {"entry": "rsi(14) < 30", "exit": "close > bbands(close, 600)[0]"}
    with pytest.raises(ValidationError) as info:
        compile_rules(spec, bars=len(bars))
    assert info.value.field == "exit"
    assert "bbands: timeperiod is 600 bars but the data has only 500 bars" in str(info.value)
    with pytest.raises(ValidationError, match="rsi: timeperiod is 14 bars") as info:
        compile_rules(spec, bars=10)
    assert info.value.field == "entry"
    rules = compile_rules({**spec, "exit": "close > bbands(close, 500)[0]"}, bars=len(bars))
    assert rules.target(bars).shape == (len(bars),)


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("__import__('os') > 0", "'__import__' is not allowed"),
        ("__import__('os').system('true')", "only calls of indicators"),
        ("close.__class__ > 1", "attribute access '.__class__' is not allowed"),
        ("lambda: close > 1", "lambda is not allowed"),
        ("(lambda: 1)() > 0", "only calls of indicators"),
        ("close ** 99999999 > 1", "operator Pow is not allowed"),
        ("close > 1e400", "numbers must lie within"),
        ("close > " + "9" * 5000, "at most 1000 characters"),
        ("close > " + "9" * 900, "numbers must lie within"),
        ("not " * 40 + "close > 1", "nests deeper than"),
        ("(" * 300 + "close > 1" + ")" * 300, "not a valid expression"),
        ("close > (" + "1+" * 150 + "1)", "more than 200 parts"),
        ("x > 1", "'x' is not allowed; names allowed: open, high, low, close, volume"),
        ("eval('1') > 0", "'eval' is not allowed"),
        ("sma(close) ", "must be a condition"),
        ("macd(close) > 1", "has 3 outputs"),
        ("macd(close)[3] > 1", "output index must be an integer 0..2"),
        ("sma(close, 1) > close", "timeperiod must be between 2"),
        ("sma(close, period=5) > close", "no parameter 'period'"),
        ("sma(close, close) > close", "must be a number"),
        ("sma(1 + 2) > close", "an input of sma must be a series"),
        ("rsi(-5) < 30", "timeperiod must be between 2"),
        ("rsi(14, 3) < 30", "rsi takes at most 1 parameter"),
        ("atr(close, 14) > 1", "atr needs 3 series input(s) (high, low, close), or none"),
        ("'abc' > close", "only numeric constants"),
        ("[c for c in close]", "ListComp"),
        ("1 < close < 2", "chained comparisons"),
        ("close > ", "not a valid expression"),
    ],
)
def test_hostile_and_malformed_expressions_are_rejected_with_the_offending_part(
    expression, message
):
    with pytest.raises(ValidationError) as info:
        compile_rules({"entry": expression})
    assert message in str(info.value)
    assert info.value.field == "entry"


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"entry": "close > 1", "direction": "sideways"}, "direction", "'long' or 'short'"),
        ({"entry": "close > 1", "stop_loss_pct": -5}, "stop_loss_pct", "greater than 0"),
        ({"entry": "close > 1", "code": "import os"}, "code", "Extra inputs"),
        ({"exit": "close > 1"}, "entry", "Field required"),
        ({"entry": "close > 1", "exit": "open.real > 1"}, "exit", "attribute access"),
    ],
)
def test_schema_errors_name_the_field(spec, field, message):
    with pytest.raises(ValidationError) as info:
        compile_rules(spec)
    assert info.value.field == field and message in str(info.value)


def test_not_json_and_not_an_object_are_rejected():
    with pytest.raises(ValidationError, match="not valid JSON"):
        compile_rules("{entry: close}")
    with pytest.raises(ValidationError, match="JSON object"):
        compile_rules(json.dumps(["close > 1"]))


def test_schema_model_is_frozen_and_documents_itself():
    spec = RuleSpec(entry="close > 1")
    assert spec.direction == "long"
    assert "entry" in RuleSpec.model_json_schema()["properties"]
