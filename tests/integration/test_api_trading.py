"""Trading over real HTTP on Ray Serve, through the cluster's gateway, risk-manager,
order-manager and runner actors, against ibsim over TCP, with SQLite and PostgreSQL catalogs.

A paper deployment of ``sma_cross(2, 3)`` on 5-minute bars (ibsim runs 100 times faster than
the wall clock, a bar every 3 s, from just after NASDAQ's open, so a module's tests run
within one session and market orders fill at once, never at the next open) trades, shows in
/orders and /trading/performance, and is stopped flat. A manual order fills and shows in
/orders, /executions and /positions; a risk limit set with PUT /risk/limits makes one a 422
that never reaches ibsim; the emergency stop cancels an open limit order far from the market
and flattens every position, and only an admin resets it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest

from actors.gateway import get_gateway
from actors.pacing import PacingRules
from core.settings import Settings
from ibsim.server import IBSim
from ibsim.testing import running_ibsim
from serve.limits import ApiLimits
from storage.catalog import Catalog
from tests.integration.test_api_support import (
    backend_url,
    eventually,
    kill_trading_actors,
    scizor_env,
    serving,
)

pytestmark = pytest.mark.integration

SPEED = 100.0  # a 5-minute bar every 3 s; the session (13:30-20:00 UTC) lasts ~3.8 min
START = datetime(2024, 3, 12, 13, 45, tzinfo=UTC)  # NASDAQ open: orders fill now
AAPL, MSFT = "AAPL.NASDAQ", "MSFT.NASDAQ"
ACCOUNT = "DU1234567"  # ibsim's paper account


@dataclass
class Desk:
    http: httpx.Client
    tokens: dict[str, str]
    sim: IBSim
    gateway: Any
    catalog: Catalog

    def call(self, method: str, path: str, scope: str = "trade", **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[scope]}"}
        return self.http.request(method, path, headers=headers, **kwargs)

    def order(self, **fields: Any) -> httpx.Response:
        body = {"instrument": MSFT, "side": "BUY", "quantity": "10", **fields}
        return self.call("POST", "/orders", json=body)

    def status_of(self, order_ref: str) -> str:
        return str(self.call("GET", f"/orders/{order_ref}").json()["status"])

    def broker_positions(self) -> dict[str, Decimal]:
        import ray

        held = ray.get(self.gateway.positions.remote(), timeout=60)
        return {p.instrument: p.quantity for p in held if p.quantity != 0}


def sim_orders(sim: IBSim, order_ref: str) -> int:
    """How many orders ibsim received under ``order_ref``."""
    return sum(1 for o in list(sim.broker.orders.values()) if o.order_ref == order_ref)


def sim_fills(sim: IBSim, order_ref: str) -> dict[str, Decimal]:
    """ibsim's own executions of an order: ``{exec_id: shares}``."""
    return {e.exec_id: Decimal(e.shares) for e in list(sim.broker.executions)
            if e.order_ref == order_ref}  # fmt: skip


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def catalog_db(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[str]:
    yield from backend_url(request, tmp_path_factory)


@pytest.fixture(scope="module")
def desk(
    ray_session: None, catalog_db: str, serve_api_port: int, tmp_path_factory: Any
) -> Iterator[Desk]:
    import ray

    kill_trading_actors()  # another test's, on another catalog
    with running_ibsim(seed=11, pacing="strict", speed=SPEED, start=START) as sim:
        env = scizor_env(
            tmp_path_factory.mktemp("trading-home"), catalog_db, SCIZOR_IB_HOST="127.0.0.1",
            SCIZOR_IB_PORT=str(sim.port), SCIZOR_IB_CLIENT_ID="84",
        )  # fmt: skip
        gateway = get_gateway(Settings.from_env(env), time_scale=SPEED, rules=PacingRules.ibkr())
        catalog = Catalog(catalog_db)
        try:
            ray.get(gateway.ready.remote(), timeout=60)
            tokens = {s: catalog.tokens.create(s, f"{s}-trader")[1]
                      for s in ("read", "trade", "admin")}  # fmt: skip
            limits = ApiLimits(rate_per_second=100, burst=200)
            with (
                serving(env, limits=limits, port=serve_api_port) as url,
                httpx.Client(base_url=url, timeout=180) as http,
            ):
                yield Desk(http=http, tokens=tokens, sim=sim, gateway=gateway, catalog=catalog)
        finally:
            kill_trading_actors(catalog_db)
            with contextlib.suppress(Exception):
                ray.kill(gateway, no_restart=True)
            catalog.dispose()


def test_a_paper_deployment_trades_shows_its_performance_and_stops_flat(desk: Desk) -> None:
    spec = {"strategy": "sma_cross", "params": {"fast": 2, "slow": 3}, "instruments": [AAPL],
            "capital": "100000", "account": ACCOUNT, "bar_size": "5m"}  # fmt: skip
    assert desk.call("POST", "/trading/deployments", "read", json=spec).status_code == 403
    created = desk.call("POST", "/trading/deployments", json=spec)
    assert created.status_code == 201, created.text
    dep = created.json()["id"]
    started = desk.call("POST", f"/trading/deployments/{dep}/start", json={})
    assert started.status_code == 200, started.text
    assert started.json()["deployment"]["status"] == "running"

    def traded() -> list[dict[str, Any]] | None:
        page = desk.call("GET", f"/orders?deployment_id={dep}&status=Filled").json()
        return page["items"] or None

    [*_, first] = eventually(traded, timeout=180, interval=1)
    assert first["order_ref"].startswith(f"scz-{dep}-{AAPL}-") and first["instrument"] == AAPL
    report = desk.call("GET", "/trading/performance").json()
    [mine] = [e for e in report["deployments"] if e["deployment_id"] == dep]
    assert mine["status"] == "running" and mine["positions"][0]["fills"] >= 1
    assert Decimal(mine["commission"]) > 0

    stopped = desk.call("POST", f"/trading/deployments/{dep}/stop", json={"flatten": True})
    assert stopped.status_code == 200, stopped.text
    assert stopped.json()["deployment"]["status"] == "stopped"

    def flat() -> bool:
        entries = desk.call("GET", "/trading/performance").json()["deployments"]
        [entry] = [e for e in entries if e["deployment_id"] == dep]
        return all(Decimal(p["quantity"]) == 0 for p in entry["positions"])

    eventually(flat, timeout=120, interval=1)
    assert AAPL not in desk.broker_positions()


def test_start_true_runs_a_paper_deployment_at_once_and_is_refused_for_live(desk: Desk) -> None:
    spec = {"strategy": "buy_hold", "instruments": [AAPL], "capital": "50000",
            "account": ACCOUNT, "bar_size": "5m", "start": True}  # fmt: skip
    before = len(desk.catalog.deployments.list())
    live = desk.call("POST", "/trading/deployments", json={**spec, "mode": "live"})
    assert live.status_code == 422, live.text
    assert live.json()["field"] == "start" and "confirm_live" in live.text
    assert len(desk.catalog.deployments.list()) == before, "a refused spec stored nothing"
    created = desk.call("POST", "/trading/deployments", json=spec)
    assert created.status_code == 201, created.text
    dep = created.json()
    assert dep["status"] == "running" and dep["mode"] == "paper", dep
    stopped = desk.call("POST", f"/trading/deployments/{dep['id']}/stop", json={"flatten": True})
    assert stopped.status_code == 200 and stopped.json()["deployment"]["status"] == "stopped"


def test_a_manual_order_fills_and_shows_in_orders_executions_and_positions(desk: Desk) -> None:
    assert desk.call("POST", "/orders", "read", json={}).status_code == 403
    sent = desk.order(order_ref="api-buy")
    assert sent.status_code == 201, sent.text
    assert sent.json()["sent"] and sent.json()["decision"]["accepted"]
    eventually(lambda: desk.status_of("api-buy") == "Filled", timeout=60)
    again = desk.order(order_ref="api-buy")
    assert again.status_code == 200 and again.json()["duplicate"]
    assert sim_orders(desk.sim, "api-buy") == 1

    fills = desk.call("GET", "/executions?order_ref=api-buy").json()
    assert {f["exec_id"]: Decimal(f["quantity"]) for f in fills["items"]} == sim_fills(
        desk.sim, "api-buy"
    )
    assert sum(Decimal(f["quantity"]) for f in fills["items"]) == 10
    listed = desk.call("GET", f"/orders?instrument={MSFT}").json()
    assert "api-buy" in [o["order_ref"] for o in listed["items"]]
    held = {p["instrument"]: p for p in desk.call("GET", "/positions").json()["items"]}
    assert Decimal(held[MSFT]["quantity"]) == 10 and Decimal(held[MSFT]["commission"]) > 0
    assert desk.broker_positions()[MSFT] == 10
    account = desk.call("GET", "/account")
    assert account.status_code == 200 and ACCOUNT in account.json()["accounts"]


def test_a_risk_limit_makes_a_manual_order_a_422_that_never_reaches_ibsim(desk: Desk) -> None:
    limit = {"scope": "global", "limits": {"max_order_quantity": 50}}
    assert desk.call("PUT", "/risk/limits", "trade", json=limit).status_code == 403
    assert desk.call("PUT", "/risk/limits", "admin", json=limit).status_code == 200
    try:
        refused = desk.order(quantity="60", order_ref="api-big")
        assert refused.status_code == 422, refused.text
        body = refused.json()
        assert body["error"] == "RiskRejected" and not body["sent"]
        assert [b["limit"] for b in body["decision"]["breaches"]] == ["max_order_quantity"]
        assert desk.status_of("api-big") == "Rejected"
        assert sim_orders(desk.sim, "api-big") == 0
    finally:
        cleared = {"scope": "global", "limits": {}}
        assert desk.call("PUT", "/risk/limits", "admin", json=cleared).status_code == 200


def test_the_emergency_stop_cancels_open_orders_flattens_and_only_an_admin_resets(
    desk: Desk,
) -> None:
    assert desk.broker_positions(), "the earlier tests left a position to flatten"
    far = desk.order(order_type="LMT", limit_price="1.00", order_ref="api-far")
    assert far.status_code == 201, far.text
    eventually(lambda: desk.status_of("api-far") in ("Submitted", "PreSubmitted"), timeout=60)

    body = {"reason": "integration test", "flatten": True}
    assert desk.call("POST", "/trading/emergency-stop", "read", json=body).status_code == 403
    stopped = desk.call("POST", "/trading/emergency-stop", json=body)
    assert stopped.status_code == 200, stopped.text
    done = stopped.json()
    assert "api-far" in done["cancelled"] and done["flatten_orders"] and done["failures"] == []
    assert done["halted"]["by"] == "trade-trader"
    eventually(lambda: desk.status_of("api-far") == "Cancelled", timeout=60)
    eventually(lambda: desk.broker_positions() == {}, timeout=120, interval=0.5)
    eventually(lambda: desk.call("GET", "/positions").json()["items"] == [], timeout=60)
    assert desk.call("GET", "/risk/state").json()["halted"]
    halted = desk.order(order_ref="api-after-halt")
    assert halted.status_code == 422 and halted.json()["error"] == "RiskRejected"
    assert sim_orders(desk.sim, "api-after-halt") == 0

    refused = desk.call("POST", "/trading/emergency-stop/reset", "trade")
    assert refused.status_code == 403 and refused.json()["required_scope"] == "admin"
    reset = desk.call("POST", "/trading/emergency-stop/reset", "admin")
    assert reset.status_code == 200, reset.text
    assert not desk.call("GET", "/risk/state").json()["halted"]
    resumed = desk.order(quantity="1", order_ref="api-after-reset")
    assert resumed.status_code == 201, resumed.text
    assert resumed.json()["sent"]
