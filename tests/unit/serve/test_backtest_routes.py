"""Backtests over HTTP without Ray: submitting (202, Location, the driver's Ray Job), bad specs
as 422 naming the field, listing with filters and a total, progress (JSON and server-sent
events), results, trades and equity (JSON, CSV, Arrow), the report, cancelling, strategy
performance and scopes. A job is run in this process the way the driver's tasks do."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from optimize.backtest_ranking import summary
from optimize.backtest_sink import CatalogSink
from optimize.backtest_submit import spec_of
from optimize.backtest_work import Worker, WorkPlan
from serve.routes import backtests as routes
from tests.unit.serve.conftest import listing

SMA = {"strategy": "sma_cross", "params": {"fast": 5, "slow": 20}}
NAMES = ["AAA", "BBB", "CCC", "DDD"]
ARROW = "application/vnd.apache.arrow.stream"


def daily(seed: int, n: int = 200) -> pd.DataFrame:
    idx = pd.date_range("2023-01-02", periods=n, freq="B", tz="UTC")
    rng = np.random.default_rng(seed)
    close = 40 * np.exp(np.cumsum(rng.normal(0.0005, 0.02, n)))
    opens = close * np.exp(rng.normal(0, 0.004, n))
    return pd.DataFrame(
        {"open": opens, "high": np.maximum(opens, close) * 1.01,
         "low": np.minimum(opens, close) * 0.99, "close": close, "volume": 1e5},
        index=idx,
    )  # fmt: skip


@pytest.fixture
def lab(api):
    api.context.catalog.symbols.upsert_many([listing(s, "ASX", currency="AUD") for s in NAMES])
    for seed, symbol in enumerate(NAMES):
        api.context.bars.write(f"{symbol}.ASX", "1d", daily(seed))
    return api


def submit(api: Any, **spec: Any) -> dict[str, Any]:
    response = api.post("/backtests", scope="research", json={**SMA, "instruments": NAMES, **spec})
    assert response.status_code == 202, response.text
    return dict(response.json())


def run_here(api: Any, backtest_id: int) -> None:
    """Run a queued job in this process the way the driver's Ray tasks do."""
    service = api.context.backtests
    job = service.catalog.backtests.start(backtest_id)
    spec, currencies = spec_of(job)
    plan = WorkPlan(backtest_id=job.id, spec=spec, bar_store=service.bar_store,
                    results=service.results_store.address, currencies=currencies)  # fmt: skip
    sink = CatalogSink(service.catalog, job, total=len(job.instruments), done=0, failed=0,
                       on_progress=None)  # fmt: skip
    for outcome in Worker(plan).run(job.instruments):
        sink.add(outcome)
    assert sink.flush(force=True)
    rows = service.catalog.backtests.results(job.id)
    stats = summary(rows, mode="per_instrument", metric=job.options["sort"],
                    instruments=len(job.instruments))  # fmt: skip
    service.catalog.backtests.finish(job.id, stats=stats)


def test_post_queues_the_job_and_submits_its_driver_as_a_ray_job(lab):
    body = submit(lab)
    assert body["status"] == "queued" and body["status_url"] == f"/backtests/{body['backtest_id']}"
    job_id, spec, env = lab.jobs.submitted[0]
    assert body["job_id"] == job_id and job_id.startswith("backtest-")
    assert spec.args == ("backtest", "--run", str(body["backtest_id"]))
    assert body["command"].endswith(f"scizor backtest --run {body['backtest_id']}")
    assert env == lab.context.env and spec.metadata["requested_by"] == "research-user"
    assert spec.metadata["backtest_id"] == str(body["backtest_id"])
    second = lab.post("/backtests", json={**SMA, "instruments": ["AAA"]})
    assert second.status_code == 202, "backtests do not wait for each other"
    assert second.headers["location"] == f"/backtests/{second.json()['backtest_id']}"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"params": {"fast": 5, "slow": "x"}}, "params.slow"),
        ({"costs": {"slippage_bps": -3}}, "costs.slippage_bps"),
        ({"bar_size": "7m"}, "bar_size"),
        ({"instruments": ["NOPE.ASX"]}, "instruments"),
        ({"strategy": "no_such_strategy"}, "strategy"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_spec_is_422_naming_the_field_and_nothing_is_queued(lab, change, field):
    response = lab.post("/backtests", json={**SMA, "instruments": NAMES, **change})
    assert response.status_code == 422, response.text
    assert response.json()["field"] == field, response.json()
    assert lab.jobs.submitted == [] and lab.get("/backtests").json()["total"] == 0


def test_a_body_that_is_not_a_json_object_is_422_not_500(lab):
    for content in (b"[1, 2]", b"{nope", b'"text"'):
        response = lab.post(
            "/backtests", content=content, headers={"Content-Type": "application/json"}
        )
        assert response.status_code == 422, (content, response.text)


def test_scopes_post_and_delete_need_research_reads_need_read(lab):
    assert lab.client.post("/backtests", json=SMA).status_code == 401
    denied = lab.post("/backtests", scope="read", json={**SMA, "instruments": NAMES})
    assert denied.status_code == 403 and denied.json()["required_scope"] == "research"
    assert lab.delete("/backtests/1", scope="read").status_code == 403
    assert lab.client.get("/backtests").status_code == 401
    assert lab.get("/backtests", scope="read").status_code == 200


def test_unknown_ids_are_404_and_bad_ids_422(lab):
    for path in ("", "/progress", "/results", "/trades", "/equity", "/report"):
        assert lab.get(f"/backtests/999{path}").status_code == 404, path
        assert lab.get(f"/backtests/zero{path}").status_code == 422, path
    assert lab.delete("/backtests/999").status_code == 404
    assert lab.get("/performance/strategies/sma_cross").status_code == 404


def test_list_filters_and_pages_with_a_total(lab):
    ids = [submit(lab, instruments=[s])["backtest_id"] for s in NAMES[:3]]
    buy_hold = lab.post("/backtests", json={"strategy": "buy_hold", "instruments": ["DDD"]})
    assert buy_hold.status_code == 202
    page = lab.get("/backtests", params={"limit": 2}).json()
    assert page["total"] == 4 and len(page["items"]) == 2 and page["next_offset"] == 2
    assert lab.get("/backtests", params={"strategy": "sma_cross"}).json()["total"] == 3
    only = lab.get("/backtests", params={"instrument": "bbb"}).json()
    assert [i["id"] for i in only["items"]] == [ids[1]]
    assert lab.get("/backtests", params={"status": "done"}).json()["total"] == 0
    future = lab.get("/backtests", params={"since": "2999-01-01"}).json()
    assert future["total"] == 0
    bad = lab.get("/backtests", params={"since": "2025-02-01", "until": "2025-01-01"})
    assert bad.status_code == 422 and bad.json()["field"] == "since"
    assert lab.get("/backtests", params={"status": "sleeping"}).status_code == 422
    assert lab.get("/backtests", params={"strategie": "x"}).status_code == 422


def test_a_finished_job_reads_back_in_every_form(lab):
    backtest_id = submit(lab, options={"sort": "return_pct"})["backtest_id"]
    queued = lab.get(f"/backtests/{backtest_id}/progress").json()
    assert (queued["status"], queued["done"], queued["total"]) == ("queued", 0, 4)
    assert not queued["finished"]
    run_here(lab, backtest_id)
    job = lab.get(f"/backtests/{backtest_id}").json()
    assert job["status"] == "done" and job["instruments"] == [f"{s}.ASX" for s in NAMES]
    ranked = lab.get(f"/backtests/{backtest_id}/results").json()
    assert ranked["metric"] == "return_pct"
    assert [r["rank"] for r in ranked["results"]] == [1, 2, 3, 4]
    values = [r["value"] for r in ranked["results"]]
    assert values == sorted(values, reverse=True)

    trades = lab.get(f"/backtests/{backtest_id}/trades").json()
    assert trades["count"] == len(trades["trades"]) > 0
    assert {"symbol", "entry_time", "pnl"} <= set(trades["trades"][0])
    one = lab.get(f"/backtests/{backtest_id}/equity", params={"instrument": "CCC"}).json()
    assert {row["instrument"] for row in one["equity"]} == {"CCC.ASX"}
    arrow = lab.get(f"/backtests/{backtest_id}/equity", headers={"Accept": ARROW})
    assert arrow.headers["content-type"] == ARROW
    table = pa.ipc.open_stream(io.BytesIO(arrow.content)).read_all()
    assert table.column_names == ["instrument", "ts", "equity", "benchmark"]
    assert table.num_rows == sum(len(daily(0)) for _ in NAMES)
    csv = lab.get(f"/backtests/{backtest_id}/trades", params={"format": "csv"})
    assert csv.headers["content-type"].startswith("text/csv")
    assert csv.text.splitlines()[0].startswith("symbol,side,size")
    report = lab.get(f"/backtests/{backtest_id}/report")
    assert report.headers["content-type"].startswith("text/html") and "4 instruments" in report.text
    assert (
        "sma_cross on AAA.ASX"
        in lab.get(f"/backtests/{backtest_id}/report", params={"instrument": "AAA"}).text
    )
    assert lab.get(f"/backtests/{backtest_id}/trades", params={"format": "xml"}).status_code == 422

    perf = lab.get("/performance/strategies/sma_cross").json()
    assert (perf["backtests"], perf["results"], perf["instruments"]) == (1, 4, 4)
    assert lab.delete(f"/backtests/{backtest_id}").status_code == 409, "done jobs stay done"


def test_progress_streams_events_until_the_job_ends(lab, monkeypatch):
    monkeypatch.setattr(routes, "SSE_INTERVAL", 0.01)
    backtest_id = submit(lab)["backtest_id"]
    run_here(lab, backtest_id)
    response = lab.get(
        f"/backtests/{backtest_id}/progress", headers={"Accept": "text/event-stream"}
    )
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [line for line in response.text.splitlines() if line.startswith("event:")]
    assert events == ["event: progress", "event: end"]
    assert '"status":"done"' in response.text


def test_an_unfinished_stream_ends_at_its_time_limit(lab, monkeypatch):
    monkeypatch.setattr(routes, "SSE_INTERVAL", 0.01)
    monkeypatch.setattr(routes, "SSE_LIMIT", 0.05)
    backtest_id = submit(lab)["backtest_id"]
    response = lab.get(
        f"/backtests/{backtest_id}/progress", headers={"Accept": "text/event-stream"}
    )
    events = [line for line in response.text.splitlines() if line.startswith("event:")]
    assert events == ["event: progress", "event: timeout"]


def test_delete_cancels_the_row_and_stops_its_ray_job(lab):
    stopped: list[str] = []
    lab.jobs.stop = stopped.append  # type: ignore[attr-defined]
    body = submit(lab)
    cancelled = lab.delete(f"/backtests/{body['backtest_id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert stopped == [body["job_id"]]
    assert lab.get(f"/backtests/{body['backtest_id']}/progress").json()["finished"]
    assert lab.delete(f"/backtests/{body['backtest_id']}").status_code == 200, "idempotent"
