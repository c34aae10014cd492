"""The HTTP app without Ray: routes, health and the error mapping."""

from __future__ import annotations

import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import BaseModel

from core import errors as E
from core.settings import Settings
from serve.app import create_api
from serve.context import ApiContext
from serve.errors import status_for


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
    ],
)
def test_every_scizor_error_maps_to_its_status(error, status):
    assert status_for(error) == status


class Item(BaseModel):
    symbol: str
    quantity: int


def test_errors_raised_in_routes_become_json_with_the_field():
    router = APIRouter()

    @router.get("/missing")
    def missing() -> None:
        raise E.NotFound("symbol 'ZZZ' is not in the catalog")

    @router.post("/items")
    def items(item: Item) -> Item:
        if item.quantity <= 0:
            raise E.ValidationError("quantity must be positive; send 1 or more", field="quantity")
        return item

    context = ApiContext(Settings.from_env({}))
    context.add_router(router)
    client = make_client(context)

    response = client.get("/missing")
    assert response.status_code == 404
    assert response.json() == {"error": "NotFound", "detail": "symbol 'ZZZ' is not in the catalog"}

    response = client.post("/items", json={"symbol": "AAPL", "quantity": 0})
    assert response.status_code == 422
    assert response.json()["field"] == "quantity"

    response = client.post("/items", json={"symbol": "AAPL", "quantity": "many"})
    assert response.status_code == 422
    assert response.json()["field"] == "quantity"
    assert "integer" in response.json()["detail"]
