"""Pydantic models of the backtest routes: the accepted answer, jobs, progress, results.

The request body of ``POST /backtests`` is the job spec of :mod:`optimize.backtest_spec`
(plain JSON, checked field by field by ``BacktestService.submit``); the models here only give
it a size cap and an OpenAPI shape. Responses are built from the service's frozen records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from optimize.backtest_jobs import BacktestPage, JobProgress, RankedResult, StrategyPerformance
from storage.catalog.records import BacktestRecord

SPEC_EXAMPLE: dict[str, Any] = {
    "strategy": "sma_cross",
    "params": {"fast": 10, "slow": 50},
    "instruments": ["BHP.ASX", "CBA.ASX"],
    "bar_size": "1d",
    "start": "2021-01-01",
    "end": "2025-01-01",
    "costs": {"cash": 100000, "commission": "ibkr", "slippage_bps": 2},
    "options": {"mode": "per_instrument", "sort": "sharpe"},
}


class BacktestRequest(BaseModel):
    """A backtest job spec (see ``optimize.backtest_spec``): a library strategy and its
    parameters, or ``rules``; instruments or a universe; bar size, dates, costs, options.
    Every field is checked by the service; a bad one is a 422 naming its spec path."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [SPEC_EXAMPLE]})


class BacktestAccepted(BaseModel):
    """``202``: the job is queued and its driver submitted as a Ray Job."""

    backtest_id: int
    status: str = Field(examples=["queued"])
    status_url: str = Field(examples=["/backtests/7"])
    progress_url: str = Field(examples=["/backtests/7/progress"])
    job_id: str = Field(description="The Ray Job running the driver", examples=["backtest-..."])
    command: str = Field(description="The CLI command the job runs")


class BacktestView(BaseModel):
    """One backtest job: what was asked, where it stands, its summary once done."""

    id: int
    strategy: str
    params: dict[str, Any]
    instruments: list[str]
    bar_size: str
    start: datetime | None
    end: datetime | None
    costs: dict[str, Any]
    options: dict[str, Any]
    status: str
    progress: float
    stats: dict[str, Any] | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None

    @classmethod
    def of(cls, record: BacktestRecord) -> BacktestView:
        return cls(
            id=record.id, strategy=record.strategy, params=record.params,
            instruments=record.instruments, bar_size=record.bar_size, start=record.start,
            end=record.end, costs=record.costs, options=record.options,
            status=str(record.status), progress=record.progress, stats=record.stats,
            error=record.error, created_at=record.created_at, finished_at=record.finished_at,
        )  # fmt: skip


class BacktestPageView(BaseModel):
    """A page of backtest jobs, newest first, and how many match in all."""

    items: list[BacktestView]
    total: int
    limit: int
    offset: int
    next_offset: int | None

    @classmethod
    def of(cls, page: BacktestPage) -> BacktestPageView:
        after = page.offset + len(page.items)
        return cls(
            items=[BacktestView.of(r) for r in page.items], total=page.total, limit=page.limit,
            offset=page.offset, next_offset=after if after < page.total else None,
        )  # fmt: skip


class ProgressView(BaseModel):
    """Where a job stands: instruments done (with stats or an error) of the total."""

    backtest_id: int
    status: str
    done: int
    failed: int
    total: int
    fraction: float
    finished: bool = Field(description="True once done, failed or cancelled")

    @classmethod
    def of(cls, progress: JobProgress) -> ProgressView:
        status = str(progress.status)
        return cls(
            backtest_id=progress.backtest_id, status=status, done=progress.done,
            failed=progress.failed, total=progress.total, fraction=progress.fraction,
            finished=status in FINISHED,
        )  # fmt: skip


FINISHED = frozenset({"done", "failed", "cancelled"})
"""Statuses a job never leaves."""


class ResultView(BaseModel):
    """One ranked result row (an instrument, or ``portfolio``)."""

    rank: int | None
    instrument: str
    value: float | None
    stats: dict[str, Any]
    error: str | None

    @classmethod
    def of(cls, row: RankedResult) -> ResultView:
        return cls(rank=row.rank, instrument=row.instrument, value=row.value,
                   stats=row.stats, error=row.error)  # fmt: skip


class ResultsView(BaseModel):
    """A job's results ranked by its metric, best first (rows without a value last)."""

    backtest_id: int
    status: str
    metric: str
    results: list[ResultView]


class PerformanceView(BaseModel):
    """How a strategy did over every finished backtest of it."""

    strategy: str
    backtests: int
    results: int
    failed: int
    instruments: int
    metrics: dict[str, dict[str, float | None]]
    best: dict[str, Any] | None
    last_run: datetime | None

    @classmethod
    def of(cls, perf: StrategyPerformance) -> PerformanceView:
        return cls(
            strategy=perf.strategy, backtests=perf.backtests, results=perf.results,
            failed=perf.failed, instruments=perf.instruments, metrics=perf.metrics,
            best=perf.best, last_run=perf.last_run,
        )  # fmt: skip
