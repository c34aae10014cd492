"""The API over real HTTP on Ray Serve (the session's local Ray cluster), on SQLite and
PostgreSQL catalogs: health, auth failures, symbols through the gateway actor and ibsim, bars
from Parquet, collections, the library, request ids, audit rows, limits and Ray metrics."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pandas as pd
import pytest

from core.types import utcnow
from ibsim.testing import running_ibsim
from serve.limits import ApiLimits
from storage.barquery import read_arrow_stream
from storage.bars import BarStore
from storage.catalog import Catalog
from storage.catalog.records import SymbolRecord
from tests.integration.test_api_support import (
    backend_url,
    eventually,
    gateway_on,
    metric_value,
    scizor_env,
    scrape_metrics,
    serving,
)

pytestmark = pytest.mark.integration

LIMITS = ApiLimits(rate_per_second=2, burst=30, token_cache_seconds=1, last_use_flush_seconds=1)


@pytest.fixture(scope="module")
def gateway(ray_session: None) -> Iterator[Any]:
    with running_ibsim(pacing="strict", speed=600.0) as sim, gateway_on(sim.port, client_id=81):
        yield sim


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def catalog_db(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[str]:
    yield from backend_url(request, tmp_path_factory)


@pytest.fixture(scope="module")
def deployed(
    gateway: Any, catalog_db: str, serve_api_port: int, tmp_path_factory: Any
) -> Iterator[dict[str, Any]]:
    home = tmp_path_factory.mktemp("api-home")
    catalog = Catalog(catalog_db)
    catalog.symbols.upsert_many(
        [
            SymbolRecord(symbol="AAPL", primary_exchange="NASDAQ", universe="nasdaq", valid=True,
                         name="Apple Inc"),
            SymbolRecord(symbol="VEA", primary_exchange="ARCA", universe="etfs", valid=True),
        ]
    )  # fmt: skip
    index = pd.date_range("2024-01-02", periods=252, freq="B", tz="UTC", name="ts")
    close = 100.0 + pd.Series(range(252), dtype=float).to_numpy()
    bars = pd.DataFrame({"open": close, "high": close + 1, "low": close - 1, "close": close,
                         "volume": 1e6}, index=index)  # fmt: skip
    BarStore(home / "bars").write("AAPL.NASDAQ", "1d", bars)
    with serving(scizor_env(home, catalog_db), limits=LIMITS, port=serve_api_port) as url:
        yield {"url": url, "catalog": catalog, "home": home}
    catalog.dispose()


@pytest.fixture
def http(deployed: dict[str, Any]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=deployed["url"], timeout=30) as client:
        yield client


def token(deployed: dict[str, Any], scope: str = "admin", **kwargs: Any) -> dict[str, str]:
    """Authorization headers of a fresh token (its own rate bucket)."""
    _, plaintext = deployed["catalog"].tokens.create(scope, f"{scope}-tester", **kwargs)
    return {"Authorization": f"Bearer {plaintext}"}


def test_health_checks_every_part_for_real(http):
    body = http.get("/health").json()
    checks = body["checks"]
    assert body["status"] == "ok", checks
    assert checks["catalog"]["revision"] == checks["catalog"]["head"]
    assert checks["bar_store"]["writable"] and checks["bar_store"]["readable"]
    assert checks["gateway"]["connected"] is True
    assert checks["ray"]["cpus"] >= 2 and checks["ray"]["alive_nodes"] >= 1


def test_auth_failures_are_401_and_403_with_json_naming_the_scope(http, deployed):
    assert http.get("/symbols").status_code == 401
    assert http.get("/symbols", headers={"Authorization": "Bearer nope"}).status_code == 401
    refused = http.post(
        "/symbols", json={"instrument": "MSFT.NASDAQ"}, headers=token(deployed, "read")
    )
    assert refused.status_code == 403
    assert refused.json()["required_scope"] == "research"
    assert http.get("/docs").status_code == 200 and http.get("/openapi.json").status_code == 200


def test_a_revoked_token_is_refused_within_the_cache_time(http, deployed):
    record, plaintext = deployed["catalog"].tokens.create("read", "soon-revoked")
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert http.get("/strategies", headers=headers).status_code == 200
    deployed["catalog"].tokens.revoke(record.id)
    eventually(lambda: http.get("/strategies", headers=headers).status_code == 401, timeout=10)


def test_an_expired_token_is_refused_and_last_use_is_recorded_in_batches(http, deployed):
    expires = utcnow() + timedelta(seconds=3)
    record, plaintext = deployed["catalog"].tokens.create("read", "short", expires_at=expires)
    headers = {"Authorization": f"Bearer {plaintext}"}
    assert http.get("/indicators", headers=headers).status_code == 200
    used = eventually(lambda: _token(deployed, record.id).last_used_at, timeout=20)
    assert used <= utcnow()
    refused = eventually(lambda: _refused(http, headers), timeout=20)
    assert "expired" in refused["detail"]


def _token(deployed: dict[str, Any], token_id: int) -> Any:
    (record,) = [r for r in deployed["catalog"].tokens.list() if r.id == token_id]
    return record


def _refused(http: httpx.Client, headers: dict[str, str]) -> dict[str, Any] | None:
    response = http.get("/indicators", headers=headers)
    return response.json() if response.status_code == 401 else None


def test_symbols_add_through_the_gateway_list_show_and_delete(http, deployed):
    headers = token(deployed, "research")
    added = http.post("/symbols", json={"instrument": "BHP.ASX"}, headers=headers)
    assert added.status_code == 201, added.text
    assert (added.json()["con_id"], added.json()["name"]) == (541215007, "BHP Group Ltd")
    unknown = http.post("/symbols", json={"instrument": "NOPE.ASX"}, headers=headers)
    assert unknown.status_code == 422 and unknown.json()["field"] == "instrument"
    listed = http.get("/symbols", params={"universe": "custom"}, headers=headers).json()
    assert [s["instrument"] for s in listed["items"]] == ["BHP.ASX"]
    assert http.get("/symbols/BHP", headers=headers).json()["currency"] == "AUD"
    assert http.delete("/symbols/BHP.ASX", headers=headers).status_code == 200
    assert http.get("/symbols/BHP.ASX", headers=headers).status_code == 404
    malformed = http.get("/symbols/BHP..ASX", headers=headers)
    assert malformed.status_code == 422 and malformed.json()["field"] == "instrument"


def test_bars_as_json_pages_csv_and_arrow(http, deployed):
    headers = token(deployed, "read")
    page = http.get("/bars/AAPL", params={"limit": 200}, headers=headers).json()
    rest = http.get("/bars/AAPL", params={"cursor": page["next_cursor"]}, headers=headers).json()
    assert page["count"] + rest["count"] == 252 and rest["next_cursor"] is None
    csv = http.get("/bars/AAPL.NASDAQ", headers={**headers, "Accept": "text/csv"})
    assert len(pd.read_csv(io.StringIO(csv.text))) == 252
    arrow = http.get("/bars/AAPL.NASDAQ", params={"format": "arrow"}, headers=headers)
    assert arrow.headers["content-type"] == "application/vnd.apache.arrow.stream"
    assert read_arrow_stream(arrow.content)["close"].iloc[-1] == 351.0


def test_never_collected_bars_are_404_with_the_collect_command(http, deployed):
    response = http.get("/bars/VEA.ARCA", params={"bar_size": "5m"}, headers=token(deployed))
    assert response.status_code == 404
    assert "scizor collect history VEA.ARCA --bar-size 5m" in response.json()["detail"]


def test_collections_and_the_library_over_http(http, deployed):
    headers = token(deployed, "read")
    runs = deployed["catalog"].collection_runs
    run = runs.create("history", [("AAPL.NASDAQ", "1d", None, None)], owner="test")
    runs.finish_item(runs.items(run.id)[0].id, bars_written=252)
    runs.finish(run.id)
    assert run.id in [r["id"] for r in http.get("/collections", headers=headers).json()["items"]]
    detail = http.get(f"/collections/{run.id}", headers=headers).json()
    assert (detail["status"], detail["progress"], detail["items"][0]["status"]) == (
        "done", 1.0, "done")  # fmt: skip
    names = [s["name"] for s in http.get("/strategies", headers=headers).json()]
    assert "sma_cross" in names
    assert "rsi" in [i["name"] for i in http.get("/indicators", headers=headers).json()]


def test_request_ids_are_echoed_and_mutations_audited_even_when_they_fail(http, deployed):
    headers = {**token(deployed, "research"), "X-Request-ID": f"it-{deployed['url'][-5:]}-1"}
    response = http.post("/collect/historical/NOPE.NASDAQ", json={"bar_size": "1d",
                         "password": "hunter2"}, headers=headers)  # fmt: skip
    assert response.status_code == 422
    assert response.headers.get_list("x-request-id") == [headers["X-Request-ID"]]
    made = http.get("/health").headers.get_list("x-request-id")
    assert len(made) == 1 and len(made[0]) >= 32, "one id, made by the proxy when none came"
    audit = deployed["catalog"].audit
    (entry,) = eventually(lambda: audit.list(request_id=headers["X-Request-ID"]))
    assert (entry.actor, entry.action, entry.status) == (
        "research-tester", "POST /collect/historical/{instrument}", 422)  # fmt: skip
    assert entry.detail["body"] == {"bar_size": "1d", "password": "***"}


def test_bodies_over_one_mib_are_413_and_a_flood_is_429_with_retry_after(http, deployed):
    headers = token(deployed, "research")
    big = http.post("/symbols", content=b"x" * (1024 * 1024 + 1),
                    headers={**headers, "Content-Type": "application/json"})  # fmt: skip
    assert big.status_code == 413 and big.json()["error"] == "PayloadTooLarge"
    flood = token(deployed, "read")
    answers = [http.get("/strategies", headers=flood) for _ in range(60)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, "burst 30 at 2/s cannot serve 60 quick requests"
    assert int(limited[0].headers["retry-after"]) >= 1


def test_request_metrics_reach_rays_prometheus_endpoint(http, deployed):
    headers = token(deployed, "read")
    for _ in range(3):
        assert http.get("/symbols", headers=headers).status_code == 200

    def exported() -> tuple[float, float] | None:
        text = scrape_metrics()
        count = metric_value(text, "ray_scizor_api_requests_total", route="/symbols",
                             method="GET", status="200")  # fmt: skip
        latency = metric_value(text, "ray_scizor_api_request_seconds_count", route="/symbols")
        return (count, latency) if (count or 0) >= 3 and (latency or 0) >= 3 else None

    count, latency = eventually(exported, timeout=90, interval=2)
    assert count >= 3 and latency >= 3


def test_the_platform_hooks_export_backtest_bar_pacing_and_trial_metrics(deployed):
    import ray

    @ray.remote(num_cpus=0)
    class Driver:  # stands in for a collection or backtest driver; alive until scraped
        def record(self) -> None:
            from serve.metrics import PlatformMetrics

            hooks = PlatformMetrics()
            hooks.backtest_started()
            hooks.backtest_completed()
            hooks.backtest_failed()
            hooks.bars_written(252, bar_size="1d")
            hooks.pacing_wait(0.25)
            hooks.trials_completed(40, study="hooks-study", per_second=12.5)

    driver = Driver.remote()  # type: ignore[attr-defined]
    ray.get(driver.record.remote(), timeout=60)

    def exported() -> dict[str, float | None] | None:
        text = scrape_metrics()
        found = {
            outcome: metric_value(text, "ray_scizor_backtests_total", outcome=outcome)
            for outcome in ("started", "completed", "failed")
        }
        found["bars"] = metric_value(text, "ray_scizor_bars_written_total", bar_size="1d")
        found["wait"] = metric_value(text, "ray_scizor_collection_pacing_wait_seconds_count")
        found["trials"] = metric_value(text, "ray_scizor_optimization_trials_total",
                                       study="hooks-study")  # fmt: skip
        found["rate"] = metric_value(text, "ray_scizor_optimization_trials_per_second",
                                     study="hooks-study")  # fmt: skip
        return found if all(v for v in found.values()) else None

    try:
        found = eventually(exported, timeout=90, interval=2)
    finally:
        ray.kill(driver)
    assert found["bars"] >= 252 and found["started"] >= 1 and found["wait"] >= 1
    assert found["trials"] >= 40 and found["rate"] == 12.5


def test_each_request_leaves_one_json_line_in_the_replica_log(http, deployed):
    import json
    import uuid
    from pathlib import Path

    import ray

    request_id = f"log-{uuid.uuid4().hex[:12]}"
    headers = {**token(deployed, "read"), "X-Request-ID": request_id}
    assert http.get("/symbols/AAPL.NASDAQ", headers=headers).status_code == 200
    context = ray.get_runtime_context()
    logs = Path(context.get_temp_dir()) / context.get_session_name() / "logs"

    def line() -> dict[str, Any] | None:
        for path in logs.glob("worker-*.err"):
            for text in path.read_text(errors="replace").splitlines():
                if request_id in text and text.startswith("{"):
                    return dict(json.loads(text))
        return None

    found = eventually(line, timeout=30, interval=0.5)
    assert (found["route"], found["status"], found["token"]) == (
        "/symbols/{instrument}", 200, "read-tester")  # fmt: skip
    assert found["method"] == "GET" and found["duration_ms"] > 0
