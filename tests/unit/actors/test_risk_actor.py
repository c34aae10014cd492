"""The risk-manager actor's class, driven in process (unit tests never start Ray)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from actors.risk_actor import RiskManagerActor, RiskManagerHost
from actors.risk_rules import RiskContext
from core.settings import Settings
from core.types import Order, Side


def test_the_host_opens_the_catalog_of_its_settings_and_a_new_one_restores_a_halt(
    catalog_url, tmp_path
):
    settings = Settings.from_env({"SCIZOR_HOME": str(tmp_path), "SCIZOR_DATABASE_URL": catalog_url})
    host = RiskManagerHost(settings)
    book = host.set_limits("global", {"max_order_quantity": 10}, by="ops")
    assert book["global"]["max_order_quantity"] == "10"
    host.emergency_stop("drill", by="ops")
    again = RiskManagerHost(settings)  # what Ray's restart of the actor does
    assert again.state()["state"] == "HALTED" and again.limits() == host.limits()
    order = Order(instrument="BHP.ASX", side=Side.BUY, quantity=Decimal(1))
    decision = again.check(order, RiskContext(now=datetime(2025, 4, 24, 2, tzinfo=UTC)))
    assert decision.breaches[0].limit == "halted"
    again.reset(by="ops")
    assert again.state()["state"] == "ACTIVE"
    host.close()
    again.close()


def test_the_actor_class_is_a_ray_actor_with_restarts():
    assert RiskManagerActor.__ray_metadata__.max_restarts == -1
