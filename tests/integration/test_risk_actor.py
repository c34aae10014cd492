"""The risk manager as the cluster's named Ray actor, on the session cluster with SQLite and
PostgreSQL catalogs: a rejection is recorded; an emergency stop survives the actor's crash
(Ray restarts it and it reloads its state from the catalog); a reset clears it."""

from __future__ import annotations

import os
import signal
import time
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from actors.risk_actor import get_risk_manager
from actors.risk_rules import RiskContext
from core.settings import Settings
from core.types import Order, OrderType, Side
from storage.catalog import Catalog

pytestmark = pytest.mark.integration

ORDER = Order(instrument="BHP.ASX", side=Side.BUY, quantity=D(500), order_type=OrderType.LIMIT,
              limit_price=D("40"), order_ref="risk-actor-1")  # fmt: skip


def context() -> RiskContext:
    return RiskContext(now=datetime.now(UTC), last_prices={"BHP.ASX": D(40)})


def test_the_actor_rejects_records_and_stays_halted_across_a_crash(
    ray_session, catalog_url, tmp_path
):
    import ray

    settings = Settings.from_env({"SCIZOR_HOME": str(tmp_path),
                                  "SCIZOR_DATABASE_URL": catalog_url})  # fmt: skip
    name = f"risk-{os.getpid()}-{time.monotonic_ns()}"
    risk = get_risk_manager(settings, name=name)
    try:
        ray.get(risk.set_limits.remote("global", {"max_order_quantity": "100"}, "ops"))
        decision = ray.get(risk.check.remote(ORDER, context()))
        assert not decision.accepted and decision.breaches[0].limit == "max_order_quantity"
        ray.get(risk.emergency_stop.remote("operator drill", "ops"))
        pid = ray.get(risk.__ray_call__.remote(lambda self: os.getpid()))
        os.kill(pid, signal.SIGKILL)  # the actor dies; Ray restarts it
        deadline, state = time.monotonic() + 120, None
        while time.monotonic() < deadline:
            try:
                state = ray.get(risk.state.remote(), timeout=30)
                break
            except (ray.exceptions.RayActorError, ray.exceptions.GetTimeoutError):
                time.sleep(0.5)
        assert state is not None and state["state"] == "HALTED", state
        assert ray.get(risk.__ray_call__.remote(lambda self: os.getpid())) != pid
        small = Order(instrument="BHP.ASX", side=Side.BUY, quantity=D(10),
                      order_type=OrderType.LIMIT, limit_price=D("40"))  # fmt: skip
        halted = ray.get(risk.check.remote(small, context()))
        assert not halted.accepted and halted.breaches[0].limit == "halted"
        ray.get(risk.reset.remote("admin"))
        assert ray.get(risk.check.remote(small, context())).accepted
    finally:
        ray.kill(risk, no_restart=True)
    catalog = Catalog(catalog_url)
    try:
        kinds = [e.kind for e in catalog.risk.events(limit=20)]
    finally:
        catalog.dispose()
    assert {"rejected", "emergency_stop", "reset", "limits_changed"} <= set(kinds)
