"""Long work over HTTP: 202 + Location, the CLI command submitted, conflicts, job -> run;
collection runs; the strategy and indicator library (fake job launcher, no Ray)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest

from core.types import utcnow
from tests.unit.serve.conftest import listing


@pytest.fixture
def farm(api):
    api.context.catalog.symbols.upsert_many(
        [listing("BHP", "ASX", currency="AUD", universe="asx200")]
    )
    return api


def submitted_args(api):
    return [" ".join(spec.args) for _, spec, _ in api.jobs.submitted]


def test_collect_daily_is_202_with_the_job_id_location_and_the_cli_command(farm):
    response = farm.post("/collect", scope="research", json={"years": 2, "universe": ["asx200"]})
    assert response.status_code == 202
    body = response.json()
    assert response.headers["location"] == f"/jobs/{body['job_id']}" == body["status_url"]
    assert body["job_id"].startswith("collect-") and body["kind"] == "collect-daily"
    assert body["command"].endswith("scizor collect daily --years 2 --universe asx200")
    _, spec, env = farm.jobs.submitted[0]
    assert env == farm.context.env, "the job runs with the API's SCIZOR_* variables"
    assert spec.metadata["requested_by"] == "research-user" and spec.metadata["request_id"]


def test_collect_without_a_body_uses_the_defaults(farm):
    assert farm.post("/collect").status_code == 202
    assert farm.post("/collect/BHP").status_code == 202, "a different kind of run"
    assert submitted_args(farm) == [
        "collect daily --years 5",
        "collect history BHP.ASX --bar-size 1d --years 5",
    ]


def test_historical_collection_resolves_the_instrument_and_passes_the_range(farm):
    response = farm.post(
        "/collect/historical/bhp",
        json={"bar_size": "1m", "start": "2024-01-02", "end": "2024-02-01"},
    )
    assert response.status_code == 202
    assert submitted_args(farm) == [
        "collect history BHP.ASX --bar-size 1m --years 3 --start 2024-01-02 --end 2024-02-01"
    ]


@pytest.mark.parametrize(
    ("path", "body", "status", "field"),
    [
        ("/collect/historical/BHP.ASX", {"bar_size": "2m"}, 422, "bar_size"),
        ("/collect/historical/BHP.ASX", {"start": "2024-02-01", "end": "2024-01-01"}, 422, None),
        ("/collect/historical/NOPE.ASX", {}, 404, None),
        ("/collect/B..X", {}, 422, "instrument"),
        ("/collect", {"years": 0}, 422, "years"),
        ("/collect", {"universe": "asx200"}, 422, "universe"),
        ("/collect", {"universe": ["asx2000"]}, 422, "universe"),
        ("/symbols/validate", {"limit": 0}, 422, "limit"),
    ],
)
def test_bad_input_is_refused_before_any_job_is_submitted(farm, path, body, status, field):
    response = farm.post(path, json=body)
    assert response.status_code == status, response.text
    if field:
        assert response.json()["field"] == field
    assert farm.jobs.submitted == []


def test_an_unknown_universe_names_the_known_ones(farm):
    body = farm.post("/collect", json={"universe": ["asx200", "asx2000"]}).json()
    assert (
        body["detail"].startswith("universe asx2000 has no listings") and "asx200" in body["detail"]
    )


def test_a_second_collection_of_a_kind_while_one_is_under_way_is_409(farm):
    assert farm.post("/collect").status_code == 202
    again = farm.post("/collect")
    assert again.status_code == 409
    assert farm.jobs.submitted[0][0] in again.json()["detail"]
    farm.jobs.status = "SUCCEEDED"
    assert farm.post("/collect").status_code == 202, "a finished job does not block"


def test_a_running_run_of_the_kind_is_409_naming_the_run_and_its_owner(farm):
    runs = farm.context.catalog.collection_runs
    run = runs.create("daily", [("BHP.ASX", "1d", None, None)], owner="host pid 1")
    response = farm.post("/collect")
    assert response.status_code == 409
    detail = response.json()["detail"]
    assert f"run {run.id}" in detail and "host pid 1" in detail
    runs.finish(run.id)
    assert farm.post("/collect").status_code == 202


def test_symbol_validation_is_a_job_of_the_cli(farm):
    response = farm.post("/symbols/validate", json={"force_revalidate": True, "limit": 10})
    assert response.status_code == 202 and response.json()["job_id"].startswith("validate-")
    assert submitted_args(farm) == ["symbols validate --force-revalidate --limit 10"]


def test_a_job_shows_its_run_once_the_driver_recorded_it(farm):
    job_id = farm.post("/collect/BHP.ASX").json()["job_id"]
    farm.jobs.status, farm.jobs.driver_pid = "RUNNING", os.getpid()
    view = farm.get(f"/jobs/{job_id}", scope="read").json()
    assert (view["status"], view["run"], view["requested_by"]) == ("RUNNING", None, "admin-user")
    run = farm.context.catalog.collection_runs.create(
        "history", [("BHP.ASX", "1d", None, None)], owner=f"somehost pid {os.getpid()}"
    )
    view = farm.get(f"/jobs/{job_id}").json()
    assert view["run"] == {"id": run.id, "url": f"/collections/{run.id}"}
    assert farm.get("/jobs/collect-00000000000000ff").status_code == 404
    assert farm.get("/jobs/not-a-job").status_code == 422


def test_a_run_owned_by_the_job_id_is_found_without_a_pid(farm):
    job_id = farm.post("/collect").json()["job_id"]
    run = farm.context.catalog.collection_runs.create(
        "daily", [("BHP.ASX", "1d", None, None)], owner=f"h pid 9 job {job_id}"
    )
    assert farm.get(f"/jobs/{job_id}").json()["run"]["id"] == run.id


def test_a_run_owned_by_the_ray_job_id_is_found_too(farm):
    job_id = farm.post("/collect/BHP").json()["job_id"]
    farm.jobs.ray_job_id = "0a000000"
    runs = farm.context.catalog.collection_runs
    runs.create("history", [("BHP.ASX", "1d", None, None)], owner="h pid 9 ray job 0b000000")
    assert farm.get(f"/jobs/{job_id}").json()["run"] is None, "another job's run"
    run = runs.create(
        "history", [("BHP.ASX", "1h", None, None)], owner="h pid 9 ray job 0a000000",
        at=utcnow() + timedelta(minutes=5),
    )  # fmt: skip
    assert farm.get(f"/jobs/{job_id}").json()["run"]["id"] == run.id


def test_collections_are_listed_newest_first_and_show_per_instrument_progress(farm):
    runs = farm.context.catalog.collection_runs
    first = runs.create("daily", [("BHP.ASX", "1d", None, None)], owner="a")
    runs.finish(first.id)
    second = runs.create(
        "history",
        [("BHP.ASX", "1d", None, None), ("BHP.ASX", "1h", None, None)],
        at=utcnow() + timedelta(seconds=1),
    )
    item = runs.items(second.id)[0]
    runs.finish_item(item.id, bars_written=250)

    def ids(**params):
        return [r["id"] for r in farm.get("/collections", params=params).json()["items"]]

    page = farm.get("/collections", params={"limit": 1}).json()
    assert [r["id"] for r in page["items"]] == [second.id] and page["next_offset"] == 1
    assert ids(offset=1) == [first.id]
    assert ids(kind="daily") == [first.id]
    detail = farm.get(f"/collections/{second.id}").json()
    assert (detail["progress"], detail["bars_written"], detail["total"]) == (0.5, 250, 2)
    assert [(i["bar_size"], i["status"]) for i in detail["items"]] == [
        ("1d", "done"),
        ("1h", "pending"),
    ]
    assert farm.get("/collections/999").status_code == 404
    assert farm.get("/collections/0").json()["field"] == "run_id"


def test_the_library_lists_strategies_and_indicators_with_ranges_and_defaults(api):
    strategies = {s["name"]: s for s in api.get("/strategies", scope="read").json()}
    assert {"sma_cross", "rsi_reversion", "buy_hold"} <= set(strategies)
    fast = strategies["sma_cross"]["params"]["fast"]
    assert (fast["type"], fast["default"], fast["low"], fast["high"]) == ("int", 10, 2, 200)
    indicators = {i["name"]: i for i in api.get("/indicators", scope="read").json()}
    assert {"sma", "rsi", "macd", "bbands"} <= set(indicators)
    period = indicators["rsi"]["params"][0]
    assert period["name"] == "timeperiod" and period["default"] == 14 and period["min"] >= 1
