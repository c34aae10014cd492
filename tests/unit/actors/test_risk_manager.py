"""Unit tests of the risk manager (actors.risk_manager) over the real catalog (SQLite and
PostgreSQL). A restart is a new RiskManager over the same catalog. No Ray."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from actors.risk_limits import RiskLimits
from actors.risk_manager import RiskManager
from actors.risk_rules import RiskContext
from actors.risk_state import SYSTEM, KillSwitch, TradingState
from core.errors import Conflict, ValidationError
from core.types import Order, OrderType, Side

D = Decimal
T0 = datetime(2025, 4, 24, 2, 0, tzinfo=UTC)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def order(qty: int = 100, *, limit: str | None = None, deployment: int | None = None,
          ref: str = "") -> Order:  # fmt: skip
    return Order(
        instrument="BHP.ASX", side=Side.BUY, quantity=D(qty),
        order_type=OrderType.MARKET if limit is None else OrderType.LIMIT,
        limit_price=None if limit is None else D(limit), deployment_id=deployment, order_ref=ref,
    )  # fmt: skip


def ctx(**kwargs: Any) -> RiskContext:
    kwargs.setdefault("now", T0)
    kwargs.setdefault("last_prices", {"BHP.ASX": D(40)})
    return RiskContext(**kwargs)


def manager(catalog: Any, clock: Clock | None = None) -> RiskManager:
    return RiskManager(catalog.risk, clock=clock or Clock(), session_open=lambda i, t: True)


def test_a_new_catalog_gives_an_active_manager_without_limits(catalog):
    risk = manager(catalog)
    assert risk.state().state is TradingState.ACTIVE
    assert risk.limits().global_.max_order_notional is None
    assert risk.check(order(10**6), ctx()).accepted
    assert catalog.risk.events() == []


def test_limits_set_are_persisted_and_a_restarted_manager_enforces_them(catalog):
    risk = manager(catalog)
    risk.set_limits("global", {"max_order_notional": "10000"}, by="alice")
    risk.set_limits("deployment:7", {"max_order_quantity": 50}, by="alice")
    again = manager(catalog)
    assert again.limits().global_.max_order_notional == D(10000)
    assert again.limits().effective(7).max_order_quantity == D(50)
    assert again.check(order(250), ctx()).accepted, "40 x 250 = 10,000: at the limit"
    assert [b.limit for b in again.check(order(60, deployment=7), ctx()).breaches] == [
        "max_order_quantity"
    ]
    (event, _) = [e for e in catalog.risk.events() if e.kind == "limits_changed"]
    assert event.detail["before"] == {"deployment:7": RiskLimits().to_mapping()}
    assert event.detail["after"]["deployment:7"]["max_order_quantity"] == "50"
    assert event.detail["by"] == "alice"


def test_a_rejection_is_recorded_with_every_breach_and_the_order_ref(catalog):
    risk = manager(catalog)
    risk.set_limits("global", {"max_order_notional": "1000", "max_order_quantity": 10}, by="a")
    decision = risk.check(order(100, ref="o-1"), ctx())
    assert not decision.accepted
    (event,) = catalog.risk.events(kind="rejected")
    assert (event.order_ref, event.limit_name, event.time) == ("o-1", "max_order_quantity", T0)
    assert [b["limit"] for b in event.detail["breaches"]] == [
        "max_order_quantity", "max_order_notional"]  # fmt: skip
    assert event.detail["breaches"][1]["observed"] == "4000"
    assert event.detail["message"] == decision.message


def test_a_dry_run_check_writes_nothing(catalog):
    risk = manager(catalog)
    risk.set_limits("global", {"max_order_quantity": 10}, by="a")
    assert not risk.check(order(100), ctx(), record=False).accepted
    assert catalog.risk.events(kind="rejected") == []


def test_bad_limits_name_the_field_and_write_nothing(catalog):
    risk = manager(catalog)
    with pytest.raises(ValidationError) as info:
        risk.set_limits("global", {"max_order_notional": "-5"}, by="a")
    assert info.value.field == "limits.max_order_notional"
    with pytest.raises(ValidationError) as info:
        risk.set_book({"global": {"max_position": 1}, "deployments": {"7": {"max_postion": 1}}},
                      by="a")  # fmt: skip
    assert info.value.field == "limits.deployments.7.max_postion"
    with pytest.raises(ValidationError) as info:
        risk.set_limits("deployment:x", {}, by="a")
    assert info.value.field == "scope"
    assert catalog.risk.limit_sets() == [] and catalog.risk.events() == []


def test_set_book_replaces_only_the_scopes_it_names(catalog):
    risk = manager(catalog)
    risk.set_book({"global": {"max_position": 100}, "deployments": {"3": {"max_position": 5}}},
                  by="a")  # fmt: skip
    risk.set_book({"deployments": {"4": {"max_position": 7}}}, by="b")
    book = manager(catalog).limits()
    assert (book.global_.max_position, book.effective(3).max_position,
            book.effective(4).max_position) == (100, 5, 7)  # fmt: skip


def test_a_trip_on_daily_loss_is_persisted_and_survives_a_restart(catalog):
    clock = Clock()
    risk = manager(catalog, clock)
    risk.set_limits("global", {"max_daily_loss": "1000"}, by="a")
    assert risk.observe_equity(D(100_000)) is None
    assert risk.observe_equity(D(99_000)) is None, "a loss at the limit is allowed"
    event = risk.observe_equity(D(98_999))
    assert event is not None and event.limit == "max_daily_loss"
    (halted,) = catalog.risk.events(kind="halted")
    assert (halted.limit_name, halted.detail["by"]) == ("max_daily_loss", SYSTEM)
    again = manager(catalog, clock)
    assert again.state().halted and again.state().marks.equity == D(98_999)
    assert again.check(order(1), ctx()).breaches[0].limit == "halted"
    clock.now = T0 + timedelta(days=1)
    again = manager(catalog, clock)
    assert again.state().halted, "a new day does not reset the switch"


def test_check_measures_the_loss_limits_against_the_observed_marks(catalog):
    risk = manager(catalog)
    risk.set_limits("global", {"max_drawdown_pct": "5"}, by="a")
    assert not risk.check(order(1), ctx()).accepted, "no equity observed: refused"
    risk.observe_equity(D(100_000))
    assert risk.check(order(1), ctx()).accepted


def test_emergency_stop_and_reset_are_persisted_and_recorded(catalog):
    clock = Clock()
    risk = manager(catalog, clock)
    risk.emergency_stop("fat finger on the desk", by="carol", flatten=True)
    again = manager(catalog, clock)
    assert again.state().halted and again.state().flatten and again.state().halted_by == "carol"
    clock.now = T0 + timedelta(minutes=5)
    again.reset(by="dave")
    assert manager(catalog, clock).state().state is TradingState.ACTIVE
    with pytest.raises(Conflict, match="not halted"):
        again.reset(by="dave")
    kinds = [(e.kind, e.detail["by"]) for e in catalog.risk.events()]
    assert kinds == [("reset", "dave"), ("emergency_stop", "carol")]
    assert catalog.risk.events(kind="emergency_stop")[0].detail["flatten"] is True


def test_a_saved_state_wins_over_the_default_switch(catalog):
    catalog.risk.save_state(KillSwitch(timezone="Australia/Sydney").to_mapping())
    risk = RiskManager(catalog.risk, kill_switch=KillSwitch(timezone="America/New_York"))
    assert risk.state().timezone == "Australia/Sydney"
    fresh_catalog_state = RiskManager(catalog.risk).state()
    assert fresh_catalog_state.timezone == "Australia/Sydney"
