"""Ranking a job's results, its summary, a strategy's record, and how batches are sized."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from optimize.backtest_fanout import (
    MAX_BATCH,
    FanOutReport,
    batches,
    estimate_seconds,
    min_batch,
)
from optimize.backtest_ranking import aggregate, performance, rank, summary


@dataclass
class Row:
    instrument: str
    stats: dict[str, Any]
    error: str | None = None


@dataclass
class Job:
    id: int
    instruments: list[str]
    finished_at: datetime | None = None
    options: dict[str, Any] = field(default_factory=dict)


ROWS = [
    Row("A.ASX", {"sharpe": 0.5, "max_drawdown_pct": -30.0, "volatility_pct": 20.0}),
    Row("B.ASX", {"sharpe": 1.5, "max_drawdown_pct": -10.0, "volatility_pct": 30.0}),
    Row("C.ASX", {}, error="no bars"),
    Row("D.ASX", {"sharpe": None, "max_drawdown_pct": -50.0, "volatility_pct": 10.0}),
    Row("E.ASX", {"sharpe": 0.5, "max_drawdown_pct": -20.0, "volatility_pct": 25.0}),
]


def test_rank_puts_the_best_first_and_undefined_or_failed_rows_last():
    ranked = rank(ROWS, "sharpe")
    assert [(r.rank, r.instrument, r.value) for r in ranked] == [
        (1, "B.ASX", 1.5),
        (2, "A.ASX", 0.5),  # a tie keeps the instruments' order
        (3, "E.ASX", 0.5),
        (None, "C.ASX", None),
        (None, "D.ASX", None),
    ]
    assert ranked[3].error == "no bars"
    # A drawdown is negative: the one closest to zero ranks first.
    assert [r.instrument for r in rank(ROWS, "max_drawdown_pct")][:2] == ["B.ASX", "E.ASX"]
    # Volatility ranks the smallest first.
    assert rank(ROWS, "volatility_pct")[0].instrument == "D.ASX"


def test_a_per_instrument_summary_has_counts_extremes_and_aggregates():
    got = summary(ROWS, mode="per_instrument", metric="sharpe", instruments=5)
    assert (got["ok"], got["failed"], got["instruments"]) == (4, 1, 5)
    assert got["best"] == {"instrument": "B.ASX", "sharpe": 1.5}
    assert got["worst"] == {"instrument": "E.ASX", "sharpe": 0.5}
    assert got["metrics"]["sharpe"] == {
        "mean": pytest.approx(2.5 / 3),
        "median": 0.5,
        "min": 0.5,
        "max": 1.5,
        "count": 3,
    }
    assert got["metrics"]["n_trades"]["count"] == 0


def test_a_portfolio_summary_is_its_portfolio_stats():
    rows = [Row("portfolio", {"sharpe": 0.9, "return_pct": 12.0})]
    got = summary(rows, mode="portfolio", metric="sharpe", instruments=61)
    assert got == {"mode": "portfolio", "sort": "sharpe", "instruments": 61, "ok": 1,
                   "failed": 0, "sharpe": 0.9, "return_pct": 12.0}  # fmt: skip
    failed = summary([Row("portfolio", {}, "no bars")], mode="portfolio", metric="sharpe",
                     instruments=2)  # fmt: skip
    assert (failed["ok"], failed["failed"], "sharpe" in failed) == (0, 1, False)


def test_aggregate_skips_undefined_values():
    stats = [{"x": 1.0}, {"x": None}, {"x": float("nan")}, {"x": 3.0}, {}]
    assert aggregate(stats, ["x", "y"]) == {
        "x": {"mean": 2.0, "median": 2.0, "min": 1.0, "max": 3.0, "count": 2},
        "y": {"mean": None, "median": None, "min": None, "max": None, "count": 0},
    }


def test_a_strategy_record_spans_its_jobs():
    t1, t2 = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC)
    jobs = [
        (Job(1, ["A.ASX", "B.ASX", "C.ASX"], t1), ROWS[:3]),
        (Job(2, ["B.ASX", "Z.ASX"], t2), [Row("portfolio", {"sharpe": 2.0})]),
    ]
    got = performance("sma_cross", jobs)
    assert (got.backtests, got.results, got.failed, got.instruments) == (2, 3, 1, 4)
    assert got.best == {"backtest_id": 2, "instrument": "portfolio", "sharpe": 2.0}
    assert got.metrics["sharpe"]["count"] == 3 and got.last_run == t2


def test_batches_shrink_cover_every_instrument_once_and_respect_the_bounds():
    each = estimate_seconds("1d", None, None)
    names = [f"S{i}.ASX" for i in range(428)]
    parts = batches(names, workers=2, seconds_each=each)
    sizes = [len(p) for p in parts]
    assert [i for p in parts for i in p] == names
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == 107  # 428 / (2 x 2)
    assert min(sizes[:-1]) >= min_batch(each) and len(parts) >= 2 * 2
    # Long instruments (a year of 1-minute bars) get small batches; tiny ones never exceed the cap.
    minute = estimate_seconds("1m", datetime(2024, 1, 1), datetime(2025, 1, 1))
    assert minute > 0.1 and min_batch(minute) == 2
    assert max(len(p) for p in batches(names * 20, workers=1, seconds_each=1e-5)) == MAX_BATCH
    assert batches([], workers=2, seconds_each=each) == []


def test_the_overhead_is_the_idle_share_of_the_workers_in_use():
    report = FanOutReport(tasks=8, workers=2, wall_seconds=2.0, busy_seconds=3.6)
    assert report.overhead == pytest.approx(0.1)
    one_task = FanOutReport(tasks=1, workers=2, wall_seconds=2.0, busy_seconds=1.9)
    assert one_task.overhead == pytest.approx(0.05)  # one task keeps one worker busy
    assert report.as_dict()["ray_overhead"] == 0.1
