"""The risk routes over the real catalog: scopes, limits in and out, 422 naming the field,
events paged, a dry-run check writing nothing, the trading state (no Ray)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from actors.risk_manager import RiskManager

BOOK = {
    "global": {"max_order_notional": "10000", "max_order_quantity": 500},
    "deployments": {"7": {"max_position": "50"}},
}
ORDER = {"instrument": "BHP.ASX", "side": "BUY", "quantity": "300"}
PRICED = {"last_prices": {"BHP.ASX": "40"}, "now": "2025-04-24T02:00:00Z"}


def put(api, body, scope="admin"):
    return api.request("PUT", "/risk/limits", scope, json=body)


@pytest.mark.parametrize(
    ("method", "path", "needed"),
    [
        ("GET", "/risk/limits", "trade"),
        ("PUT", "/risk/limits", "admin"),
        ("GET", "/risk/events", "trade"),
        ("POST", "/risk/check", "trade"),
        ("GET", "/risk/state", "trade"),
    ],
)
def test_each_risk_route_needs_its_scope(api, method, path, needed):
    body = {"order": ORDER} if path == "/risk/check" else {"global": {}}
    kwargs = {"json": body} if method in ("PUT", "POST") else {}
    below = {"trade": "research", "admin": "trade"}[needed]
    refused = api.request(method, path, below, **kwargs)
    assert refused.status_code == 403, refused.text
    assert refused.json()["required_scope"] == needed
    assert api.request(method, path, needed, **kwargs).status_code == 200
    assert api.request(method, "/risk/state" if method == "GET" else path, "read",
                       **kwargs).status_code == 403  # fmt: skip


def test_limits_put_are_read_back_and_enforced_by_a_new_manager(api):
    response = put(api, BOOK)
    assert response.status_code == 200, response.text
    assert response.json()["global"]["max_order_notional"] == "10000"
    got = api.get("/risk/limits", "trade").json()
    assert got["deployments"]["7"]["max_position"] == "50"
    assert got["global"]["max_position"] is None
    one = put(api, {"scope": "deployment:7", "limits": {"max_position": "20"}})
    assert one.json()["deployments"]["7"]["max_position"] == "20"
    assert one.json()["global"]["max_order_quantity"] == "500", "other scopes untouched"
    fresh = RiskManager(api.context.catalog.risk)
    assert fresh.limits().effective(7).max_position == 20
    (event, _) = api.get("/risk/events?kind=limits_changed", "trade").json()["items"]
    assert event["detail"]["by"] == "admin-user"
    assert event["detail"]["after"]["deployment:7"]["max_position"] == "20"
    audited = api.context.catalog.audit.list(action="PUT /risk/limits")
    assert [(e.actor, e.status) for e in audited] == [("admin-user", 200)] * 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"global": {"max_order_notional": "-1"}}, "limits.global.max_order_notional"),
        ({"scope": "global", "limits": {"max_order_notional": "lots"}},
         "limits.max_order_notional"),
        ({"scope": "global", "limits": {"max_ordr_quantity": 1}}, "limits.max_ordr_quantity"),
        ({"deployments": {"x": {}}}, "limits.deployments.x"),
        ({"scope": "deployment:0", "limits": {}}, "scope"),
        ({"globals": {}}, "limits.globals"),
    ],
)  # fmt: skip
def test_bad_limits_are_a_422_naming_the_field_and_nothing_is_written(api, body, field):
    put(api, {"global": {"max_position": "5"}})
    response = put(api, body)
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field
    assert api.get("/risk/limits", "trade").json()["global"]["max_position"] == "5"
    assert len(api.get("/risk/events", "trade").json()["items"]) == 1


def test_check_answers_every_breach_and_records_nothing(api):
    put(api, BOOK)
    response = api.post("/risk/check", "trade", json={"order": ORDER, "context": PRICED})
    assert response.status_code == 200, response.text
    decision = response.json()
    assert decision["accepted"] is False
    assert [b["limit"] for b in decision["breaches"]] == ["max_order_notional"]
    assert decision["breaches"][0]["observed"] == "12000"
    small = {**ORDER, "quantity": "250"}
    ok = api.post("/risk/check", "trade", json={"order": small, "context": PRICED}).json()
    assert ok == {"accepted": True, "message": "accepted", "breaches": []}
    assert api.get("/risk/events?kind=rejected", "trade").json()["total"] == 0


def test_check_refuses_bad_orders_naming_the_field(api):
    bad = api.post("/risk/check", "trade", json={"order": {**ORDER, "quantity": "0"}})
    assert bad.status_code == 422 and bad.json()["field"] == "order.quantity"
    naive = {"order": ORDER, "context": {"now": "2025-04-24T02:00:00"}}
    assert api.post("/risk/check", "trade", json=naive).status_code == 422


def test_events_filter_by_kind_and_since_and_page(api):
    repo = api.context.catalog.risk
    t0 = datetime(2026, 1, 5, tzinfo=UTC)
    for i in range(5):
        repo.add_event("rejected", order_ref=f"o-{i}", at=t0 + timedelta(minutes=i))
    repo.add_event("halted", at=t0 + timedelta(minutes=9))
    page = api.get("/risk/events?kind=rejected&limit=2&offset=1", "trade").json()
    assert (page["total"], [e["order_ref"] for e in page["items"]]) == (5, ["o-3", "o-2"])
    since = api.get("/risk/events", "trade", params={"since": "2026-01-05T00:03:00Z"}).json()
    assert [e["kind"] for e in since["items"]] == ["halted", "rejected", "rejected"]
    assert api.get("/risk/events?kind=nope", "trade").json()["field"] == "kind"


def test_state_shows_a_halt_and_its_reason_until_reset(api):
    assert api.get("/risk/state", "trade").json()["state"] == "ACTIVE"
    RiskManager(api.context.catalog.risk).emergency_stop("broker outage", by="ops")
    state = api.get("/risk/state", "trade").json()
    assert (state["state"], state["halted"], state["reason"], state["halted_by"]) == (
        "HALTED", True, "broker outage", "ops")  # fmt: skip
    decision = api.post("/risk/check", "trade", json={"order": ORDER}).json()
    assert decision["breaches"][0]["limit"] == "halted"
