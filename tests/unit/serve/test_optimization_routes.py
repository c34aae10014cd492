"""Optimizations over HTTP without Ray: submitting (202, Location, the driver's Ray Job), bad
specs as 422 naming the field with nothing stored, scopes, listing with filters, trials pages
read from the study's Optuna storage, the report once done, stopping. The trials of a
"finished" study are written with Optuna's own API into the catalog's database, as the
driver's sweep writes them."""

from __future__ import annotations

from typing import Any

import optuna
import pytest

from optimize import sweep_store
from optimize.optimization_summary import OptimizationSummary
from tests.unit.optimize.conftest import daily
from tests.unit.serve.conftest import listing

NAMES = ["AAA", "BBB"]
STUDY = {
    "strategy": "sma_cross", "instruments": NAMES, "sampler": "tpe", "trials": 40,
    "space": {"fast": {"low": 5, "high": 30}, "slow": {"low": 40, "high": 120}},
    "constraints": ["fast < slow"],
}  # fmt: skip


@pytest.fixture
def lab(api):
    api.context.catalog.symbols.upsert_many([listing(s, "ASX", currency="AUD") for s in NAMES])
    for seed, symbol in enumerate(NAMES):
        api.context.bars.write(f"{symbol}.ASX", "1d", daily(seed))
    return api


def submit(api: Any, **change: Any) -> dict[str, Any]:
    response = api.post("/optimizations", scope="research", json={**STUDY, **change})
    assert response.status_code == 202, response.text
    return dict(response.json())


def finish_with_trials(api: Any, optimization_id: int, values: list[float]) -> None:
    """What a driver leaves: the study's trials in Optuna's tables, the job done."""
    catalog = api.context.catalog
    job = catalog.optimizations.get(optimization_id)
    storage = sweep_store.open_storage(catalog)
    study = optuna.create_study(study_name=job.study_name, storage=storage, direction="maximize")
    dist = {"fast": optuna.distributions.IntDistribution(5, 30),
            "slow": optuna.distributions.IntDistribution(40, 120)}  # fmt: skip
    for k, value in enumerate(values):
        study.add_trial(optuna.trial.create_trial(params={"fast": 5 + k, "slow": 60},
                                                  distributions=dist, value=value))  # fmt: skip
    catalog.optimizations.start(optimization_id)
    summary = OptimizationSummary(study_name=job.study_name, strategy="sma_cross",
                                  instruments=("AAA.ASX", "BBB.ASX"), sampler="tpe",
                                  n_complete=len(values), best_params={"fast": 5, "slow": 60},
                                  best_values=(max(values),),
                                  verdict="best Sharpe 1.00 (annualized) in-sample over 3 "
                                  "trials; deflated 0.20: not significant")  # fmt: skip
    catalog.optimizations.finish(optimization_id, best_params={"fast": 5, "slow": 60},
                                 best_value=max(values), report=summary.to_dict())  # fmt: skip


def test_submit_is_202_with_the_location_and_the_drivers_ray_job(lab):
    body = submit(lab, name="sma-asx")
    job_id, spec, env = lab.jobs.submitted[0]
    assert body["status"] == "queued" and body["study_name"] == "sma-asx"
    assert body["job_id"] == job_id and body["command"].endswith(
        f"scizor optimize --run {body['optimization_id']}")  # fmt: skip
    assert spec.kind == "optimize" and spec.metadata["optimization_id"] == str(
        body["optimization_id"])  # fmt: skip
    assert env == lab.context.env
    shown = lab.get(body["status_url"], scope="read").json()
    assert (shown["status"], shown["n_trials"], shown["job_id"]) == ("queued", 40, job_id)
    assert shown["spec"]["constraints"] == ["fast < slow"] and shown["verdict"] is None


def test_a_study_without_a_name_gets_one(lab):
    assert submit(lab)["study_name"].startswith("sma_cross-")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sampler": "annealing"}, "sampler"),
        ({"space": {"fast": {"low": 1, "high": 5000}}}, "space.fast"),
        ({"constraints": ["fast <<< slow"]}, "constraints.0"),
        ({"objectives": [{"metric": "luck"}]}, "objectives.0.metric"),
        ({"walk_forward": {"in_sample": "2Y"}}, "walk_forward.out_of_sample"),
        ({"instruments": ["ZZZ.ASX"]}, None),
        ({"trials": 0}, "trials"),
    ],
)
def test_bad_specs_are_4xx_naming_the_field_and_store_nothing(lab, change, field):
    response = lab.post("/optimizations", scope="research", json={**STUDY, **change})
    assert 400 <= response.status_code < 500, response.text
    if field:
        assert response.json()["field"] == field, response.json()
    assert lab.context.catalog.optimizations.count() == 0 and lab.jobs.submitted == []


def test_the_same_name_with_another_spec_is_refused_and_the_same_spec_resumes(lab):
    first = submit(lab, name="again")
    lab.delete(f"/optimizations/{first['optimization_id']}", scope="research")
    refused = lab.post("/optimizations", scope="research",
                       json={**STUDY, "name": "again", "constraints": []})  # fmt: skip
    assert refused.status_code == 422 and refused.json()["field"] == "name"
    resumed = submit(lab, name="again", trials=80)
    assert resumed["optimization_id"] == first["optimization_id"]
    assert lab.get(resumed["status_url"]).json()["n_trials"] == 80


def test_scopes_read_cannot_submit_or_stop(lab):
    assert lab.post("/optimizations", scope="read", json=STUDY).status_code == 403
    body = submit(lab)
    assert lab.delete(body["status_url"], scope="read").status_code == 403
    assert lab.client.get("/optimizations").status_code == 401


def test_listing_filters_and_counts(lab):
    ids = [submit(lab, name=f"s{k}")["optimization_id"] for k in range(3)]
    lab.delete(f"/optimizations/{ids[0]}", scope="research")
    page = lab.get("/optimizations", params={"limit": 2}).json()
    assert [o["id"] for o in page["items"]] == ids[::-1][:2] and page["total"] == 3
    assert page["next_offset"] == 2
    cancelled = lab.get("/optimizations", params={"status": "cancelled"}).json()
    assert [o["id"] for o in cancelled["items"]] == [ids[0]]
    assert lab.get("/optimizations", params={"status": "paused"}).status_code == 422


def test_trials_pages_sorted_by_value_best_first_and_the_report_once_done(lab):
    body = submit(lab, name="done-study")
    oid = body["optimization_id"]
    assert lab.get(f"/optimizations/{oid}/trials").json()["total"] == 0  # queued: none yet
    assert lab.get(f"/optimizations/{oid}/report").status_code == 409
    finish_with_trials(lab, oid, [0.4, 1.1, -0.2, 0.9])
    best = lab.get(f"/optimizations/{oid}/trials", params={"sort": "value", "limit": 2}).json()
    assert [t["values"][0] for t in best["items"]] == [1.1, 0.9] and best["total"] == 4
    assert best["next_offset"] == 2 and best["items"][0]["params"] == {"fast": 6, "slow": 60}
    worst = lab.get(f"/optimizations/{oid}/trials", params={"sort": "value", "order": "asc"})
    assert worst.json()["items"][0]["values"] == [-0.2]
    by_number = lab.get(f"/optimizations/{oid}/trials", params={"offset": 3}).json()
    assert [t["number"] for t in by_number["items"]] == [3]
    assert lab.get(f"/optimizations/{oid}/trials", params={"sort": "luck"}).status_code == 422
    report = lab.get(f"/optimizations/{oid}/report")
    assert report.status_code == 200 and report.headers["content-type"].startswith("text/html")
    assert "done-study" in report.text and "not significant" in report.text
    shown = lab.get(f"/optimizations/{oid}").json()
    assert shown["status"] == "done" and shown["verdict"].endswith("not significant")
    assert lab.delete(f"/optimizations/{oid}", scope="research").status_code == 409


def test_stopping_cancels_once_and_a_missing_study_is_404(lab):
    body = submit(lab)
    stopped = lab.delete(body["status_url"], scope="research")
    assert stopped.status_code == 200 and stopped.json()["status"] == "cancelled"
    assert lab.delete(body["status_url"], scope="research").json()["status"] == "cancelled"
    assert lab.get("/optimizations/999").status_code == 404
    assert lab.get("/optimizations/999/trials").status_code == 404
