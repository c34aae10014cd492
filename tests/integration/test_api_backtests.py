"""Backtests over real HTTP on Ray Serve: ``POST /backtests`` queues a job and submits its
driver (``scizor backtest --run ID``) as a Ray Job on the session cluster, which fans out over
ibsim's seeded daily bars of a few dozen listings in a Parquet store; the API follows its
progress (server-sent events) to the end and serves results, trades, equity (JSON and Arrow)
and the report; bad specs, missing tokens and scopes are refused; DELETE cancels a running
job and its Ray Job ends. SQLite catalog."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest

from ibsim.contracts import default_world
from ibsim.market import Market
from storage.bars import BarStore
from storage.catalog import Catalog
from tests.integration.test_api_support import eventually, scizor_env, serving
from tests.integration.test_backtest_support import END, START, listings

pytestmark = pytest.mark.integration

COUNT = 36
SMA = {"strategy": "sma_cross", "params": {"fast": 10, "slow": 50}}
ARROW = "application/vnd.apache.arrow.stream"
RAY_FINISHED = {"SUCCEEDED", "FAILED", "STOPPED"}


@pytest.fixture(scope="module")
def job_server(ray_session: None) -> None:
    import ray
    from ray.job_submission import JobSubmissionClient

    from serve.errors import ServiceUnavailable
    from serve.jobs import RayJobLauncher

    try:
        RayJobLauncher().active("none")
    except ServiceUnavailable as exc:
        pytest.fail(f"the session cluster has no job server of its own: {exc}", pytrace=False)
    # A fresh cluster's job agent comes up a little after its dashboard: "No available agent
    # to submit job" until then. Wait for one trivial job, so the API's first one is taken.
    client = JobSubmissionClient(ray.get_runtime_context().gcs_address)

    def warm() -> bool:
        try:
            job = client.submit_job(entrypoint="python -c pass")
        except RuntimeError:
            return False
        eventually(lambda: str(client.get_job_status(job).value) in RAY_FINISHED, timeout=120)
        return True

    eventually(warm, timeout=120, interval=1.0)


def write_bars(root: Path, chosen: list[Any]) -> None:
    """ibsim's seeded daily bars of ``chosen`` in [START, END), as a collection stores them."""
    world = {(c.symbol, c.primary_exchange): c for c in default_world()}
    market, store = Market(seed=0), BarStore(root)
    for record in chosen:
        bars = market.daily(world[(record.symbol, record.primary_exchange)])
        bars = bars.set_axis(bars.index.tz_localize("UTC"))
        store.write(f"{record.symbol}.{record.primary_exchange}", "1d", bars[START:END])


@pytest.fixture(scope="module")
def api(
    job_server: None, serve_api_port: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Any]]:
    from ray import serve

    home = tmp_path_factory.mktemp("backtests-home")
    db = f"sqlite:///{home / 'catalog.db'}"
    catalog = Catalog(db)
    catalog.upgrade()
    chosen = [r for r in listings() if r.currency == "USD"][:COUNT]
    assert len(chosen) == COUNT
    catalog.symbols.upsert_many(chosen)
    write_bars(home / "bars", chosen)
    tokens = {s: catalog.tokens.create(s, f"backtest-{s}")[1] for s in ("read", "research")}
    serve.start(http_options={"host": "127.0.0.1", "port": serve_api_port})  # the run's port
    with serving(scizor_env(home, db)) as url:
        clients = {
            s: httpx.Client(base_url=url, headers={"Authorization": f"Bearer {t}"}, timeout=60)
            for s, t in tokens.items()
        }
        yield {
            "http": clients["research"], "read": clients["read"], "url": url,
            "ids": [f"{r.symbol}.{r.primary_exchange}" for r in chosen], "catalog": catalog,
        }  # fmt: skip
        for client in clients.values():
            client.close()
    catalog.dispose()


def follow(http: httpx.Client, backtest_id: int) -> list[tuple[str, dict[str, Any]]]:
    """The progress events of a job until its stream ends."""
    events: list[tuple[str, dict[str, Any]]] = []
    name = ""
    with http.stream(
        "GET", f"/backtests/{backtest_id}/progress", headers={"Accept": "text/event-stream"},
        timeout=httpx.Timeout(60, read=300),
    ) as response:  # fmt: skip
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
    return events


def ray_status(job_id: str) -> str:
    import ray
    from ray.job_submission import JobSubmissionClient

    client = JobSubmissionClient(ray.get_runtime_context().gcs_address)
    return str(client.get_job_status(job_id).value)


def test_a_per_instrument_backtest_runs_as_a_ray_job_and_reads_back(api):
    http, ids = api["http"], api["ids"]
    spec = {**SMA, "instruments": ids, "costs": {"commission": "ibkr", "slippage_bps": 2}}
    accepted = http.post("/backtests", json=spec)
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    backtest_id = body["backtest_id"]
    assert accepted.headers["location"] == f"/backtests/{backtest_id}"
    assert body["command"].endswith(f"scizor backtest --run {backtest_id}")

    events = follow(http, backtest_id)
    assert events[-1][0] == "end", events
    final = events[-1][1]
    assert (final["status"], final["done"], final["total"]) == ("done", COUNT, COUNT)
    fractions = [e["fraction"] for _, e in events]
    assert fractions == sorted(fractions)
    assert eventually(lambda: ray_status(body["job_id"]) in RAY_FINISHED, timeout=120)
    assert ray_status(body["job_id"]) == "SUCCEEDED"

    job = http.get(f"/backtests/{backtest_id}").json()
    assert job["status"] == "done" and job["stats"] and sorted(job["instruments"]) == sorted(ids)
    results = http.get(f"/backtests/{backtest_id}/results").json()["results"]
    assert len(results) == COUNT and {r["instrument"] for r in results} == set(ids)
    ranked = [r["value"] for r in results if r["rank"] is not None]
    assert ranked == sorted(ranked, reverse=True) and len(ranked) > COUNT // 2

    trades = http.get(f"/backtests/{backtest_id}/trades").json()
    assert trades["count"] > COUNT and set(t["symbol"] for t in trades["trades"]) <= set(ids)
    first = ids[0]
    one = http.get(f"/backtests/{backtest_id}/trades", params={"instrument": first}).json()
    assert {t["symbol"] for t in one["trades"]} == {first}
    equity = http.get(f"/backtests/{backtest_id}/equity", params={"instrument": first}).json()
    assert equity["count"] > 1000 and equity["equity"][0]["instrument"] == first
    arrow = http.get(f"/backtests/{backtest_id}/equity", headers={"Accept": ARROW})
    assert arrow.status_code == 200 and arrow.headers["content-type"] == ARROW
    table = pa.ipc.open_stream(io.BytesIO(arrow.content)).read_all()
    assert table.column_names == ["instrument", "ts", "equity", "benchmark"]
    assert set(table.column("instrument").to_pylist()) == set(ids)
    report = http.get(f"/backtests/{backtest_id}/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert f"{COUNT} instruments" in report.text

    listed = http.get("/backtests", params={"strategy": "sma_cross", "status": "done"}).json()
    assert backtest_id in [i["id"] for i in listed["items"]] and listed["total"] >= 1
    perf = api["read"].get("/performance/strategies/sma_cross").json()
    assert perf["backtests"] >= 1 and perf["instruments"] == COUNT


def test_bad_specs_missing_tokens_and_scopes_are_refused(api):
    http, ids = api["http"], api["ids"]
    bad = http.post("/backtests", json={**SMA, "instruments": ids, "costs": {"cash": -5}})
    assert bad.status_code == 422 and bad.json()["field"] == "costs.cash", bad.text
    unknown = http.post("/backtests", json={**SMA, "instruments": ids, "options": {"sortt": 1}})
    assert unknown.status_code == 422 and unknown.json()["field"] == "options.sortt"
    anonymous = httpx.post(f"{api['url']}/backtests", json={**SMA, "instruments": ids})
    assert anonymous.status_code == 401
    read_only = api["read"].post("/backtests", json={**SMA, "instruments": ids})
    assert read_only.status_code == 403 and read_only.json()["required_scope"] == "research"
    assert api["read"].get("/backtests").status_code == 200
    assert http.get("/backtests/987654").status_code == 404
    assert http.get("/backtests/0").status_code == 422


def test_delete_cancels_a_running_job_and_its_ray_job_ends(api):
    http, ids = api["http"], api["ids"]
    spec = {**SMA, "instruments": ids, "params": {"fast": 5, "slow": 120}}
    body = http.post("/backtests", json=spec).json()
    backtest_id = body["backtest_id"]
    eventually(
        lambda: http.get(f"/backtests/{backtest_id}/progress").json()["status"] != "queued",
        timeout=120, interval=0.05,
    )  # fmt: skip
    cancelled = http.delete(f"/backtests/{backtest_id}")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert eventually(lambda: ray_status(body["job_id"]) in RAY_FINISHED, timeout=120)
    progress = http.get(f"/backtests/{backtest_id}/progress").json()
    assert progress["status"] == "cancelled" and progress["finished"]
    assert http.get(f"/backtests/{backtest_id}").json()["status"] == "cancelled"


def test_an_optimization_runs_as_a_ray_job_and_its_trials_and_report_read_back(api):
    http = api["http"]
    study = {"name": "http-grid", "strategy": "sma_cross", "instruments": api["ids"][:4],
             "sampler": "grid", "constraints": ["fast < slow"],
             "space": {"fast": {"low": 5, "high": 25, "step": 5},
                       "slow": {"low": 30, "high": 90, "step": 30}}}  # fmt: skip
    assert api["read"].post("/optimizations", json=study).status_code == 403
    accepted = http.post("/optimizations", json=study)
    assert accepted.status_code == 202, accepted.text
    body = accepted.json()
    url = accepted.headers["location"]
    assert url == f"/optimizations/{body['optimization_id']}" == body["status_url"]
    assert body["command"].endswith(f"scizor optimize --run {body['optimization_id']}")
    done = eventually(lambda: (j := http.get(url).json())["status"] in ("done", "failed") and j,
                      timeout=300, interval=1.0)  # fmt: skip
    assert done["status"] == "done", done
    assert eventually(lambda: ray_status(body["job_id"]) in RAY_FINISHED, timeout=120)
    assert ray_status(body["job_id"]) == "SUCCEEDED" and done["job_id"] == body["job_id"]
    assert done["n_complete"] == 5 * 3 and done["verdict"].startswith("best Sharpe")
    assert 0 <= done["overfitting"]["dsr"] <= 1
    trials = http.get(f"{url}/trials", params={"sort": "value", "limit": 3}).json()
    assert trials["total"] == 15 and trials["items"][0]["params"] == {
        k: done["best_params"][k] for k in ("fast", "slow")}  # fmt: skip
    report = api["read"].get(f"{url}/report")
    assert report.status_code == 200 and "http-grid" in report.text
    assert http.delete(url).status_code == 409  # done: nothing to stop
    listed = api["read"].get("/optimizations", params={"status": "done"}).json()
    assert body["optimization_id"] in [o["id"] for o in listed["items"]]
