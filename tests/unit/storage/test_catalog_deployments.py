"""The deployment repository on SQLite and PostgreSQL: the spec, its checks, status
stamps and the runner's saved state."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.errors import Conflict, NotFound, ValidationError
from core.types import TradingMode
from storage.catalog import DeploymentStatus

T0 = datetime(2026, 12, 1, 9, 30, tzinfo=UTC)
T1 = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)


def test_create_keeps_the_whole_spec_and_reads_it_back(catalog):
    dep = catalog.deployments.create(
        "sma_cross",
        instruments=["AAPL.NASDAQ", "msft.nasdaq", "AAPL.NASDAQ"],
        params={"fast": 5, "slow": 20},
        mode="live",
        bar_size="5m",
        capital="25000.50",
        account="U1234567",
        at=T0,
    )
    got = catalog.deployments.get(dep.id)
    assert got == dep
    assert got.instruments == ["AAPL.NASDAQ", "MSFT.NASDAQ"]
    assert (got.mode, got.bar_size, got.capital, got.account) == (
        TradingMode.LIVE,
        "5m",
        Decimal("25000.50"),
        "U1234567",
    )
    assert got.rule_spec is None and got.runner_state is None and got.started_at is None


def test_a_rule_spec_deployment_keeps_its_document(catalog):
    spec = {"name": "dip", "entry": "rsi(14) < 30", "exit": "rsi(14) > 70"}
    dep = catalog.deployments.create("dip", instruments=["BHP.ASX"], rule_spec=spec, capital=1)
    assert catalog.deployments.get(dep.id).rule_spec == spec


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("instruments", {"instruments": []}),
        ("instruments", {"instruments": "AAPL.NASDAQ"}),
        ("instruments", {"instruments": ["VEA"]}),  # two listings: not canonical
        ("mode", {"mode": "fantasy"}),
        ("bar_size", {"bar_size": "2d"}),
        ("capital", {"capital": 0}),
        ("capital", {"capital": "lots"}),
        ("account", {"account": "U" * 33}),
    ],
)
def test_create_refuses_a_bad_field_naming_it_and_writes_nothing(catalog, field, kwargs):
    args = {"instruments": ["AAPL.NASDAQ"], "capital": 1000, **kwargs}
    with pytest.raises(ValidationError) as info:
        catalog.deployments.create("sma_cross", **args)
    assert info.value.field == field
    assert catalog.deployments.list() == []


def test_status_moves_stamp_start_and_stop_and_illegal_moves_conflict(catalog):
    dep = catalog.deployments.create("buy_hold", instruments=["AAPL.NASDAQ"], capital=1000)
    with pytest.raises(Conflict, match="created to paused"):
        catalog.deployments.set_status(dep.id, "paused")
    running = catalog.deployments.set_status(dep.id, DeploymentStatus.RUNNING, at=T0)
    assert running.started_at == T0 and running.stopped_at is None
    paused = catalog.deployments.set_status(dep.id, "paused", at=T1)
    resumed = catalog.deployments.set_status(dep.id, "running", at=T1)
    assert paused.started_at == resumed.started_at == T0, "a resume is not a new start"
    stopped = catalog.deployments.set_status(dep.id, "stopped", at=T1)
    assert (stopped.status, stopped.stopped_at) == (DeploymentStatus.STOPPED, T1)
    assert [d.id for d in catalog.deployments.list(status=DeploymentStatus.STOPPED)] == [dep.id]
    with pytest.raises(NotFound, match="deployment 999"):
        catalog.deployments.set_status(999, "running")


def test_runner_state_round_trips_and_is_replaced_whole(catalog):
    dep = catalog.deployments.create("buy_hold", instruments=["AAPL.NASDAQ"], capital=1000)
    state = {
        "format": 1,
        "anchor": {"AAPL.NASDAQ": "2026-10-01T00:00:00+00:00"},
        "last_bar": {"AAPL.NASDAQ": "2026-12-01T00:00:00+00:00"},
        "target": {"AAPL.NASDAQ": 1.0},
        "position": {"AAPL.NASDAQ": "10"},
    }
    catalog.deployments.save_runner_state(dep.id, state)
    assert catalog.deployments.runner_state(dep.id) == state
    catalog.deployments.save_runner_state(dep.id, {"format": 1})
    assert catalog.deployments.runner_state(dep.id) == {"format": 1}
    with pytest.raises(ValidationError, match="mapping"):
        catalog.deployments.save_runner_state(dep.id, ["x"])  # type: ignore[arg-type]
    with pytest.raises(NotFound):
        catalog.deployments.save_runner_state(dep.id + 1, state)
