"""Pydantic models of the optimization routes: the accepted answer, jobs, trials.

The body of ``POST /optimizations`` is the study spec of :mod:`optimize.study_spec` (plus
``walk_forward``), checked field by field by ``OptimizationService.submit``; the models
here give it an OpenAPI shape. Responses are built from the service's records.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from optimize.optimization_jobs import OptimizationPage, TrialPage
from storage.catalog.records import OptimizationRecord

STUDY_EXAMPLE: dict[str, Any] = {
    "name": "sma-etfs",
    "strategy": "sma_cross",
    "universe": "etfs",
    "costs": {"commission": "ibkr"},
    "space": {"fast": {"low": 5, "high": 60, "step": 5}, "slow": {"low": 20, "high": 250}},
    "constraints": ["fast < slow"],
    "objectives": [{"metric": "sharpe", "direction": "maximize"}],
    "sampler": "tpe",
    "trials": 500,
    "seed": 7,
    "walk_forward": {"in_sample": "2Y", "out_of_sample": "6M", "anchored": False},
}


class OptimizationRequest(BaseModel):
    """A study spec (see ``optimize.study_spec``): the backtest fields (strategy or rules,
    instruments or universe, bar size, dates, costs), the space, constraints, objectives,
    sampler, trials, seed, and ``walk_forward``. A name that exists resumes that study."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [STUDY_EXAMPLE]})


class OptimizationAccepted(BaseModel):
    """``202``: the job is queued and its driver submitted as a Ray Job."""

    optimization_id: int
    study_name: str
    status: str = Field(examples=["queued"])
    status_url: str = Field(examples=["/optimizations/3"])
    trials_url: str = Field(examples=["/optimizations/3/trials"])
    job_id: str = Field(description="The Ray Job running the driver", examples=["optimize-..."])
    command: str = Field(description="The CLI command the job runs")


class OptimizationView(BaseModel):
    """One optimization: its spec, where it stands, its best and its verdict once done."""

    id: int
    study_name: str
    strategy: str
    objective: str
    status: str
    n_trials: int
    n_complete: int = Field(description="Trials done: COMPLETE, and pruned with pruning")
    n_failed: int
    progress: float
    best_params: dict[str, Any] | None
    best_value: float | None
    verdict: str | None = Field(description="Whether the best survives the search")
    overfitting: dict[str, Any] | None = Field(description="DSR, PSR, PBO, MinTRL ...")
    walk_forward: dict[str, Any] | None = Field(description="Folds, stitched equity, WFE")
    spec: dict[str, Any]
    job_id: str | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

    @classmethod
    def of(cls, record: OptimizationRecord) -> OptimizationView:
        report = record.report or {}
        return cls(
            id=record.id, study_name=record.study_name, strategy=record.strategy,
            objective=record.objective, status=str(record.status), n_trials=record.n_trials,
            n_complete=record.n_complete, n_failed=record.n_failed, progress=record.progress,
            best_params=record.best_params, best_value=record.best_value,
            verdict=report.get("verdict"), overfitting=report.get("overfitting"),
            walk_forward=report.get("walk_forward"), spec=record.spec,
            job_id=record.artifacts.get("job_id"), error=record.error,
            created_at=record.created_at, started_at=record.started_at,
            finished_at=record.finished_at,
        )  # fmt: skip


class OptimizationPageView(BaseModel):
    """A page of optimizations, newest first, and how many match in all."""

    items: list[OptimizationView]
    total: int
    limit: int
    offset: int
    next_offset: int | None

    @classmethod
    def of(cls, page: OptimizationPage) -> OptimizationPageView:
        after = page.offset + len(page.items)
        return cls(
            items=[OptimizationView.of(r) for r in page.items], total=page.total,
            limit=page.limit, offset=page.offset,
            next_offset=after if after < page.total else None,
        )  # fmt: skip


class TrialView(BaseModel):
    """One Optuna trial: its number, parameters, objective values, state and seconds."""

    number: int
    params: dict[str, Any]
    values: list[float | None] | None
    state: str
    seconds: float | None


class TrialPageView(BaseModel):
    """A page of a study's trials and how many match in all."""

    optimization_id: int
    items: list[TrialView]
    total: int
    limit: int
    offset: int
    next_offset: int | None

    @classmethod
    def of(cls, optimization_id: int, page: TrialPage) -> TrialPageView:
        after = page.offset + len(page.items)
        return cls(
            optimization_id=optimization_id, items=[TrialView(**t) for t in page.items],
            total=page.total, limit=page.limit, offset=page.offset,
            next_offset=after if after < page.total else None,
        )  # fmt: skip
