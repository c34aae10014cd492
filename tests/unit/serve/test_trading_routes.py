"""The trading routes over the real catalog (SQLite and PostgreSQL) with a hand-written fake
of the trading actors: deployments and their lifecycle, manual orders through the real risk
manager, executions, positions, performance, the account, the emergency stop and its reset;
scopes, and 4xx naming the field for bad input (no Ray)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from actors.order_manager import Submission
from actors.positions import PositionBook, PositionState
from actors.reconcile import FlattenReport
from actors.risk_manager import RiskManager
from actors.risk_rules import RiskContext
from actors.trading_ops import stop_trading
from core.errors import NotFound
from core.orders import TERMINAL
from core.settings import Settings
from core.types import Fill, Order, OrderStatus, OrderType, Side, utcnow
from serve.app import create_api
from serve.context import ApiContext
from serve.limits import ApiLimits
from storage.catalog import DeploymentStatus
from storage.catalog.records import OrderRecord
from tests.unit.serve.conftest import Api
from tests.unit.serve.fakes import FakeGateway, FakeJobs

PRICE = Decimal("100")
AAPL = "AAPL.NASDAQ"
SPEC = {"strategy": "sma_cross", "params": {"fast": 5, "slow": 20}, "instruments": [AAPL],
        "capital": "10000", "account": "DU1234567", "bar_size": "5m"}  # fmt: skip


@dataclass
class FakeTrading:
    """The order manager, runners and stop in memory; risk checks by the real RiskManager
    over the catalog. Market orders fill at once at PRICE; limit orders stay Submitted."""

    catalog: Any
    records: dict[str, OrderRecord] = field(default_factory=dict)
    fills: list[Fill] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    calls: list[tuple[Any, ...]] = field(default_factory=list)
    limit_reloads: int = 0
    _ids: Any = field(default_factory=lambda: itertools.count(1))

    def submit(self, order: Order) -> Submission:
        if order.order_ref in self.records:
            return Submission(record=self.records[order.order_ref], sent=False, duplicate=True,
                              message="order_ref already stored")  # fmt: skip
        n = next(self._ids)
        order = replace(order, order_ref=order.order_ref or f"om-{n}")
        decision = RiskManager(self.catalog.risk).check(
            order, RiskContext(now=utcnow(), last_prices={order.instrument: PRICE})
        )
        market = order.order_type == OrderType.MARKET
        status = (OrderStatus.REJECTED if not decision.accepted
                  else OrderStatus.FILLED if market else OrderStatus.SUBMITTED)  # fmt: skip
        if status == OrderStatus.FILLED:
            self.fill(order)
        if decision.accepted:
            self.sent.append(order.order_ref)
        record = self._record(order, status, n)
        return Submission(record=record, sent=decision.accepted, decision=decision,
                          message="sent" if decision.accepted else decision.message)  # fmt: skip

    def _record(self, order: Order, status: OrderStatus, n: int) -> OrderRecord:
        filled = status == OrderStatus.FILLED
        record = OrderRecord(
            id=n, order=order, status=status, filled_quantity=order.quantity if filled else 0,
            avg_fill_price=PRICE if filled else None, broker_order_id=n, perm_id=None,
            updated_at=utcnow(),
        )  # fmt: skip
        self.records[order.order_ref] = record
        return record

    def fill(self, order: Order) -> None:
        self.fills.append(Fill(
            exec_id=f"exec-{len(self.fills) + 1}", order_ref=order.order_ref,
            instrument=order.instrument, side=order.side, quantity=order.quantity, price=PRICE,
            commission=Decimal("1.5"), time=utcnow(),
        ))  # fmt: skip

    def cancel(self, order_ref: str) -> OrderRecord:
        record = self.order(order_ref)
        if record.status in TERMINAL:
            return record
        self.records[order_ref] = replace(record, status=OrderStatus.CANCELLED)
        return self.records[order_ref]

    def orders(self, *, open_only: bool = False, deployment_id: int | None = None,
               instrument: str | None = None) -> list[OrderRecord]:  # fmt: skip
        return [r for r in self.records.values()
                if (not open_only or r.status not in TERMINAL)
                and (deployment_id is None or r.order.deployment_id == deployment_id)
                and (instrument is None or r.order.instrument == instrument)]  # fmt: skip

    def order(self, order_ref: str) -> OrderRecord:
        if order_ref not in self.records:
            raise NotFound(f"no order {order_ref!r}")
        return self.records[order_ref]

    def executions(self, *, order_ref: str | None = None, since: Any = None) -> list[Fill]:
        return [f for f in self.fills if (order_ref is None or f.order_ref == order_ref)
                and (since is None or f.time >= since)]  # fmt: skip

    def positions(self, *, include_flat: bool = False) -> list[PositionState]:
        book = PositionBook.from_fills(self.fills)
        return book.positions(last_prices={AAPL: PRICE + 10}, include_flat=include_flat)

    def _lifecycle(self, name: str, deployment_id: int, status: DeploymentStatus,
                   **kwargs: Any) -> dict[str, Any]:  # fmt: skip
        self.calls.append((name, deployment_id, kwargs))
        self.catalog.deployments.set_status(deployment_id, status)
        return {"deployment_id": deployment_id, "running": status != DeploymentStatus.STOPPED,
                "paused": status == DeploymentStatus.PAUSED}  # fmt: skip

    def start(self, deployment_id: int, *, confirm_live: bool = False) -> dict[str, Any]:
        return self._lifecycle("start", deployment_id, DeploymentStatus.RUNNING,
                               confirm_live=confirm_live)  # fmt: skip

    def pause(self, deployment_id: int) -> dict[str, Any]:
        return self._lifecycle("pause", deployment_id, DeploymentStatus.PAUSED)

    def resume(self, deployment_id: int) -> dict[str, Any]:
        return self._lifecycle("resume", deployment_id, DeploymentStatus.RUNNING)

    def stop(self, deployment_id: int, *, flatten: bool = False) -> dict[str, Any]:
        return self._lifecycle("stop", deployment_id, DeploymentStatus.STOPPED, flatten=flatten)

    def emergency_flatten(self, *, reason: str) -> FlattenReport:
        cancelled = [self.cancel(r.order_ref) for r in self.orders(open_only=True)]
        sent = []
        for p in self.positions():
            side = Side.SELL if p.quantity > 0 else Side.BUY
            order = Order(instrument=p.instrument, side=side, quantity=abs(p.quantity),
                          order_ref=f"flatten-{p.instrument}")  # fmt: skip
            self.fill(order)
            sent.append(self._record(order, OrderStatus.FILLED, next(self._ids)))
        return FlattenReport(cancelled=tuple(cancelled), orders=tuple(sent))

    def emergency_stop(self, *, reason: str, by: str, flatten: bool) -> dict[str, Any]:
        running = [d.id for d in self.catalog.deployments.list(status=DeploymentStatus.RUNNING)]
        return stop_trading(risk=RiskManager(self.catalog.risk), orders=self, pause=self.pause,
                            running=running, reason=reason, by=by, flatten=flatten)  # fmt: skip

    def reset(self, *, by: str) -> dict[str, Any]:
        event = RiskManager(self.catalog.risk).reset(by=by)
        paused = [d.id for d in self.catalog.deployments.list(status=DeploymentStatus.PAUSED)]
        return {"reset": event.to_mapping(), "paused": paused}

    def limits_changed(self) -> None:
        self.limit_reloads += 1


@dataclass
class Desk:
    api: Api
    trading: FakeTrading


@pytest.fixture
def desk(catalog: Any, tmp_path: Path) -> Desk:
    settings = Settings.from_env({"SCIZOR_HOME": str(tmp_path)})
    trading = FakeTrading(catalog)
    context = ApiContext(
        settings, catalog=catalog, gateway=FakeGateway(), jobs=FakeJobs(), trading=trading,
        limits=ApiLimits(rate_per_second=1000, burst=1000),
    )  # fmt: skip
    tokens = {s: catalog.tokens.create(s, f"{s}-user")[1] for s in ("read", "trade", "admin")}
    client = TestClient(create_api(context, include_default_routes=True))
    api = Api(client=client, context=context, jobs=FakeJobs(), gateway=FakeGateway(),
              tokens=tokens)  # fmt: skip
    return Desk(api=api, trading=trading)


def deploy(desk: Desk, **changes: Any) -> dict[str, Any]:
    response = desk.api.post("/trading/deployments", "trade", json={**SPEC, **changes})
    assert response.status_code == 201, response.text
    return dict(response.json())


def order(desk: Desk, scope: str = "trade", **fields: Any) -> Any:
    body = {"instrument": AAPL, "side": "BUY", "quantity": "10", **fields}
    return desk.api.post("/orders", scope, json=body)


ROUTES = [
    ("POST", "/trading/deployments", SPEC), ("GET", "/trading/deployments", None),
    ("GET", "/trading/deployments/1", None), ("POST", "/trading/deployments/1/start", {}),
    ("POST", "/trading/deployments/1/pause", None),
    ("POST", "/trading/deployments/1/resume", None),
    ("POST", "/trading/deployments/1/stop", {"flatten": False}),
    ("GET", "/trading/performance", None),
    ("POST", "/trading/emergency-stop", {"reason": "test"}),
    ("POST", "/orders", {"instrument": AAPL, "side": "BUY", "quantity": "1"}),
    ("GET", "/orders", None), ("GET", "/orders/om-1", None), ("DELETE", "/orders/om-1", None),
    ("GET", "/executions", None), ("GET", "/positions", None), ("GET", "/account", None),
]  # fmt: skip


@pytest.mark.parametrize(("method", "path", "body"), ROUTES)
def test_every_trading_route_refuses_a_read_token_and_serves_a_trade_one(desk, method, path, body):
    refused = desk.api.request(method, path, "read", json=body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["required_scope"] == "trade"
    if path != "/trading/deployments":
        deploy(desk)
    if path.endswith(("/pause", "/resume")):
        desk.trading.start(1)
    if path.endswith("/resume"):
        desk.trading.pause(1)
    order(desk)
    allowed = desk.api.request(method, path, "trade", json=body)
    assert allowed.status_code in (200, 201), allowed.text


def test_the_reset_needs_admin_and_clears_the_switch_but_leaves_deployments_paused(desk):
    dep = deploy(desk)
    assert desk.api.post(f"/trading/deployments/{dep['id']}/start", "trade").status_code == 200
    stopped = desk.api.post("/trading/emergency-stop", "trade", json={"reason": "gap"})
    assert stopped.json()["paused"] == [dep["id"]]
    refused = desk.api.post("/trading/emergency-stop/reset", "trade")
    assert refused.status_code == 403 and refused.json()["required_scope"] == "admin"
    assert desk.api.get("/risk/state", "trade").json()["halted"]
    done = desk.api.post("/trading/emergency-stop/reset", "admin")
    assert done.status_code == 200, done.text
    assert done.json()["reset"]["by"] == "admin-user" and done.json()["paused"] == [dep["id"]]
    assert not desk.api.get("/risk/state", "trade").json()["halted"]
    assert desk.api.get(f"/trading/deployments/{dep['id']}", "trade").json()["status"] == "paused"
    again = desk.api.post("/trading/emergency-stop/reset", "admin")
    assert again.status_code == 409, again.text


def test_a_deployment_is_created_listed_and_steered_through_its_runner(desk):
    dep = deploy(desk)
    assert (dep["status"], dep["strategy"], dep["bar_size"]) == ("created", "sma_cross", "5m")
    assert (dep["params"]["fast"], dep["params"]["slow"]) == (5, 20)
    assert Decimal(dep["capital"]) == 10000
    other = deploy(desk, instruments=["MSFT.NASDAQ"])
    page = desk.api.get("/trading/deployments", "trade").json()
    assert page["total"] == 2 and [d["id"] for d in page["items"]] == [other["id"], dep["id"]]
    url = f"/trading/deployments/{dep['id']}"
    started = desk.api.post(f"{url}/start", "trade", json={})
    assert started.json()["deployment"]["status"] == "running", started.text
    assert started.json()["runner"]["running"] is True
    paused = desk.api.post(f"{url}/pause", "trade")
    assert paused.json()["deployment"]["status"] == "paused"
    assert desk.api.post(f"{url}/pause", "trade").status_code == 409, "only a running one pauses"
    assert desk.api.post(f"{url}/resume", "trade").json()["deployment"]["status"] == "running"
    stopped = desk.api.post(f"{url}/stop", "trade", json={"flatten": True})
    assert stopped.json()["deployment"]["status"] == "stopped"
    assert desk.trading.calls == [("start", dep["id"], {"confirm_live": False}),
                                  ("pause", dep["id"], {}), ("resume", dep["id"], {}),
                                  ("stop", dep["id"], {"flatten": True})]  # fmt: skip
    running = desk.api.get("/trading/deployments?status=stopped", "trade").json()
    assert [d["id"] for d in running["items"]] == [dep["id"]]
    action = "POST /trading/deployments/{deployment_id}/stop"
    audited = desk.api.context.catalog.audit.list(action=action)
    assert [(e.actor, e.status) for e in audited] == [("trade-user", 200)]


def test_a_live_deployment_starts_only_with_confirm_live(desk):
    dep = deploy(desk, mode="live", account="U7654321")
    url = f"/trading/deployments/{dep['id']}/start"
    refused = desk.api.post(url, "trade", json={})
    assert refused.status_code == 422 and refused.json()["field"] == "confirm_live"
    assert desk.trading.calls == [], "nothing reached the runner"
    started = desk.api.post(url, "trade", json={"confirm_live": True})
    assert started.status_code == 200, started.text
    assert desk.trading.calls == [("start", dep["id"], {"confirm_live": True})]


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"strategy": "sma_crosss"}, "strategy"),
        ({"params": {"fast": "quick"}}, "params.fast"),
        ({"capital": "-5"}, "capital"),
        ({"capital": None}, "capital"),
        ({"instruments": ["not an id!"]}, "instruments"),
        ({"instruments": []}, "instruments"),
        ({"bar_size": "2d"}, "bar_size"),
        ({"mode": "real"}, "mode"),
        ({"account": "U7654321"}, "account"),
        ({"extra": 1}, "extra"),
    ],
)
def test_a_bad_deployment_spec_is_a_422_naming_the_field_and_nothing_is_stored(
    desk, changes, field
):
    response = desk.api.post("/trading/deployments", "trade", json={**SPEC, **changes})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert desk.api.context.catalog.deployments.list() == []


def test_an_unknown_deployment_is_a_404_and_reaches_no_runner(desk):
    for path in ("", "/start", "/stop", "/pause", "/resume"):
        method = "GET" if not path else "POST"
        response = desk.api.request(method, f"/trading/deployments/99{path}", "trade")
        assert response.status_code == 404, (path, response.text)
    assert desk.trading.calls == []


def test_a_manual_order_fills_and_shows_in_orders_executions_positions_and_performance(desk):
    sent = order(desk, order_ref="my-1")
    assert sent.status_code == 201, sent.text
    body = sent.json()
    assert body["sent"] and body["order"]["status"] == "Filled" and body["decision"]["accepted"]
    assert sent.headers["Location"] == "/orders/my-1"
    again = order(desk, order_ref="my-1")
    assert again.status_code == 200 and again.json()["duplicate"] and not again.json()["sent"]
    assert desk.trading.sent == ["my-1"], "the same order_ref is never sent twice"
    order(desk, side="SELL", quantity="4")
    listed = desk.api.get(f"/orders?instrument={AAPL}&status=Filled", "trade").json()
    assert listed["total"] == 2 and listed["items"][-1]["order_ref"] == "my-1"
    assert desk.api.get("/orders/my-1", "trade").json()["filled_quantity"] == "10"
    fills = desk.api.get("/executions?order_ref=my-1", "trade").json()
    assert fills["total"] == 1 and fills["items"][0]["price"] == "100"
    assert desk.api.get("/executions?instrument=MSFT.NASDAQ", "trade").json()["total"] == 0
    [position] = desk.api.get("/positions", "trade").json()["items"]
    assert (position["quantity"], position["avg_cost"]) == ("6", "100")
    assert (position["unrealized_pnl"], position["commission"]) == ("60", "3.0")
    performance = desk.api.get("/trading/performance", "trade").json()
    assert performance["total"]["net_pnl"] == "57.0"
    [manual] = performance["deployments"]
    assert manual["deployment_id"] is None and manual["strategy"] == "manual"


def test_performance_splits_fills_by_the_deployment_whose_order_made_them(desk):
    dep = deploy(desk)
    desk.trading.submit(Order(instrument=AAPL, side=Side.BUY, quantity=Decimal(5),
                              order_ref="scz-1", deployment_id=dep["id"]))  # fmt: skip
    order(desk, quantity="2")
    report = desk.api.get("/trading/performance", "trade").json()
    by_id = {e["deployment_id"]: e for e in report["deployments"]}
    assert by_id[dep["id"]]["positions"][0]["quantity"] == "5"
    assert by_id[dep["id"]]["unrealized_pnl"] == "50"
    assert by_id[None]["positions"][0]["quantity"] == "2"
    assert report["total"]["positions"][0]["quantity"] == "7"


def test_a_risk_limit_makes_a_manual_order_a_422_with_its_breaches_never_sent(desk):
    put = desk.api.request(
        "PUT",
        "/risk/limits",
        "admin",
        json={"scope": "global", "limits": {"max_order_quantity": 5}},
    )
    assert put.status_code == 200 and desk.trading.limit_reloads == 1  # fmt: skip
    refused = order(desk, quantity="6", order_ref="big")
    assert refused.status_code == 422, refused.text
    body = refused.json()
    assert body["error"] == "RiskRejected" and "max_order_quantity" in body["detail"]
    assert [b["limit"] for b in body["decision"]["breaches"]] == ["max_order_quantity"]
    assert body["order"]["status"] == "Rejected" and not body["sent"]
    assert desk.trading.sent == []
    assert order(desk, quantity="5").status_code == 201


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"quantity": "-1"}, "quantity"),
        ({"quantity": "lots"}, "quantity"),
        ({"side": "HOLD"}, "side"),
        ({"instrument": "no such id!"}, "instrument"),
        ({"order_type": "LMT"}, "limit_price"),
        ({"order_type": "STP"}, "stop_price"),
        ({"order_ref": "has space"}, "order_ref"),
        ({"deployment_id": 3}, "deployment_id"),
    ],
)
def test_a_bad_order_is_a_422_naming_the_field_and_nothing_is_sent(desk, fields, field):
    response = order(desk, **fields)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert desk.trading.sent == [] and desk.trading.records == {}


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/executions?since=2026-01-01T00:00:00", "since"),
        ("/executions?since=yesterday", "since"),
        ("/orders?status=Done", "status"),
        ("/orders?deployment_id=0", "deployment_id"),
        ("/orders?instrument=bad id!", "instrument"),
        ("/orders?limit=0", "limit"),
        ("/trading/deployments?status=gone", "status"),
        ("/positions?flat=1", "flat"),
    ],
)
def test_bad_query_parameters_are_a_422_naming_them(desk, path, field):
    response = desk.api.get(path, "trade")
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field


def test_an_open_order_is_cancelled_and_an_unknown_one_is_a_404(desk):
    placed = order(desk, order_type="LMT", limit_price="50", order_ref="lmt-1")
    assert placed.json()["order"]["status"] == "Submitted"
    assert [o["order_ref"] for o in desk.api.get("/orders?open=true", "trade").json()["items"]] \
        == ["lmt-1"]  # fmt: skip
    cancelled = desk.api.delete("/orders/lmt-1", "trade")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "Cancelled"
    assert desk.api.get("/orders?open=true", "trade").json()["total"] == 0
    assert desk.api.delete("/orders/nope", "trade").status_code == 404
    assert desk.api.get("/orders/nope", "trade").status_code == 404


def test_the_emergency_stop_halts_pauses_cancels_and_flattens(desk):
    dep = deploy(desk)
    desk.api.post(f"/trading/deployments/{dep['id']}/start", "trade")
    order(desk, quantity="8")
    order(desk, order_type="LMT", limit_price="50", order_ref="far")
    bad = desk.api.post("/trading/emergency-stop", "trade", json={"flatten": True})
    assert bad.status_code == 422 and bad.json()["field"] == "reason"
    stopped = desk.api.post("/trading/emergency-stop", "trade",
                            json={"reason": "feed is wrong", "flatten": True})  # fmt: skip
    assert stopped.status_code == 200, stopped.text
    body = stopped.json()
    assert body["halted"]["kind"] == "emergency_stop" and body["halted"]["by"] == "trade-user"
    assert (body["paused"], body["cancelled"], body["failures"]) == ([dep["id"]], ["far"], [])
    assert body["flatten_orders"] == [f"flatten-{AAPL}"]
    assert desk.api.get("/positions", "trade").json()["items"] == []
    state = desk.api.get("/risk/state", "trade").json()
    assert state["halted"] and state["reason"] == "feed is wrong" and state["flatten"]
    refused = order(desk)
    assert refused.status_code == 422 and refused.json()["error"] == "RiskRejected"
    assert desk.api.get(f"/trading/deployments/{dep['id']}", "trade").json()["status"] == "paused"
    audited = desk.api.context.catalog.audit.list(action="POST /trading/emergency-stop")
    assert sorted((e.actor, e.status) for e in audited) == [("trade-user", 200),
                                                           ("trade-user", 422)]  # fmt: skip


def test_the_emergency_stop_without_flatten_cancels_open_orders_and_keeps_positions(desk):
    order(desk, quantity="3")
    order(desk, order_type="LMT", limit_price="50", order_ref="far")
    body = desk.api.post("/trading/emergency-stop", "trade", json={"reason": "r"}).json()
    assert (body["cancelled"], body["flatten_orders"]) == (["far"], [])
    assert desk.api.get("/positions", "trade").json()["items"][0]["quantity"] == "3"


def test_the_account_is_the_gateways_summary(desk):
    got = desk.api.get("/account", "trade")
    assert got.status_code == 200
    assert got.json()["accounts"]["DU1234567"]["TotalCashValue"] == "990000"


def test_without_trading_actors_the_trading_routes_are_a_503(catalog, tmp_path):
    context = ApiContext(Settings.from_env({"SCIZOR_HOME": str(tmp_path)}), catalog=catalog)
    _, token = catalog.tokens.create("admin", "ops")
    client = TestClient(create_api(context, include_default_routes=True))
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/positions", headers=headers).status_code == 503
    assert client.get("/account", headers=headers).status_code == 503
    stop = client.post("/trading/emergency-stop", headers=headers, json={"reason": "x"})
    assert stop.status_code == 503
