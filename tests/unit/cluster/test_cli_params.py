"""``--param NAME=VALUE`` as the CLI reads it (backtest, deploy, parity)."""

from __future__ import annotations

import pytest

from cluster.cli_backtest import parse_params
from core.errors import ValidationError
from strategies.library import LIBRARY


def test_values_are_json_numbers_booleans_or_strings() -> None:
    got = parse_params(["fast=10", "band=2.5", "allow_short=false", "name=abc", "x=True"])
    assert got == {"fast": 10, "band": 2.5, "allow_short": False, "name": "abc", "x": True}
    assert isinstance(got["x"], bool) and isinstance(got["fast"], int)


def test_a_boolean_as_the_summaries_print_it_is_taken_by_the_strategy() -> None:
    # the optimize summary prints best parameters as allow_short=False: pasting it works
    params = parse_params(["allow_short=False", "fast=60", "slow=230"])
    assert LIBRARY["sma_cross"].resolve(params)["allow_short"] is False


@pytest.mark.parametrize("pair", ["fast", "=10", " =3"])
def test_a_pair_without_a_name_is_refused_naming_the_fix(pair: str) -> None:
    with pytest.raises(ValidationError, match="NAME=VALUE"):
        parse_params([pair])
