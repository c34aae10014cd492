"""Fixtures of the serve unit tests: the real app over a real catalog (SQLite and PostgreSQL,
via the shared ``catalog`` fixture), a Parquet bar store on tmp_path and fake services.
No Ray."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.settings import Settings
from serve.app import create_api
from serve.context import ApiContext
from serve.limits import ApiLimits
from storage.catalog.records import SymbolRecord
from tests.unit.serve.fakes import FakeGateway, FakeJobs


@dataclass
class Api:
    """A TestClient over the app, its context and fakes, and a token per scope."""

    client: TestClient
    context: ApiContext
    jobs: FakeJobs
    gateway: FakeGateway
    tokens: dict[str, str]

    def headers(self, scope: str = "admin") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[scope]}"}

    def request(self, method: str, path: str, scope: str = "admin", **kwargs: Any) -> Any:
        headers = {**self.headers(scope), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, scope: str = "admin", **kwargs: Any) -> Any:
        return self.request("GET", path, scope, **kwargs)

    def post(self, path: str, scope: str = "admin", **kwargs: Any) -> Any:
        return self.request("POST", path, scope, **kwargs)

    def delete(self, path: str, scope: str = "admin", **kwargs: Any) -> Any:
        return self.request("DELETE", path, scope, **kwargs)


def make_api(catalog: Any, tmp_path: Path, *, limits: ApiLimits | None = None) -> Api:
    settings = Settings.from_env(
        {"SCIZOR_HOME": str(tmp_path), "SCIZOR_BAR_STORE": str(tmp_path / "bars")}
    )
    jobs, gateway = FakeJobs(), FakeGateway(known={"VEA.ASX": 4242})
    context = ApiContext(
        settings, env={"SCIZOR_HOME": str(tmp_path)}, catalog=catalog, gateway=gateway,
        jobs=jobs, limits=limits or ApiLimits(rate_per_second=1000, burst=1000),
    )  # fmt: skip
    tokens = {
        scope: catalog.tokens.create(scope, f"{scope}-user")[1]
        for scope in ("read", "research", "trade", "admin")
    }
    client = TestClient(create_api(context, include_default_routes=True))
    return Api(client=client, context=context, jobs=jobs, gateway=gateway, tokens=tokens)


@pytest.fixture
def api(catalog: Any, tmp_path: Path) -> Iterator[Api]:
    """The app over a fresh catalog (both backends) with tokens of every scope."""
    yield make_api(catalog, tmp_path)


def listing(symbol: str, venue: str, *, universe: str = "test", valid: bool | None = True,
            currency: str = "USD", name: str = "") -> SymbolRecord:  # fmt: skip
    """A catalog listing."""
    return SymbolRecord(
        symbol=symbol, exchange="SMART", primary_exchange=venue, currency=currency,
        universe=universe, valid=valid, name=name or f"{symbol} on {venue}",
    )  # fmt: skip
