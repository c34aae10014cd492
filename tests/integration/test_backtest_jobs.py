"""Backtest jobs end to end on the session's local Ray (2 CPUs): the bundled universe's real
Parquet bars, SQLite and PostgreSQL catalogs, results as Parquet, reports rendered from them.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from ibsim.testing import eventually
from optimize.backtest_sink import JobProgress
from storage.bars import BarStore
from storage.catalog import Catalog, JobStatus
from strategies.engine import run_portfolio
from tests.integration.test_backtest_support import (
    SMA,
    direct,
    make_service,
    same_stats,
    stored_files,
    universe_bars,
)

pytestmark = pytest.mark.integration
__all__ = ["universe_bars"]  # the fixture, shared with the CLI tests

ALL = {**SMA, "instruments": "all", "costs": {"commission": "ibkr"}}


def _run_in_thread(service: Any, job_id: int, on_progress: Any) -> tuple[threading.Thread, list]:
    outcome: list[Any] = []

    def drive() -> None:
        try:
            outcome.append(service.run(job_id, on_progress=on_progress))
        except BaseException as exc:  # handed to the test thread, which re-raises it
            outcome.append(exc)

    runner = threading.Thread(target=drive, daemon=True)
    runner.start()
    return runner, outcome


def _joined(runner: threading.Thread, outcome: list) -> Any:
    runner.join(180)
    assert not runner.is_alive() and outcome, "the job did not end within 180 s"
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    return outcome[0]


def test_a_universe_job_runs_end_to_end_with_its_report(
    ray_session: None, catalog: Catalog, tmp_path: Path, universe_bars: str
) -> None:
    service = make_service(catalog, tmp_path, universe_bars)
    job = service.submit(ALL)
    assert (job.status, len(job.instruments)) == (JobStatus.QUEUED, 428)
    seen: list[JobProgress] = []
    done = service.run(job.id, on_progress=seen.append)
    assert done.status is JobStatus.DONE and done.progress == 1.0
    assert [p.done for p in seen] == sorted(p.done for p in seen) and seen[-1].done == 428
    assert done.stats["ok"] == 428 and done.stats["failed"] == 0
    assert done.artifacts["fanout"]["tasks"] >= 4 and done.artifacts["fanout"]["rounds"] == 1
    ranked = service.results(job.id)
    values = [r.value for r in ranked]
    assert [r.rank for r in ranked] == list(range(1, 429))
    assert values == sorted(values, reverse=True)  # best Sharpe ratio first
    assert done.stats["best"] == {"instrument": ranked[0].instrument, "sharpe": values[0]}
    by_id = {r.instrument: r for r in ranked}
    for instrument, currency in (("BHP.ASX", "AUD"), ("AAPL.NASDAQ", "USD"), ("SPY.ARCA", "USD")):
        expected = direct(universe_bars, instrument, currency, commission="ibkr")
        assert same_stats(by_id[instrument].stats, expected.stats)
        trades = service.trades(job.id, instrument)
        assert len(trades) == len(expected.trades) > 0
        pd.testing.assert_series_equal(trades["pnl"], expected.trades["pnl"], check_names=False)
    assert service.trades(job.id)["symbol"].nunique() == 428
    equity = service.equity(job.id, "BHP")  # a bare symbol with one listing
    assert len(equity) == len(BarStore(universe_bars).read("BHP.ASX", "1d"))
    files = stored_files(tmp_path / "results", job.id)
    assert len(files) == 428 and set(map(tuple, files.values())) == {
        ("equity.parquet", "trades.parquet")
    }
    page = service.report_html(job.id)
    assert "id='equity-chart'" in page and "class='series' data-points=" in page
    assert f"<td>{ranked[0].instrument}</td>" in page and "428 instruments" in page
    one = service.report_html(job.id, "AAPL.NASDAQ")
    assert "id='equity-chart'" in one and "id='price-chart'" in one
    assert service.progress(job.id).fraction == 1.0
    listed = service.list(strategy="sma_cross", instrument="AAPL", status="done")
    assert [b.id for b in listed.items] == [job.id] and listed.total == 1
    performance = service.strategy_performance("sma_cross")
    assert (performance.backtests, performance.results, performance.instruments) == (1, 428, 428)
    assert performance.best == {"backtest_id": job.id, **done.stats["best"]}


def test_a_portfolio_job_is_one_account_over_a_universe(
    ray_session: None, catalog: Catalog, tmp_path: Path, universe_bars: str
) -> None:
    service = make_service(catalog, tmp_path, universe_bars)
    spec = {**SMA, "universe": "etfs", "options": {"mode": "portfolio", "sort": "return_pct"}}
    job = service.submit(spec)
    done = service.run(job.id)
    assert done.status is JobStatus.DONE and len(job.instruments) == 61
    rows = service.results(job.id)
    assert [(r.instrument, r.rank) for r in rows] == [("portfolio", 1)]
    store = BarStore(universe_bars)
    expected = run_portfolio(
        store.read_many(job.instruments, "1d"), "sma_cross", SMA["params"], currencies="USD"
    )
    assert same_stats(rows[0].stats, expected.stats)
    assert done.stats["return_pct"] == pytest.approx(expected.stats["return_pct"], rel=1e-12)
    assert len(service.trades(job.id)) == len(expected.trades) > 0
    assert set(service.trades(job.id)["symbol"]) <= set(job.instruments)
    assert len(service.equity(job.id)) == len(expected.equity)
    page = service.report_html(job.id)
    assert "id='equity-chart'" in page and "portfolio" in page
    assert stored_files(tmp_path / "results", job.id).keys() == {"portfolio"}


def test_a_portfolio_of_two_currencies_is_refused_as_the_engine_refuses_it(
    catalog: Catalog, tmp_path: Path, universe_bars: str
) -> None:
    service = make_service(catalog, tmp_path, universe_bars)
    spec = {**SMA, "instruments": ["BHP.ASX", "AAPL.NASDAQ"], "options": {"mode": "portfolio"}}
    with pytest.raises(ValueError) as refused:
        service.submit(spec)
    assert refused.value.field == "instruments"
    assert "AUD" in str(refused.value) and "per_instrument" in str(refused.value)
    assert catalog.backtests.count() == 0


def test_a_cancelled_job_stops_and_nothing_is_written_after(
    ray_session: None, catalog: Catalog, tmp_path: Path, universe_bars: str
) -> None:
    import ray

    service = make_service(catalog, tmp_path, universe_bars)
    job = service.submit(ALL)
    seen: list[JobProgress] = []
    runner, outcome = _run_in_thread(service, job.id, seen.append)
    eventually(lambda: any(p.done for p in seen), timeout=120)
    other = Catalog(catalog.url)  # the API cancels from another process
    cancelled = other.backtests.cancel(job.id)
    other.dispose()
    final = _joined(runner, outcome)
    assert final.status is JobStatus.CANCELLED and final.stats is None
    rows = {r.instrument: r for r in catalog.backtests.results(job.id)}
    assert 0 < len(rows) < 428
    assert all(r.created_at <= cancelled.finished_at for r in rows.values())
    files = stored_files(tmp_path / "results", job.id)
    assert files.keys() == rows.keys()  # what was stored after the cancel was removed
    assert all(f == ["equity.parquet", "trades.parquet"] for f in files.values())
    # Every task has ended: the CPUs are free again, and nothing changed meanwhile.
    eventually(lambda: ray.available_resources().get("CPU") == 2.0, timeout=60)
    assert stored_files(tmp_path / "results", job.id) == files
    assert catalog.backtests.result_counts(job.id) == (len(rows), 0)
    assert service.get(job.id).status is JobStatus.CANCELLED
    with pytest.raises(Exception, match="already cancelled"):
        service.run(job.id)


def test_a_killed_worker_has_its_part_rerun_and_nothing_is_lost_or_doubled(
    ray_session: None, catalog: Catalog, tmp_path: Path, universe_bars: str
) -> None:
    service = make_service(catalog, tmp_path, universe_bars)
    job = service.submit(ALL)
    pids: list[int] = []

    def on_progress(p: JobProgress) -> None:
        if p.worker_pid and not pids:
            pids.append(p.worker_pid)
            os.kill(p.worker_pid, signal.SIGKILL)  # mid-batch: it has instruments in hand

    runner, outcome = _run_in_thread(service, job.id, on_progress)
    done = _joined(runner, outcome)
    assert pids and done.status is JobStatus.DONE
    fanout = done.artifacts["fanout"]
    assert fanout["rounds"] >= 2 and fanout["requeued"] > 0
    rows = catalog.backtests.results(job.id)
    assert len(rows) == len({r.instrument for r in rows}) == 428
    assert [r for r in rows if r.error] == []
    files = stored_files(tmp_path / "results", job.id)
    assert len(files) == 428 and all(
        f == ["equity.parquet", "trades.parquet"] for f in files.values()
    )  # no temp file of the killed writer is left
    by_id = {r.instrument: r for r in rows}
    for instrument in ("BHP.ASX", "MSFT.NASDAQ", "ZIP.ASX"):
        currency = "AUD" if instrument.endswith("ASX") else "USD"
        expected = direct(universe_bars, instrument, currency, commission="ibkr")
        assert same_stats(by_id[instrument].stats, expected.stats)
        assert len(service.trades(job.id, instrument)) == len(expected.trades)


BAD_SPECS = [
    ({**SMA, "strategy": "sma_cros", "instruments": "all"}, "strategy", "did you mean 'sma_cross'"),
    ({**SMA, "params": {"fats": 5}, "instruments": "all"}, "params.fats", "did you mean 'fast'"),
    ({**SMA, "params": {"fast": 60, "slow": 50}, "instruments": "all"}, "params.fast", "fast <"),
    ({**SMA, "params": {"fast": 0}, "instruments": "all"}, "params.fast", "between"),
    ({"rules": {"entry": "__import__('os')"}, "instruments": "all"}, "rules.entry", "not allowed"),
    ({"rules": {"entry": "close > 1", "code": "x"}, "instruments": "all"}, "rules.code", "Extra"),
    (
        {"rules": {"entry": " and ".join(["close > 1"] * 300)}, "instruments": "all"},
        "rules.entry",
        "1000 characters",
    ),
    (
        {"rules": {"entry": "close + " * 20 + "close > 1"}, "instruments": "all"},
        "rules.entry",
        "deeper than",
    ),
    (
        {"rules": {"entry": "close > 1", "name": "x" * 9000}, "instruments": "all"},
        "rules",
        "limit is 8192",
    ),
    ({**SMA, "instruments": [[[[["AAPL"]]]]]}, "spec", "nests deeper"),
    ({**SMA, "instruments": ["APPL"]}, "instruments", "did you mean AAPL.NASDAQ"),
    ({**SMA, "instruments": ["VEA"]}, "instruments", "VEA.ARCA"),
    ({**SMA, "instruments": ["AAPL.NYSE"]}, "instruments", "AAPL.NASDAQ"),
    ({**SMA, "instruments": ["NOBARS.ASX"]}, "instruments", "scizor collect history NOBARS.ASX"),
    ({**SMA, "instruments": []}, "instruments", "non-empty list"),
    ({**SMA}, "instruments", "'all'"),
    ({**SMA, "universe": "asx"}, "universe", "did you mean 'asx200'"),
    ({**SMA, "instruments": "all", "bar_size": "2d"}, "bar_size", "1d"),
    ({**SMA, "instruments": "all", "bar_size": "1h"}, "instruments", "collect"),
    ({**SMA, "instruments": "all", "start": "2024-02-30"}, "start", "YYYY-MM-DD"),
    ({**SMA, "instruments": "all", "start": "2024-01-01", "end": "2023-01-01"}, "end", "before"),
    ({**SMA, "instruments": "all", "costs": {"commission": "ibk"}}, "costs.commission", "ibkr"),
    ({**SMA, "instruments": "all", "costs": {"commission": 0.5}}, "costs.commission", "0.0999"),
    ({**SMA, "instruments": "all", "costs": {"slippage": 2}}, "costs.slippage", "slippage_bps"),
    ({**SMA, "instruments": "all", "costs": {"cash": -1}}, "costs.cash", "(0,"),
    ({**SMA, "instruments": "all", "options": {"mode": "portfolo"}}, "options.mode", "portfolio"),
    ({**SMA, "instruments": "all", "options": {"sort": "sharp"}}, "options.sort", "'sharpe'"),
    ({**SMA, "instruments": "all", "options": {"size": 2}}, "options.size", "(0, 1]"),
    ({**SMA, "instruments": "all", "options": {"size": {"shares": 1.5}}}, "options.size", "whole"),
    ({**SMA, "instruments": "all", "options": {"allow_short": "y"}}, "options.allow_short", "true"),
    ({**SMA, "instruments": "all", "colour": 1}, "colour", "known:"),
]


def test_every_bad_spec_names_its_field_and_nothing_is_written(
    catalog: Catalog, tmp_path: Path, universe_bars: str
) -> None:
    from storage.catalog import SymbolRecord

    service = make_service(catalog, tmp_path, universe_bars)
    no_bars = SymbolRecord(
        symbol="NOBARS", primary_exchange="ASX", exchange="ASX", currency="AUD", valid=True
    )
    catalog.symbols.upsert_many([no_bars])
    problems = []
    for spec, field, words in BAD_SPECS:
        try:
            service.submit(spec)
        except ValueError as exc:  # ValidationError, ParameterError, AmbiguousInstrument
            if getattr(exc, "field", None) != field or words not in str(exc):
                problems.append(f"{spec}: field {getattr(exc, 'field', None)!r}: {exc}")
        else:
            problems.append(f"{spec}: accepted")
    assert problems == []
    assert catalog.backtests.count() == 0
    assert stored_files(tmp_path / "results", 1) == {}


def test_a_job_whose_driver_died_resumes_with_only_what_is_missing(
    ray_session: None, catalog: Catalog, tmp_path: Path, universe_bars: str
) -> None:
    service = make_service(catalog, tmp_path, universe_bars)
    job = service.submit({**SMA, "universe": "etfs"})
    # What a driver killed after two instruments leaves: a running job with two rows.
    catalog.backtests.start(job.id)
    first = job.instruments[:2]
    catalog.backtests.save_results(job.id, [(i, {"sharpe": 99.0}, None) for i in first])
    seen: list[JobProgress] = []
    done = service.run(job.id, on_progress=seen.append)
    assert done.status is JobStatus.DONE and seen[0].done == 2 and seen[-1].done == 61
    rows = {r.instrument: r for r in catalog.backtests.results(job.id)}
    assert len(rows) == 61 and all(rows[i].stats == {"sharpe": 99.0} for i in first)
    assert stored_files(tmp_path / "results", job.id).keys() == set(rows) - set(first)
    assert done.stats["best"]["sharpe"] == 99.0  # the rows it found were kept, not redone
