"""Strategies, backtests and optimizations: the research side of the catalog."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.errors import Conflict, NotFound, ValidationError
from core.instruments import parse
from core.types import utcnow
from storage.catalog.db import Database
from storage.catalog.models import BacktestRow, Base, OptimizationRow, StrategyRow
from storage.catalog.records import (
    BacktestRecord,
    JobStatus,
    OptimizationRecord,
    StrategyKind,
    StrategyRecord,
)

RowT = TypeVar("RowT", bound=Base)


def _get(session: Session, model: type[RowT], key: int, what: str) -> RowT:
    row = session.get(model, key)
    if row is None:
        raise NotFound(f"{what} {key} does not exist")
    return row


def _finishable(status: str, what: str) -> None:
    if status in (JobStatus.DONE.value, JobStatus.FAILED.value):
        raise Conflict(f"{what} is already {status}; it cannot change any more")


class StrategyRepository:
    """Named strategies (library references and rule specs)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def add(
        self,
        name: str,
        *,
        kind: StrategyKind | str,
        spec: dict[str, Any],
        at: datetime | None = None,
    ) -> StrategyRecord:
        """Store a new strategy.

        Raises:
            Conflict: if a strategy with this name exists.
        """
        with self._db.transaction() as session:
            row = StrategyRow(
                name=name, kind=StrategyKind(kind).value, spec=spec, created_at=at or utcnow()
            )
            session.add(row)
            session.flush()
            return self._record(row)

    def get(self, name: str) -> StrategyRecord:
        """Return a strategy by name (NotFound if absent)."""
        with self._db.transaction() as session:
            row = session.scalars(select(StrategyRow).where(StrategyRow.name == name)).first()
            if row is None:
                raise NotFound(f"strategy {name!r} is not in the catalog")
            return self._record(row)

    def list(self) -> builtins.list[StrategyRecord]:
        """Return every stored strategy, by name."""
        with self._db.transaction() as session:
            rows = session.scalars(select(StrategyRow).order_by(StrategyRow.name))
            return [self._record(row) for row in rows]

    @staticmethod
    def _record(row: StrategyRow) -> StrategyRecord:
        return StrategyRecord(
            id=row.id,
            name=row.name,
            kind=StrategyKind(row.kind),
            spec=row.spec,
            created_at=row.created_at,
        )


def _backtest(row: BacktestRow) -> BacktestRecord:
    return BacktestRecord(
        id=row.id,
        strategy=row.strategy,
        params=row.params,
        instruments=list(row.instruments),
        bar_size=row.bar_size,
        start=row.start,
        end=row.end,
        costs=row.costs,
        status=JobStatus(row.status),
        progress=row.progress,
        stats=row.stats,
        error=row.error,
        artifacts=row.artifacts,
        created_at=row.created_at,
        finished_at=row.finished_at,
        options=dict(row.options or {}),
    )


class BacktestRepository:
    """Backtest jobs: queued → running → done | failed, with progress in [0, 1]."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        strategy: str,
        *,
        instruments: Sequence[str],
        bar_size: str,
        params: dict[str, Any] | None = None,
        start: datetime | None = None,
        end: datetime | None = None,
        costs: dict[str, Any] | None = None,
        options: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> BacktestRecord:
        """Queue a backtest and return it (with its new id)."""
        if not instruments:
            raise ValidationError("a backtest needs at least one instrument", field="instruments")
        row = BacktestRow(
            strategy=strategy,
            params=params or {},
            instruments=list(
                dict.fromkeys(str(parse(i, field="instruments")) for i in instruments)
            ),
            bar_size=bar_size,
            start=start,
            end=end,
            costs=costs or {},
            options=options or {},
            status=JobStatus.QUEUED.value,
            progress=0.0,
            artifacts={},
            created_at=at or utcnow(),
        )
        with self._db.transaction() as session:
            session.add(row)
            session.flush()
            return _backtest(row)

    def get(self, backtest_id: int) -> BacktestRecord:
        """Return a backtest (NotFound if absent)."""
        with self._db.transaction() as session:
            return _backtest(_get(session, BacktestRow, backtest_id, "backtest"))

    def list(
        self, *, strategy: str | None = None, status: JobStatus | None = None, limit: int = 100
    ) -> builtins.list[BacktestRecord]:
        """Return the newest backtests first, optionally filtered."""
        stmt = select(BacktestRow).order_by(BacktestRow.id.desc()).limit(limit)
        if strategy is not None:
            stmt = stmt.where(BacktestRow.strategy == strategy)
        if status is not None:
            stmt = stmt.where(BacktestRow.status == JobStatus(status).value)
        with self._db.transaction() as session:
            return [_backtest(row) for row in session.scalars(stmt)]

    def update_progress(self, backtest_id: int, progress: float) -> BacktestRecord:
        """Set progress (0..1); a queued backtest becomes running."""
        if not 0.0 <= progress <= 1.0:
            raise ValidationError(f"progress must be in [0, 1]; got {progress}", field="progress")
        with self._db.transaction() as session:
            row = _get(session, BacktestRow, backtest_id, "backtest")
            _finishable(row.status, f"backtest {backtest_id}")
            row.status, row.progress = JobStatus.RUNNING.value, progress
            session.flush()
            return _backtest(row)

    def finish(
        self,
        backtest_id: int,
        *,
        stats: dict[str, Any],
        artifacts: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> BacktestRecord:
        """Mark a backtest done with its stats and artifact paths (progress 1)."""
        with self._db.transaction() as session:
            row = _get(session, BacktestRow, backtest_id, "backtest")
            _finishable(row.status, f"backtest {backtest_id}")
            row.status, row.progress, row.stats = JobStatus.DONE.value, 1.0, stats
            row.artifacts, row.finished_at = artifacts or {}, at or utcnow()
            session.flush()
            return _backtest(row)

    def fail(self, backtest_id: int, error: str, *, at: datetime | None = None) -> BacktestRecord:
        """Mark a backtest failed with ``error``."""
        with self._db.transaction() as session:
            row = _get(session, BacktestRow, backtest_id, "backtest")
            _finishable(row.status, f"backtest {backtest_id}")
            row.status, row.error, row.finished_at = JobStatus.FAILED.value, error, at or utcnow()
            session.flush()
            return _backtest(row)


def _optimization(row: OptimizationRow) -> OptimizationRecord:
    return OptimizationRecord(
        id=row.id,
        study_name=row.study_name,
        strategy=row.strategy,
        space=row.space,
        objective=row.objective,
        n_trials=row.n_trials,
        status=JobStatus(row.status),
        best_params=row.best_params,
        best_value=row.best_value,
        report=row.report,
        error=row.error,
        created_at=row.created_at,
        finished_at=row.finished_at,
    )


class OptimizationRepository:
    """Optimization jobs (the Optuna study itself lives in Optuna's own tables)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        study_name: str,
        *,
        strategy: str,
        space: dict[str, Any],
        objective: str,
        n_trials: int,
        at: datetime | None = None,
    ) -> OptimizationRecord:
        """Queue an optimization (Conflict if ``study_name`` is taken)."""
        row = OptimizationRow(
            study_name=study_name,
            strategy=strategy,
            space=space,
            objective=objective,
            n_trials=n_trials,
            status=JobStatus.QUEUED.value,
            created_at=at or utcnow(),
        )
        with self._db.transaction() as session:
            session.add(row)
            session.flush()
            return _optimization(row)

    def get(self, optimization_id: int) -> OptimizationRecord:
        """Return an optimization (NotFound if absent)."""
        with self._db.transaction() as session:
            return _optimization(_get(session, OptimizationRow, optimization_id, "optimization"))

    def list(self, *, limit: int = 100) -> builtins.list[OptimizationRecord]:
        """Return the newest optimizations first."""
        stmt = select(OptimizationRow).order_by(OptimizationRow.id.desc()).limit(limit)
        with self._db.transaction() as session:
            return [_optimization(row) for row in session.scalars(stmt)]

    def start(self, optimization_id: int) -> OptimizationRecord:
        """Mark an optimization running."""
        with self._db.transaction() as session:
            row = _get(session, OptimizationRow, optimization_id, "optimization")
            _finishable(row.status, f"optimization {optimization_id}")
            row.status = JobStatus.RUNNING.value
            session.flush()
            return _optimization(row)

    def finish(
        self,
        optimization_id: int,
        *,
        best_params: dict[str, Any],
        best_value: float,
        report: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> OptimizationRecord:
        """Mark an optimization done with its best parameters, value and report."""
        with self._db.transaction() as session:
            row = _get(session, OptimizationRow, optimization_id, "optimization")
            _finishable(row.status, f"optimization {optimization_id}")
            row.status, row.best_params, row.best_value = (
                JobStatus.DONE.value,
                best_params,
                best_value,
            )
            row.report, row.finished_at = report, at or utcnow()
            session.flush()
            return _optimization(row)

    def fail(
        self, optimization_id: int, error: str, *, at: datetime | None = None
    ) -> OptimizationRecord:
        """Mark an optimization failed with ``error``."""
        with self._db.transaction() as session:
            row = _get(session, OptimizationRow, optimization_id, "optimization")
            _finishable(row.status, f"optimization {optimization_id}")
            row.status, row.error, row.finished_at = JobStatus.FAILED.value, error, at or utcnow()
            session.flush()
            return _optimization(row)
