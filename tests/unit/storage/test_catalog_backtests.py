"""Backtest jobs in the catalog on SQLite and PostgreSQL: filters and pages, the status moves
(cancellation included), and result rows stored once per job and instrument."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from core.errors import Conflict, NotFound, ValidationError
from storage.catalog import JobStatus
from storage.catalog.research import PORTFOLIO, json_safe

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _rows(catalog, table: str) -> int:
    with catalog.db.engine.connect() as conn:
        return conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()


def _job(catalog, strategy="sma_cross", instruments=("AAPL.NASDAQ", "BHP.ASX"), at=T0):
    return catalog.backtests.create(
        strategy, instruments=list(instruments), bar_size="1d", options={"mode": "x"}, at=at
    )


def test_list_filters_pages_and_counts(catalog):
    a = _job(catalog, at=T0)
    b = _job(catalog, "buy_hold", ["SPY.ARCA"], at=T0 + timedelta(days=1))
    c = _job(catalog, "sma_cross", ["SPY.ARCA", "BHP.ASX"], at=T0 + timedelta(days=2))
    catalog.backtests.start(c.id)
    listed = catalog.backtests.list
    assert [r.id for r in listed()] == [c.id, b.id, a.id]
    assert [r.id for r in listed(strategy="sma_cross")] == [c.id, a.id]
    assert [r.id for r in listed(instrument="BHP.ASX")] == [c.id, a.id]
    assert [r.id for r in listed(instrument="spy.arca", strategy="buy_hold")] == [b.id]
    assert [r.id for r in listed(status="running")] == [c.id]
    assert [r.id for r in listed(since=T0 + timedelta(days=1))] == [c.id, b.id]
    assert [r.id for r in listed(until=T0 + timedelta(days=1))] == [a.id]
    assert [r.id for r in listed(offset=1, limit=1)] == [b.id]
    assert catalog.backtests.count() == 3
    assert catalog.backtests.count(instrument="BHP.ASX", status=JobStatus.QUEUED) == 1
    assert listed(instrument="BHP.NASDAQ") == []  # an id is matched whole, never a prefix
    with pytest.raises(ValidationError) as bad:
        listed(status="finished")
    assert bad.value.field == "status" and "cancelled" in str(bad.value)
    with pytest.raises(ValidationError) as bad:
        listed(limit=0)
    assert bad.value.field == "limit"
    with pytest.raises(ValidationError) as bad:
        listed(instrument="BHP")
    assert bad.value.field == "instrument"


def test_results_are_stored_once_per_job_and_instrument(catalog):
    job = _job(catalog)
    catalog.backtests.start(job.id)
    nan = float("nan")
    wrote = catalog.backtests.save_results(
        job.id,
        [("AAPL.NASDAQ", {"sharpe": 1.5, "sortino": nan}, None), ("BHP.ASX", {}, "no bars")],
        progress=0.5,
    )
    assert wrote == 2 and catalog.backtests.get(job.id).progress == 0.5
    # The same instrument again (a retried task) replaces its row: one row, the last stats.
    catalog.backtests.save_results(job.id, [("aapl.nasdaq", {"sharpe": 2.0}, None)])
    results = catalog.backtests.results(job.id)
    assert [(r.instrument, r.stats, r.error) for r in results] == [
        ("AAPL.NASDAQ", {"sharpe": 2.0}, None),
        ("BHP.ASX", {}, "no bars"),
    ]
    assert catalog.backtests.result_counts(job.id) == (1, 1)
    assert _rows(catalog, "backtest_results") == 2
    # NaN metrics are stored as null (PostgreSQL refuses NaN in JSON).
    catalog.backtests.save_results(job.id, [("AAPL.NASDAQ", {"a": nan, "b": [math.inf]}, None)])
    assert catalog.backtests.results(job.id)[0].stats == {"a": None, "b": [None]}
    with pytest.raises(ValidationError) as bad:
        catalog.backtests.save_results(job.id, [("AAPL", {}, None)])
    assert bad.value.field == "instrument"
    assert _rows(catalog, "backtest_results") == 2


def test_a_portfolio_job_has_one_portfolio_row(catalog):
    job = _job(catalog)
    catalog.backtests.start(job.id)
    catalog.backtests.save_results(job.id, [(PORTFOLIO, {"sharpe": 0.7}, None)], progress=1.0)
    done = catalog.backtests.finish(job.id, stats={"sharpe": 0.7, "x": float("nan")})
    assert done.stats == {"sharpe": 0.7, "x": None} and done.status is JobStatus.DONE
    assert [r.instrument for r in catalog.backtests.results(job.id)] == ["portfolio"]


def test_results_of_a_job_that_is_not_running_are_refused_and_nothing_is_written(catalog):
    job = _job(catalog)
    with pytest.raises(Conflict, match="queued, not running"):
        catalog.backtests.save_results(job.id, [("AAPL.NASDAQ", {"sharpe": 1.0}, None)])
    catalog.backtests.start(job.id)
    catalog.backtests.save_results(job.id, [("AAPL.NASDAQ", {"sharpe": 1.0}, None)])
    cancelled = catalog.backtests.cancel(job.id, at=T0)
    assert (cancelled.status, cancelled.finished_at) == (JobStatus.CANCELLED, T0)
    with pytest.raises(Conflict, match="already cancelled"):
        catalog.backtests.save_results(job.id, [("BHP.ASX", {"sharpe": 1.0}, None)], progress=1)
    assert [r.instrument for r in catalog.backtests.results(job.id)] == ["AAPL.NASDAQ"]
    for late in (
        lambda: catalog.backtests.update_progress(job.id, 0.9),
        lambda: catalog.backtests.finish(job.id, stats={}),
        lambda: catalog.backtests.fail(job.id, "late"),
        lambda: catalog.backtests.start(job.id),
    ):
        with pytest.raises(Conflict, match="already cancelled"):
            late()
    again = catalog.backtests.get(job.id)
    assert (again.status, again.progress, again.stats) == (JobStatus.CANCELLED, 0.0, None)


def test_cancel_is_idempotent_and_refused_once_finished(catalog):
    queued = _job(catalog)
    assert catalog.backtests.cancel(queued.id).status is JobStatus.CANCELLED
    first = catalog.backtests.get(queued.id).finished_at
    assert catalog.backtests.cancel(queued.id).finished_at == first  # unchanged
    done = _job(catalog)
    catalog.backtests.finish(done.id, stats={})
    with pytest.raises(Conflict, match="already done"):
        catalog.backtests.cancel(done.id)
    with pytest.raises(NotFound, match="backtest 999"):
        catalog.backtests.cancel(999)
    with pytest.raises(NotFound, match="backtest 999"):
        catalog.backtests.results(999)


def test_start_resumes_a_running_job_and_progress_is_checked(catalog):
    job = _job(catalog)
    assert catalog.backtests.start(job.id).status is JobStatus.RUNNING
    assert catalog.backtests.start(job.id).status is JobStatus.RUNNING  # a driver resumes
    with pytest.raises(ValidationError) as bad:
        catalog.backtests.save_results(job.id, [], progress=1.5)
    assert bad.value.field == "progress"
    assert catalog.backtests.result_counts(job.id) == (0, 0)


def test_json_safe_replaces_only_non_finite_floats():
    assert json_safe({"a": 1, "b": float("-inf"), "c": {"d": (1.5, float("nan"))}}) == {
        "a": 1,
        "b": None,
        "c": {"d": [1.5, None]},
    }
