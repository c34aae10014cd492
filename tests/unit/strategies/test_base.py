"""The parameter API: validation with suggestions, constraints, the JSON search space."""

from __future__ import annotations

import json

import numpy as np
import pytest

import strategies
from core.errors import NotFound, ParameterError
from strategies.base import ChoiceParam, FloatParam, IntParam


class FakeTrial:
    """Records what an Optuna trial was asked for and answers with the low end."""

    def __init__(self) -> None:
        self.asked: list[tuple] = []

    def suggest_int(self, name, low, high, step=1):
        self.asked.append(("int", name, low, high, step))
        return low

    def suggest_float(self, name, low, high):
        self.asked.append(("float", name, low, high))
        return low

    def suggest_categorical(self, name, choices):
        self.asked.append(("choice", name, tuple(choices)))
        return choices[0]


def test_unknown_parameter_names_the_closest_valid_one():
    with pytest.raises(ParameterError) as info:
        strategies.get("sma_cross").resolve({"fats": 5})
    assert str(info.value) == "unknown parameter 'fats' for sma_cross; did you mean 'fast'?"
    assert info.value.field == "fats"


def test_unknown_parameter_without_a_close_match_lists_the_valid_ones():
    with pytest.raises(ParameterError, match="valid parameters: fast, slow, allow_short"):
        strategies.get("sma_cross").resolve({"zzzzzz": 5})


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"fast": 1}, "'fast' for sma_cross must be between 2 and 200, got 1"),
        ({"fast": 2.5}, "whole number"),
        ({"fast": "5"}, "must be an integer"),
        ({"fast": True}, "must be an integer"),
        ({"fast": 50, "slow": 20}, "sma_cross needs fast < slow"),
        ({"allow_short": 1}, "must be one of"),
    ],
)
def test_bad_values_and_broken_constraints_raise_parameter_error(params, match):
    with pytest.raises(ParameterError, match=match):
        strategies.get("sma_cross").resolve(params)


def test_resolve_fills_defaults_and_accepts_whole_floats():
    assert strategies.get("sma_cross").resolve({"fast": 5.0}) == {
        "fast": 5, "slow": 30, "allow_short": False,
    }  # fmt: skip
    assert strategies.get("rsi_reversion").resolve({"lower": 25})["lower"] == 25.0


def test_space_is_json_ready_and_describes_every_parameter():
    space = strategies.get("sma_cross").space()
    assert json.loads(json.dumps(space)) == space
    assert space["params"]["fast"] == {"type": "int", "default": 10, "low": 2, "high": 200,
                                       "step": 1}  # fmt: skip
    assert space["params"]["allow_short"]["choices"] == [False, True]


def test_params_suggest_through_an_optuna_like_trial():
    trial = FakeTrial()
    assert IntParam(5, 2, 20, 2).suggest(trial, "n") == 2
    assert FloatParam(1.0, 0.5, 3.0).suggest(trial, "x") == 0.5
    assert ChoiceParam("a", ("a", "b")).suggest(trial, "c") == "a"
    assert trial.asked == [("int", "n", 2, 20, 2), ("float", "x", 0.5, 3.0),
                           ("choice", "c", ("a", "b"))]  # fmt: skip


def test_float_param_rejects_non_finite_values():
    with pytest.raises(ParameterError, match="finite"):
        FloatParam(1.0, 0.0, 2.0).validate("s", "x", float("nan"))


def test_get_and_list_strategies_cover_the_library():
    names = [s["name"] for s in strategies.list_strategies()]
    assert names == ["sma_cross", "rsi_reversion", "buy_hold", "macd_trend",
                     "bollinger_reversion", "donchian_breakout"]  # fmt: skip
    assert json.loads(json.dumps(strategies.list_strategies()))
    with pytest.raises(NotFound, match="did you mean 'sma_cross'"):
        strategies.get("sma_crosss")


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), float("nan")])
def test_int_param_rejects_non_finite_values_with_a_parameter_error(bad):
    with pytest.raises(ParameterError, match="whole number between 2 and 50") as info:
        IntParam(10, 2, 50).validate("sma_cross", "fast", bad)
    assert info.value.field == "fast"


def test_params_reject_huge_integers_and_complex_numbers_with_parameter_errors():
    with pytest.raises(ParameterError, match="between 2 and 50"):
        IntParam(10, 2, 50).validate("s", "fast", 10**400)
    with pytest.raises(ParameterError, match="finite number"):
        FloatParam(0.5, 0.0, 1.0).validate("s", "x", 10**400)
    with pytest.raises(ParameterError, match="must be a number"):
        FloatParam(0.5, 0.0, 1.0).validate("s", "x", np.complex128(0.5))
    assert IntParam(10, 2, 50).validate("s", "fast", np.int64(7)) == 7
