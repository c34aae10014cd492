"""The deployment service's validation, over a real catalog (no Ray)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from actors.deployments import DeploymentSpec, create_deployment
from core.errors import NotFound, ParameterError, ValidationError
from core.types import TradingMode

RULES = {"name": "dip", "entry": "rsi(14) < 30", "exit": "rsi(14) > 70"}


def _spec(**kwargs) -> DeploymentSpec:
    args = {
        "strategy": "sma_cross",
        "params": {"fast": 5},
        "instruments": ["AAPL.NASDAQ"],
        "capital": "10000",
        "account": "DU1234567",
    }
    return DeploymentSpec(**{**args, **kwargs})


def test_create_stores_the_resolved_parameters_and_the_spec(catalog):
    record = create_deployment(catalog, _spec(bar_size="5m"))
    assert record.params == {"fast": 5, "slow": 30, "allow_short": False}
    assert (record.strategy, record.bar_size, record.capital) == ("sma_cross", "5m", Decimal(10000))
    assert record.mode is TradingMode.PAPER and record.rule_spec is None


def test_a_rule_spec_is_compiled_and_kept(catalog):
    record = create_deployment(catalog, _spec(strategy=RULES, params={}))
    assert (record.strategy, record.rule_spec) == ("dip", RULES)


@pytest.mark.parametrize(
    ("error", "field", "kwargs"),
    [
        (ParameterError, "fast", {"params": {"fast": 50, "slow": 20}}),
        (ParameterError, "fats", {"params": {"fats": 5}}),
        (ValidationError, "entry", {"strategy": {"entry": "__import__('os')"}, "params": {}}),
        (ValidationError, "instruments", {"instruments": ["VEA"]}),
        (ValidationError, "instruments", {"instruments": []}),
        (ValidationError, "capital", {"capital": 0}),
        (ValidationError, "capital", {"capital": None}),
        (ValidationError, "bar_size", {"bar_size": "2d"}),
        (ValidationError, "mode", {"mode": "fantasy"}),
        (ValidationError, "account", {"mode": "paper", "account": "U7654321"}),
        (ValidationError, "mode", {"mode": "live", "account": "DU1234567"}),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field_and_nothing_is_stored(catalog, error, field,
                                                                      kwargs):  # fmt: skip
    with pytest.raises(error) as info:
        create_deployment(catalog, _spec(**kwargs))
    assert info.value.field == field
    assert catalog.deployments.list() == []


def test_an_unknown_strategy_names_the_closest_one(catalog):
    with pytest.raises(NotFound, match="sma_cross"):
        create_deployment(catalog, _spec(strategy="sma_cros"))


def test_a_live_deployment_on_a_live_account_is_created_and_needs_confirmation_later(catalog):
    record = create_deployment(catalog, _spec(mode="live", account="U7654321"))
    assert record.mode is TradingMode.LIVE and record.account == "U7654321"
