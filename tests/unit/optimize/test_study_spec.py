"""The study spec: shared fields through parse_spec, the search space, constraints,
objectives and samplers, and an error naming the field and the fix for every bad one."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

import strategies
from core.errors import ParameterError, ValidationError
from optimize.study_spec import parse_study
from optimize.sweep_space import Constraint, feasible, grid, sample
from optimize.sweep_task import fold_bars

BASE = {"name": "s", "strategy": "sma_cross", "instruments": ["AAA.ASX"]}


def test_a_minimal_spec_searches_every_typed_number_and_fixes_the_rest() -> None:
    spec = parse_study(BASE)
    assert set(spec.space) == {"fast", "slow"}
    assert (spec.space["fast"].low, spec.space["fast"].high, spec.space["fast"].step) == (2, 200, 1)
    assert spec.fixed == {"allow_short": False}
    assert spec.sampler == "tpe" and spec.trials == 100 and spec.seed is None
    assert [(o.metric, o.direction) for o in spec.objectives] == [("sharpe", "maximize")]


def test_the_shared_fields_are_checked_as_a_backtest_specs() -> None:
    spec = parse_study(
        {**BASE, "bar_size": "1d", "start": "2023-01-01", "costs": {"commission": "ibkr"}}
    )
    assert spec.backtest.costs.commission == "ibkr" and spec.backtest.start is not None
    with pytest.raises(ValidationError) as err:
        parse_study({**BASE, "costs": {"slippage": 2}})
    assert err.value.field == "costs.slippage" and "slippage_bps" in err.value.message


def test_space_overrides_ranges_takes_values_and_fixed_values() -> None:
    spec = parse_study(
        {
            **BASE,
            "space": {
                "fast": {"low": 5, "high": 20, "step": 5},
                "slow": {"values": [30, 40, 40]},
                "allow_short": True,
            },
        }
    )
    assert spec.space["fast"].points() == [5, 10, 15, 20]
    assert spec.space["slow"].kind == "categorical" and spec.space["slow"].values == (30, 40)
    assert spec.fixed == {"allow_short": True}


def test_params_fix_parameters_and_leave_the_rest_searched() -> None:
    spec = parse_study({**BASE, "params": {"slow": 50}})
    assert set(spec.space) == {"fast"} and spec.fixed == {"slow": 50, "allow_short": False}


def test_a_real_range_gets_a_float_distribution_and_a_grid_needs_its_step() -> None:
    rsi = {**BASE, "strategy": "rsi_reversion", "space": {"lower": {"low": 20, "high": 30}}}
    spec = parse_study(rsi)
    assert spec.space["lower"].kind == "float" and spec.space["lower"].step is None
    with pytest.raises(ValidationError) as err:
        parse_study({**rsi, "sampler": "grid"})
    assert err.value.field == "space.lower" and "step" in err.value.message
    stepped = {**rsi, "sampler": "grid", "space": {"lower": {"low": 20, "high": 30, "step": 2.5}}}
    assert parse_study(stepped).space["lower"].points() == [20.0, 22.5, 25.0, 27.5, 30.0]


def test_pruning_has_defaults_round_trips_and_changes_the_fingerprint() -> None:
    plain = parse_study({**BASE, "sampler": "tpe"})
    pruned = parse_study({**BASE, "sampler": "tpe", "pruning": {"folds": 5}})
    assert plain.pruning is None and "pruning" not in plain.to_json()
    assert pruned.pruning is not None
    assert (pruned.pruning.folds, pruned.pruning.pruner, pruned.pruning.warmup_folds) == (
        5,
        "median",
        1,
    )
    assert parse_study(json.dumps(pruned.to_json())) == pruned
    assert pruned.fingerprint() != plain.fingerprint()  # a pruned study is another study


def test_fold_bars_cut_the_bars_into_consecutive_folds_holding_every_bar_once() -> None:
    idx = pd.date_range("2020-01-01", periods=1003, freq="D", tz="UTC")
    bars = pd.DataFrame({"close": np.arange(1003.0)}, index=idx)
    folds = [fold_bars(bars, 4, k) for k in range(4)]
    assert pd.concat(folds).index.equals(idx)  # in order, none twice, none left out
    assert {len(f) for f in folds} <= {250, 251}


def test_the_spec_round_trips_through_json() -> None:
    spec = parse_study(
        {
            **BASE,
            "space": {"fast": {"low": 5, "high": 20, "step": 5}, "slow": {"values": [30, 40]}},
            "constraints": ["fast < slow", "slow <= 35"],
            "objectives": [{"metric": "sharpe"}, {"metric": "volatility_pct"}],
            "sampler": "nsga2",
            "trials": 50,
            "seed": 7,
        }
    )
    assert parse_study(json.dumps(spec.to_json())) == spec
    assert spec.objectives[1].direction == "minimize"  # volatility defaults to minimize
    assert spec.directions == ["maximize", "minimize"]


def test_constraints_and_the_strategys_own_check_decide_feasibility() -> None:
    spec = parse_study({**BASE, "constraints": ["fast <= 20", "30 < slow", "fast != 5"]})
    assert spec.constraints[1] == Constraint(left=30.0, op="<", right="slow")
    s = strategies.get("sma_cross")
    fixed = spec.fixed
    assert feasible(s, spec.constraints, {**fixed, "fast": 10, "slow": 40}) is None
    assert "fast <= 20" in str(feasible(s, spec.constraints, {**fixed, "fast": 25, "slow": 40}))
    assert "fast != 5" in str(feasible(s, spec.constraints, {**fixed, "fast": 5, "slow": 40}))
    assert "fast <" in str(feasible(s, (), {**fixed, "fast": 50, "slow": 40}))  # sma_cross's own


def test_the_grid_is_every_feasible_point_and_samples_are_feasible() -> None:
    spec = parse_study(
        {**BASE, "space": {"fast": {"low": 2, "high": 10, "step": 2}, "slow": {"values": [4, 8]}}}
    )
    s = strategies.get("sma_cross")
    points = list(grid(s, spec.space, spec.constraints, spec.fixed))
    assert points == [{"fast": 2, "slow": 4}, {"fast": 2, "slow": 8}, {"fast": 4, "slow": 8},
                      {"fast": 6, "slow": 8}]  # fmt: skip
    drawn = sample(s, spec.space, spec.constraints, spec.fixed, n=50, rng=np.random.default_rng(1))
    assert len(drawn) == 50 and all(p in points for p in drawn)


BAD = [
    ({"name": ""}, "name", "name the study"),
    ({"space": {"fats": {"low": 2}}}, "space.fats", "did you mean 'fast'"),
    ({"space": {"fast": {"low": 1}}}, "space.fast", "between 2 and 200"),
    ({"space": {"fast": {"low": 5, "high": 3}}}, "space.fast", "above high"),
    ({"space": {"fast": {"low": 5, "step": 0}}}, "space.fast", "step"),
    ({"space": {"fast": {"lo": 5}}}, "space.fast", "low, high and step"),
    ({"space": {"fast": {"values": []}}}, "space.fast", "non-empty list"),
    ({"space": {"fast": {"values": [1.5]}}}, "space.fast", "whole number"),
    ({"space": {"allow_short": {"low": 0}}}, "space.allow_short", "values"),
    ({"space": {"allow_short": True}}, "space", "no parameter"),
    ({"space": [1]}, "space", "object"),
    ({"params": {"fast": 5}, "space": {"fast": {"low": 2}}}, "space.fast", "keep one"),
    ({"params": {"fats": 5}}, "params.fats", "did you mean 'fast'"),
    ({"params": {"fast": 500}}, "params.fast", "between"),
    ({"constraints": "fast < slow"}, "constraints", "list"),
    ({"constraints": ["fast << slow"]}, "constraints.0", "NAME|NUMBER OP NAME|NUMBER"),
    ({"constraints": ["fast < slow", "fats < 3"]}, "constraints.1", "not a parameter"),
    ({"constraints": ["1 < 3"]}, "constraints.0", "name a parameter"),
    ({"objectives": []}, "objectives", "non-empty"),
    ({"objectives": [{"metric": "sharp"}]}, "objectives.0.metric", "did you mean 'sharpe'"),
    ({"objectives": [{"metric": "sharpe", "direction": "up"}]}, "objectives.0.direction", "max"),
    (
        {"objectives": [{"metric": "sharpe"}, {"metric": "sharpe"}]},
        "objectives.1.metric",
        "repeats",
    ),
    ({"objectives": [{"metric": "sharpe", "weight": 1}]}, "objectives.0.weight", "unknown"),
    ({"sampler": "bayes"}, "sampler", "grid, random, tpe, cmaes, nsga2"),
    ({"sampler": "nsga2"}, "sampler", "several objectives"),
    (
        {"sampler": "cmaes", "objectives": [{"metric": "sharpe"}, {"metric": "calmar"}]},
        "sampler",
        "one objective",
    ),
    ({"strategy": "macd_trend", "sampler": "grid"}, "space", "the limit is 200,000"),
    ({"trials": 0}, "trials", "whole number"),
    ({"trials": 2.5}, "trials", "whole number"),
    ({"seed": -1}, "seed", "seed"),
    ({"options": {"mode": "portfolio"}}, "options.mode", "per_instrument"),
    ({"strategy": "buy_hold"}, "space", "nothing to search"),
    ({"strategy": None, "rules": {"entry": "close > 1"}}, "space", "nothing to search"),
    ({"instruments": []}, "instruments", "non-empty"),
    ({"pruning": 4}, "pruning", "must be an object"),
    ({"pruning": {"folds": 4}, "sampler": "grid"}, "pruning", "use sampler tpe or cmaes"),
    ({"pruning": {"folds": 4}, "sampler": "random"}, "pruning", "use sampler tpe or cmaes"),
    (
        {"pruning": {}, "objectives": [{"metric": "sharpe"}, {"metric": "calmar"}]},
        "pruning",
        "one objective",
    ),
    ({"pruning": {"folds": 1}}, "pruning.folds", "[2, 20]"),
    ({"pruning": {"folds": 4, "warmup_folds": 4}}, "pruning.warmup_folds", "[0, 3]"),
    ({"pruning": {"pruner": "hyperband"}}, "pruning.pruner", "median"),
    ({"pruning": {"startup_trials": -1}}, "pruning.startup_trials", "whole number"),
    ({"pruning": {"fold": 3}}, "pruning.fold", "unknown"),
]


@pytest.mark.parametrize(("change", "field", "words"), BAD)
def test_a_bad_field_is_refused_naming_the_field_and_the_fix(change, field, words) -> None:
    data = {**BASE, **change}
    if data.get("strategy") is None:
        data.pop("strategy")
    with pytest.raises(ValidationError) as err:
        parse_study(data)
    assert err.value.field == field
    assert words in err.value.message


def test_not_json_and_not_an_object_are_refused() -> None:
    with pytest.raises(ValidationError, match="not valid JSON"):
        parse_study("{")
    with pytest.raises(ValidationError, match="JSON object"):
        parse_study("[1]")


def test_an_unknown_parameter_is_a_parameter_error() -> None:
    with pytest.raises(ParameterError):
        parse_study({**BASE, "space": {"fats": {"low": 2}}})


def test_a_fold_window_carries_the_history_before_its_fold() -> None:
    from optimize.sweep_task import fold_window

    idx = pd.date_range("2020-01-01", periods=1000, freq="D", tz="UTC")
    bars = pd.DataFrame({"close": np.arange(1000.0)}, index=idx)
    for k in range(4):
        fold = fold_bars(bars, 4, k)
        window, start = fold_window(bars, 4, k, warmup=300)
        assert window.iloc[start:].index.equals(fold.index)  # scored: the fold, exactly
        assert start == min(300, 250 * k)  # the first fold has no history before it
        assert window.index[0] == idx[max(0, 250 * k - 300)]
    assert fold_window(bars, 4, 2, warmup=0)[0].index.equals(fold_bars(bars, 4, 2).index)


def test_a_pruned_studys_folds_warm_up_for_the_largest_values_of_its_space() -> None:
    from optimize.sweep import fold_warmup

    spec = parse_study({**BASE, "space": {"fast": {"low": 2, "high": 30},
                                          "slow": {"low": 35, "high": 120}}})  # fmt: skip
    assert fold_warmup(spec, spec.backtest.build_strategy()) == 120  # sma_cross: slow
    rsi = parse_study({**BASE, "strategy": "rsi_reversion",
                       "space": {"period": {"values": [7, 14, 21]}}})  # fmt: skip
    assert fold_warmup(rsi, rsi.backtest.build_strategy()) == 21
