"""The job service without Ray: submitting (instrument resolution, checks, the stored row),
the worker's part, the catalog sink, and every query on a job run in this process."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.errors import Conflict, NotFound, StorageError, ValidationError
from core.instruments import AmbiguousInstrument
from optimize.backtest_ranking import summary
from optimize.backtest_sink import CatalogSink, JobProgress
from optimize.backtest_spec import parse_spec
from optimize.backtest_submit import spec_of
from optimize.backtest_work import Worker, WorkPlan
from storage.bars import BarStore
from storage.catalog import JobStatus
from strategies.engine import run_backtest
from tests.unit.optimize.conftest import daily

SMA = {"strategy": "sma_cross", "params": {"fast": 5, "slow": 20}}


def _plan(service: Any, job: Any) -> WorkPlan:
    spec, currencies = spec_of(job)
    return WorkPlan(backtest_id=job.id, spec=spec, bar_store=service.bar_store,
                    results=service.results_store.address, currencies=currencies)  # fmt: skip


def _run_here(service: Any, job: Any) -> Any:
    """Run a job in this process the way the Ray tasks and the driver do."""
    catalog = service.catalog
    catalog.backtests.start(job.id)
    sink = CatalogSink(catalog, job, total=len(job.instruments), done=0, failed=0,
                       on_progress=None)  # fmt: skip
    for outcome in Worker(_plan(service, job)).run(job.instruments):
        sink.add(outcome)
    assert sink.flush(force=True)
    rows = catalog.backtests.results(job.id)
    stats = summary(rows, mode="per_instrument", metric=job.options["sort"],
                    instruments=len(job.instruments))  # fmt: skip
    return catalog.backtests.finish(job.id, stats=stats)


def test_submit_resolves_ids_and_symbols_and_stores_what_run_needs(service):
    job = service.submit({**SMA, "instruments": ["aaa", "CCC.NASDAQ", "AAA.ASX"]})
    assert job.status is JobStatus.QUEUED and job.instruments == ["AAA.ASX", "CCC.NASDAQ"]
    assert job.params == {"fast": 5, "slow": 20, "allow_short": False}
    assert job.options["currencies"] == {"AAA.ASX": "AUD", "CCC.NASDAQ": "USD"}
    assert job.options["selection"] == ["AAA", "CCC.NASDAQ", "AAA.ASX"]  # as named
    assert job.options["kind"] == "library"
    spec, currencies = spec_of(job)
    assert spec.params == job.params and spec.selection.instruments == tuple(job.instruments)
    assert spec.costs == parse_spec({**SMA, "instruments": ["X"]}).costs
    assert currencies == job.options["currencies"]
    assert service.run_args(job.id) == ("backtest", "--run", str(job.id))


def test_universes_and_all_take_the_valid_listings(service):
    asx = service.submit({**SMA, "universe": "ASX200"})
    assert asx.instruments == ["AAA.ASX", "BBB.ASX", "VEA.ASX"]  # BAD.ASX is invalid
    every = service.submit({**SMA, "instruments": "all"})
    assert every.instruments == ["AAA.ASX", "BBB.ASX", "CCC.NASDAQ", "SPY.ARCA", "VEA.ARCA",
                                 "VEA.ASX"]  # fmt: skip
    assert every.options["selection"] == "all" and asx.options["selection"] == {
        "universe": "asx200"
    }


@pytest.mark.parametrize(
    ("change", "error", "field", "words"),
    [
        ({"instruments": ["VEA"]}, AmbiguousInstrument, "instruments", "VEA.ARCA"),
        ({"instruments": ["BAD"]}, ValidationError, "instruments", "invalid"),
        ({"instruments": ["NEW"]}, ValidationError, "instruments", "collect history NEW.NASDAQ"),
        ({"instruments": ["AAB"]}, ValidationError, "instruments", "did you mean AAA.ASX"),
        ({"universe": "etf"}, ValidationError, "universe", "did you mean 'etfs'"),
        ({"instruments": ["AAA", "CCC"], "options": {"mode": "portfolio"}}, ValidationError,
         "instruments", "per_instrument"),
        ({"instruments": ["AAA"], "costs": {"commission": "ibkr_us"}}, ValidationError,
         "costs.commission", "AUD"),
        ({"instruments": ["AAA"], "bar_size": "5m"}, ValidationError, "instruments", "5m bars"),
    ],
)  # fmt: skip
def test_submit_refuses_what_cannot_run_and_writes_nothing(service, change, error, field, words):
    with pytest.raises(error) as refused:
        service.submit({**SMA, **change})
    assert refused.value.field == field and words in str(refused.value)
    assert service.catalog.backtests.count() == 0


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        ({"instruments": ["AAA"], "start": "2030-01-01"}, "start", "AAA.ASX fall in [2030-01-01"),
        ({"instruments": ["AAA", "CCC"], "end": "2020-01-01"}, "end", "AAA.ASX (and 1 more)"),
        ({"universe": "asx200", "start": "2031-06-01"}, "start", "scizor collect history"),
        ({"universe": "etfs", "start": "2019-01-01", "end": "2020-01-01"}, "start", "choose dates"),
    ],
)
def test_a_date_range_without_stored_bars_is_refused_at_submit(service, change, field, words):
    with pytest.raises(ValidationError) as refused:
        service.submit({**SMA, **change})
    assert refused.value.field == field and words in str(refused.value)
    assert service.catalog.backtests.count() == 0


def test_a_universe_with_bars_in_range_for_some_instruments_is_accepted(service, world):
    BarStore(world["bars"]).write("BBB.ASX", "1d", daily(99, n=30).shift(400, freq="B"))
    job = service.submit({**SMA, "universe": "asx200", "start": "2024-06-01"})
    assert "BBB.ASX" in job.instruments and "AAA.ASX" in job.instruments
    with pytest.raises(ValidationError, match=r"AAA\.ASX fall in"):  # named: each must have bars
        service.submit({**SMA, "instruments": ["AAA", "BBB"], "start": "2024-06-01"})


def test_a_portfolio_of_one_currency_is_accepted(service):
    job = service.submit({**SMA, "universe": "etfs", "options": {"mode": "portfolio"}})
    assert job.instruments == ["SPY.ARCA", "VEA.ARCA"] and job.options["mode"] == "portfolio"


_RUN_WITHOUT_RAY = """
import sys
from core.errors import ConfigError
from core.settings import Settings
from optimize.backtest_jobs import BacktestService
from storage.catalog import Catalog
from storage.results import ResultStore
url, home, bars, results, job = sys.argv[1:]
settings = Settings.from_env({"SCIZOR_HOME": home, "SCIZOR_BAR_STORE": bars})
service = BacktestService(Catalog(url), settings, results=ResultStore(results))
try:
    service.run(int(job))
except ConfigError as exc:
    print("ConfigError:", exc)
"""


def test_run_needs_a_ray_cluster_and_leaves_the_job_as_it_was(
    service, world, catalog_url, tmp_path
):
    # A fresh interpreter: this test process may have joined the suite's Ray session.
    job = service.submit({**SMA, "instruments": ["AAA"]})
    args = [catalog_url, str(tmp_path), world["bars"], str(world["results"]), str(job.id)]
    ran = subprocess.run([sys.executable, "-c", _RUN_WITHOUT_RAY, *args], capture_output=True,
                         text=True, timeout=120, cwd=Path(__file__).parents[3])  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.startswith("ConfigError: join the Ray cluster first")
    assert service.get(job.id).status is JobStatus.QUEUED


def test_the_worker_stores_what_the_engine_computes(service, world):
    job = service.submit({**SMA, "instruments": ["AAA", "CCC"], "costs": {"commission": "ibkr"}})
    worker = Worker(_plan(service, job))
    outcome = worker.one("AAA.ASX")
    bars = BarStore(world["bars"]).read("AAA.ASX", "1d")
    expected = run_backtest(bars, "sma_cross", {"fast": 5, "slow": 20}, commission="ibkr",
                            currency="AUD", symbol="AAA.ASX")  # fmt: skip
    assert outcome.error is None and outcome.stats == expected.stats and outcome.seconds > 0
    assert len(service.results_store.trades(job.id, "AAA.ASX")) == len(expected.trades)


def test_the_worker_reports_an_instruments_problem_and_raises_a_storage_failure(service, tmp_path):
    job = service.submit({**SMA, "instruments": ["AAA"]})
    # A range the store no longer holds when the worker runs (submitting refuses one it lacks).
    late = dataclasses.replace(_plan(service, job), spec=parse_spec(
        {**SMA, "instruments": ["AAA"], "start": "2030-01-01"}))  # fmt: skip
    outcome = Worker(late).one("AAA.ASX")
    assert outcome.stats == {} and "--start 2030-01-01" in outcome.error
    rules = {"rules": {"entry": "close > sma(close, 400)"}, "instruments": ["AAA"]}
    ruled = service.submit(rules)
    outcome = Worker(_plan(service, ruled)).one("AAA.ASX")
    assert "only 300 bars" in outcome.error
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the result store should be")
    plan = WorkPlan(backtest_id=job.id, spec=parse_spec({**SMA, "instruments": ["AAA"]}),
                    bar_store=service.bar_store, results=str(blocked))  # fmt: skip
    with pytest.raises(StorageError, match="cannot write results"):
        Worker(plan).one("AAA.ASX")


def test_a_corrupt_bar_file_is_that_instruments_error(service, world):
    job = service.submit({**SMA, "instruments": ["AAA", "BBB"]})
    part = Path(world["bars"]) / "bar_size=1d" / "instrument=AAA.ASX" / "year=2023"
    (part / "data.parquet").write_bytes(b"PAR1 not really parquet PAR1")
    outcomes = list(Worker(_plan(service, job)).run(job.instruments))
    assert "bars of AAA.ASX are unreadable" in outcomes[0].error
    assert outcomes[1].error is None and outcomes[1].stats["n_trades"] > 0


def test_the_sink_flushes_when_due_reports_progress_and_stops_on_cancel(service):
    job = service.submit({**SMA, "instruments": ["AAA", "BBB", "CCC"]})
    catalog = service.catalog
    catalog.backtests.start(job.id)
    seen: list[JobProgress] = []
    sink = CatalogSink(catalog, job, total=3, done=0, failed=0, on_progress=seen.append)
    sink.FLUSH_SECONDS = 3600.0
    worker = Worker(_plan(service, job))
    sink.add(worker.one("AAA.ASX"))
    assert sink.flush() and catalog.backtests.result_counts(job.id) == (0, 0)  # not due yet
    assert sink.flush(force=True) and catalog.backtests.result_counts(job.id) == (1, 0)
    assert seen[-1].done == 1 and seen[-1].fraction == pytest.approx(1 / 3)
    assert seen[-1].worker_pid and catalog.backtests.get(job.id).progress == pytest.approx(1 / 3)
    catalog.backtests.cancel(job.id)
    sink.add(worker.one("BBB.ASX"))
    assert sink.flush(force=True) is False and sink.stopped()
    assert catalog.backtests.result_counts(job.id) == (1, 0)  # nothing after the cancel
    quiet = CatalogSink(catalog, job, total=3, done=1, failed=0, on_progress=None)
    quiet.CHECK_SECONDS = 0.0
    assert quiet.stopped()  # no outcome to flush: it asks the catalog


def test_every_query_of_a_finished_job(service):
    job = service.submit({**SMA, "instruments": ["AAA", "BBB", "CCC", "SPY"],
                          "options": {"sort": "return_pct"}})  # fmt: skip
    with pytest.raises(NotFound):
        service.strategy_performance("sma_cross")
    with pytest.raises(NotFound, match="no stored results yet"):
        service.report_html(job.id)
    done = _run_here(service, job)
    assert done.status is JobStatus.DONE
    ranked = service.results(job.id)
    assert [r.rank for r in ranked] == [1, 2, 3, 4]
    assert [r.value for r in ranked] == sorted((r.value for r in ranked), reverse=True)
    assert service.progress(job.id) == JobProgress(
        backtest_id=job.id, status=JobStatus.DONE, done=4, failed=0, total=4, fraction=1.0
    )
    trades = service.trades(job.id)
    assert (
        set(trades["symbol"]) <= set(job.instruments)
        and trades["entry_time"].is_monotonic_increasing
    )
    assert service.equity(job.id, "spy")["instrument"].unique().tolist() == ["SPY.ARCA"]
    with pytest.raises(AmbiguousInstrument):
        service.trades(job.id, "VEA")
    with pytest.raises(NotFound, match=r"no stored results for VEA\.ASX"):
        service.trades(job.id, "VEA.ASX")
    page = service.report_html(job.id)
    assert "id='equity-chart'" in page and "id='ranked'" in page and "4 instruments" in page
    one = service.report_html(job.id, "CCC")
    assert "sma_cross on CCC.NASDAQ" in one and "id='price-chart'" in one
    with pytest.raises(NotFound, match=r"no result for VEA\.ARCA"):
        service.report_html(job.id, "VEA.ARCA")
    performance = service.strategy_performance("sma_cross")
    assert (performance.backtests, performance.results, performance.instruments) == (1, 4, 4)
    with pytest.raises(Conflict, match="already done"):
        service.cancel(job.id)


def test_list_filters_and_pages_with_a_total(service):
    ids = [service.submit({**SMA, "instruments": [i]}).id for i in ("AAA", "BBB", "AAA", "CCC")]
    service.cancel(ids[0])
    page = service.list(instrument="aaa")
    assert [b.id for b in page.items] == [ids[2], ids[0]] and page.total == 2
    page = service.list(limit=1, offset=1)
    assert [b.id for b in page.items] == [ids[2]] and (page.total, page.limit) == (4, 1)
    assert service.list(status="cancelled").total == 1
    assert service.list(strategy="buy_hold").items == []
    with pytest.raises(AmbiguousInstrument):
        service.list(instrument="VEA")
