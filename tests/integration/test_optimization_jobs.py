"""Optimization jobs end to end on the session's Ray cluster, SQLite and PostgreSQL catalogs:
a grid study whose best equals a brute-force search, its overfitting statistics and verdict,
walk-forward, resuming by name, cancelling, the trials pages; and ``scizor optimize --wait``
as a user runs it, a Ray Job with its logs."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from core.errors import Conflict, NotFound, ValidationError
from optimize.optimization_jobs import OptimizationService
from storage.bars import BarStore
from storage.catalog import Catalog, JobStatus
from strategies.batch import run_batch
from tests.integration.test_backtest_support import listings, settings_for, universe_bars

pytestmark = pytest.mark.integration

__all__ = ["universe_bars"]  # the shared fixture

SCIZOR = str(Path(sys.executable).with_name("scizor"))
PAIR = ["SPY.ARCA", "BHP.ASX"]
GRID = {
    "strategy": "sma_cross", "instruments": PAIR, "sampler": "grid",
    "space": {"fast": {"low": 5, "high": 30, "step": 5},
              "slow": {"low": 40, "high": 120, "step": 20}},
    "constraints": ["fast < slow"], "costs": {"commission": "ibkr"},
}  # fmt: skip


def service_for(catalog: Catalog, tmp_path: Path, bars: str) -> OptimizationService:
    catalog.symbols.upsert_many(listings())
    url = catalog.url.render_as_string(hide_password=False)
    return OptimizationService(catalog, settings_for(tmp_path, bars, url))


def brute_force_best(bars_root: str, spec: dict[str, Any]) -> tuple[dict[str, int], float]:
    """The grid's best mean Sharpe over the pair, by run_batch in this process."""
    store = BarStore(bars_root)
    space = spec["space"]
    points = [
        {"fast": f, "slow": s}
        for f, s in itertools.product(range(5, 31, 5), range(40, 121, 20))
        if f < s
    ]
    assert space["fast"]["high"] == 30 and len(points) == 6 * 5
    tables = []
    for instrument, currency in zip(PAIR, ("USD", "AUD"), strict=True):
        bars = store.read(instrument, "1d")
        tables.append(run_batch(bars, "sma_cross", points, commission="ibkr", currency=currency))
    mean = np.nanmean(np.vstack([t["sharpe"].to_numpy() for t in tables]), axis=0)
    best = int(np.nanargmax(mean))
    return points[best], float(mean[best])


def test_a_grid_study_finds_the_brute_force_best_and_says_what_it_is_worth(
    ray_session, catalog, tmp_path, universe_bars
):
    service = service_for(catalog, tmp_path, universe_bars)
    job = service.submit({**GRID, "name": "grid-pair"})
    assert job.status is JobStatus.QUEUED and job.n_trials == 30
    done = service.run(job.id)
    assert done.status is JobStatus.DONE and done.n_complete == 30
    params, value = brute_force_best(universe_bars, GRID)
    assert {k: done.best_params[k] for k in ("fast", "slow")} == params
    assert math.isclose(done.best_value, value, rel_tol=1e-9)
    stats = done.report["overfitting"]
    assert stats["n_trials"] == 30 and 0.0 <= stats["dsr"] <= 1.0 and 0.0 <= stats["pbo"] <= 1.0
    assert (
        done.report["verdict"].startswith("best Sharpe") and "30 trials" in done.report["verdict"]
    )
    assert done.report["overhead"] < 1.0 and done.artifacts["sweep"]["workers"] >= 1
    assert done.artifacts["analysis"]["sampled_trials"] == 30
    html = service.report_html(job.id)
    assert "grid-pair" in html and done.report["verdict"] in html
    page = service.trials(job.id, sort="value", limit=5)
    assert page.total == 30 and len(page.items) == 5
    assert page.items[0]["params"] == params and page.items[0]["values"][0] == pytest.approx(value)
    values = [t["values"][0] for t in page.items]
    assert values == sorted(values, reverse=True)
    assert [t["number"] for t in service.trials(job.id, offset=28).items] == [28, 29]


def test_a_walk_forward_study_chooses_per_fold_and_stitches_the_out_of_sample(
    ray_session, catalog, tmp_path, universe_bars
):
    service = service_for(catalog, tmp_path, universe_bars)
    spec = {**GRID, "name": "wf", "instruments": ["SPY.ARCA"],
            "walk_forward": {"in_sample": 504, "out_of_sample": 126}}  # fmt: skip
    done = service.run(service.submit(spec).id)
    walk = done.report["walk_forward"]
    assert done.artifacts["analysis"]["walk_forward"]["instruments"] == ["SPY.ARCA"]
    assert len(walk["folds"]) >= 3
    assert all(f["params"]["fast"] < f["params"]["slow"] for f in walk["folds"])
    assert walk["equity"] and walk["equity"][0][0] >= walk["folds"][0]["oos_first"][:10]
    assert walk["wfe"] is None or math.isfinite(walk["wfe"])


def test_submitting_an_ended_studys_name_resumes_it_and_another_spec_is_refused(
    ray_session, catalog, tmp_path, universe_bars
):
    service = service_for(catalog, tmp_path, universe_bars)
    spec = {**GRID, "name": "tpe-pair", "sampler": "tpe", "trials": 12, "seed": 3}
    first = service.run(service.submit(spec).id)
    assert first.n_complete == 12
    again = service.submit({**spec, "trials": 20})
    assert again.id == first.id and again.status is JobStatus.QUEUED and again.n_trials == 20
    resumed = service.run(again.id)
    assert resumed.n_complete == 20 and service.trials(first.id).total >= 20
    with pytest.raises(ValidationError, match="another spec") as refused:
        service.submit({**spec, "constraints": []})
    assert refused.value.field == "name"


def test_a_cancelled_study_ends_cancelled_and_keeps_its_trials(
    ray_session, catalog, tmp_path, universe_bars
):
    service = service_for(catalog, tmp_path, universe_bars)
    job = service.submit({**GRID, "name": "to-cancel", "sampler": "random", "trials": 100_000,
                          "instruments": "all"})  # fmt: skip
    outcome: dict[str, Any] = {}
    runner = threading.Thread(target=lambda: outcome.update(job=service.run(job.id)))
    runner.start()
    deadline = time.monotonic() + 120
    while service.get(job.id).n_complete == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    service.cancel(job.id)
    runner.join(timeout=120)
    assert not runner.is_alive() and outcome["job"].status is JobStatus.CANCELLED
    kept = service.trials(job.id, state="COMPLETE").total
    assert 0 < kept < 100_000
    with pytest.raises(Conflict):
        service.cancel(service.run(service.submit({**GRID, "name": "other"}).id).id)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"walk_forward": {"in_sample": "2Y"}}, "walk_forward.out_of_sample"),
        ({"walk_forward": {"in_sample": "2Y", "out_of_sample": "6M", "step": 3}},
         "walk_forward.step"),
        ({"sampler": "annealing"}, "sampler"),
        ({"instruments": ["NOPE.ASX"]}, "instruments"),
    ],
)  # fmt: skip
def test_bad_specs_are_refused_before_anything_is_stored(catalog, tmp_path, universe_bars,
                                                         change, field):  # fmt: skip
    service = service_for(catalog, tmp_path, universe_bars)
    with pytest.raises((ValidationError, NotFound)) as refused:
        service.submit({**GRID, **change})
    assert getattr(refused.value, "field", None) == field or field in str(refused.value)
    assert catalog.optimizations.count() == 0


def test_scizor_optimize_runs_as_a_ray_job_with_its_logs(ray_session, tmp_path, universe_bars):
    import ray

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    catalog = Catalog(url)
    catalog.upgrade()
    catalog.symbols.upsert_many(listings())
    catalog.dispose()
    base = {k: v for k, v in os.environ.items() if not k.startswith("SCIZOR_")}
    env = {**base, "SCIZOR_HOME": str(tmp_path), "SCIZOR_BAR_STORE": universe_bars,
           "SCIZOR_DATABASE_URL": url, "COLUMNS": "200",
           "SCIZOR_RAY_ADDRESS": ray.get_runtime_context().gcs_address}  # fmt: skip
    args = ["optimize", "sma_cross", "-i", "SPY.ARCA", "--space", "fast=5:30:5",
            "--space", "slow=40:120:20", "-c", "fast < slow", "--sampler", "grid",
            "--name", "cli-grid", "--wait"]  # fmt: skip
    ran = subprocess.run([SCIZOR, *args], env=env, capture_output=True, text=True, timeout=600)
    assert ran.returncode == 0, ran.stdout[-3000:] + ran.stderr[-3000:]
    assert "queued as Ray Job optimize-" in ran.stdout and "SUCCEEDED" in ran.stdout
    assert "deflated Sharpe" in ran.stdout and "Report:" in ran.stdout  # the job's own output
    catalog = Catalog(url)
    try:
        (job,) = catalog.optimizations.list()
    finally:
        catalog.dispose()
    assert job.status is JobStatus.DONE and job.n_complete == 30
    listed = subprocess.run([SCIZOR, "jobs", "--kind", "optimize"], env=env, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert job.artifacts["job_id"] in listed.stdout and "SUCCEEDED" in listed.stdout
    assert (tmp_path / "reports" / f"optimization-{job.id}.html").stat().st_size > 5_000
