"""The HTTP app without Ray: health, the error mapping, OpenAPI's security and scopes."""

from __future__ import annotations

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel

from core import errors as E
from core.settings import Settings
from serve.app import create_api
from serve.auth import needs
from serve.context import ApiContext
from serve.errors import Forbidden, PayloadTooLarge, RateLimited, Unauthorized, status_for
from tests.unit.serve.conftest import make_api


def make_client(context: ApiContext) -> TestClient:
    return TestClient(create_api(context))


def test_health_reports_ok_when_every_check_passes():
    context = ApiContext(Settings.from_env({}))
    context.add_health_check("db", lambda: {"ok": True})
    body = make_client(context).get("/health").json()
    assert body["status"] == "ok"
    assert body["checks"] == {"db": {"ok": True}}


def test_health_is_degraded_not_500_when_a_check_raises():
    context = ApiContext(Settings.from_env({}))

    def broken() -> dict[str, object]:
        raise RuntimeError("database unreachable")

    context.add_health_check("db", broken)
    response = make_client(context).get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["db"] == {"ok": False, "error": "database unreachable"}


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (E.ValidationError("bad", field="x"), 422),
        (E.DataError("bad bar"), 422),
        (E.NotFound("nope"), 404),
        (E.Conflict("dup"), 409),
        (E.PacingViolation(), 429),
        (E.NotConnected(), 503),
        (E.BrokerError(200, "no security"), 502),
        (E.RiskRejected("max position"), 422),
        (E.StorageError("down"), 503),
        (E.ConfigError("bad"), 400),
        (Unauthorized("no token"), 401),
        (Forbidden("scope", required_scope="trade", token_scope="read"), 403),
        (PayloadTooLarge("big"), 413),
        (RateLimited("slow down", retry_after=0.2), 429),
    ],
)
def test_every_scizor_error_maps_to_its_status(error, status):
    assert status_for(error) == status


class Item(BaseModel):
    symbol: str
    quantity: int


def test_errors_raised_in_routes_become_json_with_the_field(catalog, tmp_path):
    router = APIRouter()

    @router.get("/missing")
    def missing() -> None:
        raise E.NotFound("symbol 'ZZZ' is not in the catalog")

    @router.post("/items")
    def items(item: Item) -> Item:
        if item.quantity <= 0:
            raise E.ValidationError("quantity must be positive; send 1 or more", field="quantity")
        return item

    api = make_api(catalog, tmp_path)
    api.context.add_router(router)
    api.client = TestClient(create_api(api.context))

    response = api.get("/missing")
    assert response.status_code == 404
    assert response.json() == {"error": "NotFound", "detail": "symbol 'ZZZ' is not in the catalog"}

    response = api.post("/items", json={"symbol": "AAPL", "quantity": 0})
    assert response.status_code == 422
    assert response.json()["field"] == "quantity"

    response = api.post("/items", json={"symbol": "AAPL", "quantity": "many"})
    assert response.status_code == 422
    assert response.json()["field"] == "quantity"
    assert "integer" in response.json()["detail"]

    json_type = {"Content-Type": "application/json"}
    response = api.post("/items", content=b"{not json", headers=json_type)
    assert response.status_code == 422 and response.json()["error"] == "ValidationError"
    response = api.post("/items", content=b"\xff\xfe", headers=json_type)
    assert response.status_code == 422 and response.json()["field"] == "body"


def test_unknown_routes_and_methods_are_json_errors(api):
    missing = api.get("/nowhere")
    assert missing.status_code == 404 and "/docs" in missing.json()["detail"]
    wrong = api.request("PUT", "/symbols")
    assert wrong.status_code == 405 and wrong.json()["error"] == "MethodNotAllowed"


def test_a_route_may_declare_a_higher_scope_than_its_method_needs(catalog, tmp_path):
    router = APIRouter()

    @router.get("/trading/positions", openapi_extra=needs("trade"))
    def positions() -> list[str]:
        return []

    api = make_api(catalog, tmp_path)
    api.context.add_router(router)
    api.client = TestClient(create_api(api.context))
    assert api.get("/trading/positions", scope="research").status_code == 403
    assert api.get("/trading/positions", scope="trade").status_code == 200


def test_openapi_declares_bearer_auth_on_every_route_but_health_and_each_scope(api):
    spec = api.client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            if path in ("/health", "/ui"):  # the console page holds no data; its calls need tokens
                assert "security" not in operation
                continue
            assert operation["security"] == [{"bearerAuth": []}], (method, path)
            expected = "read" if method == "get" else "research"
            if path.startswith("/risk/"):  # the risk manager's routes declare stricter ones
                expected = "admin" if method == "put" else "trade"
            trading = ("/trading/", "/orders", "/positions", "/account", "/executions")
            if path.startswith(trading):  # trading routes need trade; the halt's reset admin
                expected = "admin" if path.endswith("/reset") else "trade"
            assert operation["x-scizor-scope"] == expected, (method, path)
            assert {"401", "403", "422", "429"} <= set(operation["responses"]), (method, path)
    assert spec["paths"]["/collect"]["post"]["responses"]["202"]
