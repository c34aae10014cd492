"""Long work over real HTTP: the API submits Ray Jobs of the ``scizor`` CLI on the session's
cluster, the jobs collect from ibsim through the gateway actor into Parquet and record their
run in the catalog (SQLite and PostgreSQL), and the API follows job -> run -> bars.

Ray Jobs go through the cluster's job server, which the dashboard runs (the session cluster
starts it).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ibsim.testing import running_ibsim
from serve.limits import ApiLimits
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

FINISHED = {"SUCCEEDED", "FAILED", "STOPPED"}


@pytest.fixture(scope="module")
def job_server(ray_session: None) -> str:
    """The session cluster's job server (fails, naming the fix, when it has none)."""
    from serve.errors import ServiceUnavailable
    from serve.jobs import RayJobLauncher

    try:
        RayJobLauncher().active("none")  # connects, and checks the server is this cluster's
    except ServiceUnavailable as exc:
        pytest.fail(f"the session cluster has no job server of its own: {exc}", pytrace=False)
    return "ok"


@pytest.fixture(scope="module")
def ib(job_server: str) -> Iterator[Any]:
    with running_ibsim(pacing="strict", speed=600.0) as sim, gateway_on(sim.port, client_id=82):
        yield sim


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def catalog_db(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[str]:
    yield from backend_url(request, tmp_path_factory)


@pytest.fixture(scope="module")
def api(
    ib: Any, catalog_db: str, serve_api_port: int, tmp_path_factory: Any
) -> Iterator[dict[str, Any]]:
    catalog = Catalog(catalog_db)
    catalog.symbols.upsert_many(
        [SymbolRecord(symbol="AAPL", primary_exchange="NASDAQ", universe="nasdaq", valid=True),
         SymbolRecord(symbol="MSFT", primary_exchange="NASDAQ", universe="nasdaq"),
         SymbolRecord(symbol="ZZZZ", primary_exchange="NASDAQ", universe="pending")]
    )  # fmt: skip
    _, token = catalog.tokens.create("research", "jobs-tester")
    env = scizor_env(
        tmp_path_factory.mktemp("jobs-home"), catalog_db,
        SCIZOR_IB_HOST="127.0.0.1", SCIZOR_IB_PORT=str(ib.port), SCIZOR_IB_CLIENT_ID="82",
    )  # fmt: skip
    with (
        serving(env, limits=ApiLimits(rate_per_second=50, burst=100), port=serve_api_port) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=30) as c,
    ):
        yield {"http": c, "catalog": catalog}
    catalog.dispose()


def finished(http: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job's view once Ray says it ended (collection jobs take a few seconds)."""
    return eventually(
        lambda: (view := http.get(f"/jobs/{job_id}").json())["status"] in FINISHED and view,
        timeout=240, interval=0.5,
    )  # fmt: skip


def test_collecting_one_instrument_is_a_ray_job_whose_run_and_bars_the_api_shows(api):
    http = api["http"]
    accepted = http.post("/collect/AAPL", json={"years": 1})
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["job_id"]
    assert accepted.headers["location"] == f"/jobs/{job_id}" and job_id.startswith("collect-")
    view = finished(http, job_id)
    assert view["status"] == "SUCCEEDED", view
    assert "collect history AAPL.NASDAQ --bar-size 1d --years 1" in view["command"]
    assert view["requested_by"] == "jobs-tester" and view["run"] is not None
    run = http.get(view["run"]["url"]).json()
    assert (run["kind"], run["status"], run["progress"]) == ("history", "done", 1.0)
    (item,) = run["items"]
    assert item["instrument"] == "AAPL.NASDAQ" and item["bars_written"] > 200
    bars = http.get("/bars/AAPL.NASDAQ", params={"limit": 10_000}).json()
    assert bars["count"] == item["bars_written"]
    submitted = eventually(
        lambda: metric_value(scrape_metrics(), "ray_scizor_api_jobs_submitted_total",
                             kind="collect-history"),
        timeout=90, interval=2,
    )  # fmt: skip
    assert submitted >= 1


def test_the_job_is_rays_with_the_kind_and_who_asked_in_its_metadata(api):
    import ray
    from ray.job_submission import JobSubmissionClient

    job_id = api["http"].post("/symbols/validate", json={"limit": 5}).json()["job_id"]
    view = finished(api["http"], job_id)
    assert view["status"] == "SUCCEEDED" and view["run"] is None, view
    info = JobSubmissionClient(ray.get_runtime_context().gcs_address).get_job_info(job_id)
    assert info.metadata["scizor_kind"] == "symbols-validate"
    assert info.metadata["requested_by"] == "jobs-tester"
    assert api["catalog"].symbols.get("MSFT.NASDAQ").valid is True, "IB (ibsim) was asked"


def test_a_failing_job_is_reported_failed_with_its_message(api):
    unknown = api["http"].post("/collect", json={"universe": ["no-such-universe"]})
    assert unknown.status_code == 422 and unknown.json()["field"] == "universe"  # no job
    # A universe whose only listing IB has not confirmed: the job finds nothing to collect.
    accepted = api["http"].post("/collect", json={"universe": ["pending"]})
    assert accepted.status_code == 202
    view = finished(api["http"], accepted.json()["job_id"])
    assert view["status"] == "FAILED" and view["run"] is None
    assert view["message"]


def test_a_collection_of_a_kind_already_running_is_409_and_starts_no_job(api):
    runs = api["catalog"].collection_runs
    run = runs.create("daily", [("AAPL.NASDAQ", "1d", None, None)], owner="elsewhere pid 1")
    try:
        refused = api["http"].post("/collect")
        assert refused.status_code == 409
        assert f"run {run.id}" in refused.json()["detail"]
    finally:
        runs.finish(run.id)
