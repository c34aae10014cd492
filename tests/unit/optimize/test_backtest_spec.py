"""The backtest job spec: what it accepts, what it fills in, and how it names a bad field."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from core.errors import ParameterError, ValidationError
from optimize.backtest_spec import BacktestSpec, Costs, Options, Selection, parse_spec
from strategies.engine import FixedShares, VolTarget

BASE = {"strategy": "sma_cross", "instruments": ["BHP.ASX", "aapl"]}


def test_a_minimal_spec_gets_every_default_and_resolved_parameters():
    spec = parse_spec(BASE)
    assert spec == BacktestSpec(
        strategy="sma_cross",
        params={"fast": 10, "slow": 30, "allow_short": False},
        selection=Selection(instruments=("BHP.ASX", "AAPL")),
    )
    assert (spec.bar_size, spec.start, spec.end, spec.kind) == ("1d", None, None, "library")
    assert spec.costs == Costs() and spec.options == Options()
    assert spec.build_strategy().name == "sma_cross"


def test_a_full_spec_round_trips_through_json():
    spec = parse_spec(
        {
            "strategy": "rsi_reversion",
            "params": {"period": 10},
            "universe": "asx200",
            "bar_size": "1h",
            "start": "2021-01-04",
            "end": "2024-06-01T10:00:00+10:00",
            "costs": {"cash": 50_000, "commission": "IBKR", "slippage_bps": 3},
            "options": {"mode": "portfolio", "sort": "sortino", "size": {"shares": 100},
                        "stop_loss_pct": 5, "take_profit_pct": 20, "allow_short": True,
                        "fill": "close", "margin": 0.5, "finalize_trades": True},
        }
    )  # fmt: skip
    assert spec.selection == Selection(universe="asx200")
    assert spec.start == datetime(2021, 1, 4, tzinfo=UTC)
    assert spec.end == datetime(2024, 6, 1, 0, 0, tzinfo=UTC)  # 10:00 in Sydney is 00:00 UTC
    assert spec.costs == Costs(cash=50_000.0, commission="ibkr", slippage_bps=3.0)
    assert spec.options.mode == "portfolio" and spec.options.engine_size() == FixedShares(100)
    again = parse_spec(json.dumps(spec.to_json()))
    assert again == spec


def test_a_rule_spec_is_named_by_its_rules_and_has_no_parameters():
    rules = {"name": "dip", "entry": "rsi(close, 14) < 30", "exit": "rsi(close, 14) > 55"}
    spec = parse_spec({"rules": rules, "instruments": "all"})
    assert (spec.strategy, spec.kind, spec.params, spec.rules) == ("dip", "rule_spec", {}, rules)
    assert spec.selection == Selection(everything=True)
    assert spec.build_strategy().name == "dip"
    assert parse_spec(spec.to_json()) == spec


def test_engine_arguments_follow_the_spec():
    spec = parse_spec({**BASE, "options": {"size": {"vol_target": 0.2, "lookback": 30}}})
    kwargs = spec.engine_kwargs(currency="AUD")
    assert kwargs["currency"] == "AUD" and kwargs["size"] == VolTarget(0.2, 30, 1.0)
    assert "currency" not in spec.engine_kwargs()
    assert parse_spec({**BASE, "options": {"size": 0.5}}).options.engine_size() == 0.5


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"strategy": "sma_cros"}, "strategy", "did you mean 'sma_cross'"),
        ({"strategy": 3}, "strategy", "named by a string"),
        ({"strategy": None}, "strategy", "name a strategy"),
        ({"params": {"slwo": 40}}, "params.slwo", "did you mean 'slow'"),
        ({"params": {"fast": 2.5}}, "params.fast", "whole number"),
        ({"params": [1, 2]}, "params", "must be an object"),
        ({"params": {f"p{i}": 1 for i in range(40)}}, "params", "more than 32"),
        ({"rules": {"entry": "close > 1"}}, "strategy", "not both"),
        ({"instruments": "AAPL"}, "instruments", "non-empty list"),
        ({"instruments": ["AAPL", 7]}, "instruments", "strings like"),
        ({"instruments": ["A.ASX"] * 5001}, "instruments", "limit is 5000"),
        ({"universe": "asx200"}, "universe", "not both"),
        ({"bar_size": "1w"}, "bar_size", "use one of"),
        ({"start": "yesterday"}, "start", "YYYY-MM-DD"),
        ({"end": 20240101}, "end", "date string"),
        ({"start": "2024-01-02", "end": "2024-01-02"}, "end", "before end"),
        ({"costs": {"commission": "free"}}, "costs.commission", "ibkr"),
        ({"costs": {"commission": True}}, "costs.commission", "a number"),
        ({"costs": {"slippage_bps": 1000}}, "costs.slippage_bps", "999"),
        ({"costs": {"cash": float("inf")}}, "costs.cash", "a number"),
        ({"costs": 5}, "costs", "must be an object"),
        ({"options": {"mode": "both"}}, "options.mode", "per_instrument"),
        ({"options": {"sort": "sharp"}}, "options.sort", "did you mean 'sharpe'"),
        ({"options": {"stop_loss_pct": 100}}, "options.stop_loss_pct", "99.99"),
        ({"options": {"margin": 0}}, "options.margin", "(0, 1]"),
        ({"options": {"fill": "open"}}, "options.fill", "next_open"),
        ({"options": {"finalize_trades": "yes"}}, "options.finalize_trades", "true or false"),
        ({"options": {"size": {"vol_target": 0}}}, "options.size.vol_target", "(0, 10]"),
        ({"options": {"size": {"lookback": 20}}}, "options.size", "vol_target"),
        ({"options": {"size": {"shares": 5, "x": 1}}}, "options.size.x", "known: shares"),
        ({"options": {"sizing": 1}}, "options.sizing", "did you mean 'size'"),
        ({"instrument": ["AAPL"]}, "instrument", "did you mean 'instruments'"),
    ],
)
def test_each_bad_field_is_named_with_its_fix(change, field, words):
    with pytest.raises(ValidationError) as bad:
        parse_spec({**BASE, **change})
    assert bad.value.field == field
    assert words in str(bad.value)


def test_strategy_parameter_errors_are_parameter_errors():
    with pytest.raises(ParameterError) as bad:
        parse_spec({**BASE, "params": {"fast": 40, "slow": 20}})
    assert bad.value.field == "params.fast" and "fast < slow" in str(bad.value)


def test_rule_specs_are_capped_and_checked_like_the_grammar_says():
    cases = [
        ({"entry": "open(1)"}, "rules.entry", "not allowed"),
        ({"entry": "close > 1", "direction": "up"}, "rules.direction", "long"),
        ({"entry": "close > 1", "name": "n" * 9000}, "rules", "limit is 8192"),
        ({"entry": "close + " * 13 + "close > 1"}, "rules.entry", "deeper than 12"),
        ({"entry": " or ".join(["close > 1"] * 120)}, "rules.entry", "1000 characters"),
        ({"entry": "sma(close, 6000) > 1"}, "rules.entry", "at most 5000 bars"),
        ("close > 1", "rules", "rule-spec object"),
    ]
    for rules, field, words in cases:
        with pytest.raises(ValidationError) as bad:
            parse_spec({"rules": rules, "instruments": "all"})
        assert (bad.value.field, words in str(bad.value)) == (field, True), str(bad.value)
    with pytest.raises(ParameterError) as bad:
        parse_spec({"rules": {"entry": "close > 1"}, "params": {"n": 3}, "instruments": "all"})
    assert bad.value.field == "params.n"


def test_the_whole_spec_is_capped_in_size_and_depth():
    with pytest.raises(ValidationError, match="limit is 65536") as bad:
        parse_spec({**BASE, "instruments": [f"S{i:05d}.ASX" for i in range(5000)]})
    assert bad.value.field == "spec"
    with pytest.raises(ValidationError, match="nests deeper than 4") as bad:
        parse_spec({**BASE, "options": {"size": {"shares": [[[1]]]}}})
    assert bad.value.field == "spec"
    for text, words in (("{", "not valid JSON"), ("[1]", "JSON object"), (b"\xff", "JSON")):
        with pytest.raises(ValidationError, match=words) as bad:
            parse_spec(text)
        assert bad.value.field == "spec"


def test_times_without_an_offset_are_utc_and_dates_are_midnight():
    spec = parse_spec({**BASE, "start": "2024-03-01T09:30", "end": datetime(2024, 4, 1)})
    assert spec.start == datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    assert spec.end == datetime(2024, 4, 1, tzinfo=UTC)
    assert parse_spec({**BASE, "start": "2024-03-01Z"}).start == datetime(2024, 3, 1, tzinfo=UTC)
