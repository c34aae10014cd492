"""Optimization jobs: one row per Optuna study run through the platform.

The study itself (its trials) lives in Optuna's own tables in the same database; a row here
holds what the platform adds: the spec it was submitted with, the status a driver moves
through (queued -> running -> done | failed | cancelled), trial counts and progress, the
best parameters and the report summary, and the Ray Job and sweep figures (``artifacts``).
Status moves are conditional UPDATEs, so a cancelled job's driver cannot finish it later.
"""

from __future__ import annotations

import builtins
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from core.errors import Conflict, NotFound, ValidationError
from core.types import utcnow
from storage.catalog.db import Database
from storage.catalog.models import OptimizationRow
from storage.catalog.records import JobStatus, OptimizationRecord
from storage.catalog.research import ensure_finishable, get_row, json_safe

LIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
ENDED = (JobStatus.DONE.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value)


def _record(row: OptimizationRow) -> OptimizationRecord:
    return OptimizationRecord(
        id=row.id, study_name=row.study_name, strategy=row.strategy, space=row.space,
        objective=row.objective, n_trials=row.n_trials, status=JobStatus(row.status),
        best_params=row.best_params, best_value=row.best_value, report=row.report,
        error=row.error, created_at=row.created_at, finished_at=row.finished_at,
        spec=dict(row.spec or {}), progress=row.progress, n_complete=row.n_complete,
        n_failed=row.n_failed, artifacts=dict(row.artifacts or {}), started_at=row.started_at,
    )  # fmt: skip


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
        spec: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> OptimizationRecord:
        """Queue an optimization.

        Raises:
            Conflict: ``study_name`` is taken (resume that one with :meth:`requeue`).
            ValidationError: ``n_trials`` is not positive.
        """
        if n_trials <= 0:
            raise ValidationError(f"n_trials must be positive, got {n_trials}", field="trials")
        if self.find(study_name) is not None:
            raise Conflict(f"an optimization named {study_name!r} exists already")
        row = OptimizationRow(
            study_name=study_name, strategy=strategy, space=json_safe(space),
            objective=objective, n_trials=n_trials, status=JobStatus.QUEUED.value,
            created_at=at or utcnow(), spec=json_safe(spec or {}), progress=0.0,
            n_complete=0, n_failed=0, artifacts={},
        )  # fmt: skip
        with self._db.transaction() as session:
            session.add(row)
            session.flush()
            return _record(row)

    def requeue(
        self, optimization_id: int, *, n_trials: int, spec: dict[str, Any]
    ) -> OptimizationRecord:
        """Queue an ended optimization again to resume its study up to ``n_trials``.

        Raises:
            Conflict: it is queued or running.
        """
        with self._db.transaction() as session:
            row = self._moved(session, optimization_id, ENDED, status=JobStatus.QUEUED.value,
                              n_trials=n_trials, spec=json_safe(spec), error=None,
                              finished_at=None)  # fmt: skip
            return _record(row)

    def get(self, optimization_id: int) -> OptimizationRecord:
        """Return an optimization (NotFound if absent)."""
        with self._db.transaction() as session:
            return _record(get_row(session, OptimizationRow, optimization_id, "optimization"))

    def find(self, study_name: str) -> OptimizationRecord | None:
        """The optimization of the study ``study_name``, if there is one."""
        stmt = select(OptimizationRow).where(OptimizationRow.study_name == study_name)
        with self._db.transaction() as session:
            row = session.scalars(stmt).first()
            return None if row is None else _record(row)

    def list(
        self,
        *,
        strategy: str | None = None,
        status: JobStatus | str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> builtins.list[OptimizationRecord]:
        """The optimizations, newest first, filtered."""
        stmt = select(OptimizationRow).where(*_where(strategy, status))
        stmt = stmt.order_by(OptimizationRow.id.desc()).offset(offset).limit(limit)
        with self._db.transaction() as session:
            return [_record(row) for row in session.scalars(stmt)]

    def count(self, *, strategy: str | None = None, status: JobStatus | str | None = None) -> int:
        """How many optimizations match the filters."""
        stmt = select(func.count()).select_from(OptimizationRow).where(*_where(strategy, status))
        with self._db.transaction() as session:
            return int(session.scalar(stmt) or 0)

    def start(self, optimization_id: int, *, at: datetime | None = None) -> OptimizationRecord:
        """Mark a queued optimization running (a running one stays so: its driver resumes).

        Raises:
            Conflict: it is done, failed or cancelled.
        """
        with self._db.transaction() as session:
            row = self._moved(session, optimization_id, LIVE, status=JobStatus.RUNNING.value,
                              started_at=at or utcnow())  # fmt: skip
            return _record(row)

    def update_progress(
        self, optimization_id: int, *, n_complete: int, n_failed: int, total: int
    ) -> OptimizationRecord:
        """Record the trial counts of a running optimization (Conflict once it ended)."""
        progress = min(1.0, max(0.0, n_complete / total)) if total > 0 else 0.0
        with self._db.transaction() as session:
            row = self._moved(session, optimization_id, (JobStatus.RUNNING.value,),
                              status=JobStatus.RUNNING.value, n_complete=n_complete,
                              n_failed=n_failed, progress=progress)  # fmt: skip
            return _record(row)

    def set_artifacts(self, optimization_id: int, **values: Any) -> OptimizationRecord:
        """Merge ``values`` into the optimization's artifacts (the Ray Job, figures)."""
        with self._db.transaction() as session:
            row = get_row(session, OptimizationRow, optimization_id, "optimization")
            row.artifacts = json_safe({**(row.artifacts or {}), **values})
            session.flush()
            return _record(row)

    def finish(
        self,
        optimization_id: int,
        *,
        best_params: dict[str, Any],
        best_value: float | None,
        report: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> OptimizationRecord:
        """Mark a running optimization done with its best parameters, value and report."""
        with self._db.transaction() as session:
            row = self._moved(session, optimization_id, (JobStatus.RUNNING.value,),
                              status=JobStatus.DONE.value, best_params=json_safe(best_params),
                              best_value=best_value, report=json_safe(report),
                              finished_at=at or utcnow())  # fmt: skip
            return _record(row)

    def fail(
        self, optimization_id: int, error: str, *, at: datetime | None = None
    ) -> OptimizationRecord:
        """Mark a queued or running optimization failed with ``error``."""
        with self._db.transaction() as session:
            row = self._moved(session, optimization_id, LIVE, status=JobStatus.FAILED.value,
                              error=error, finished_at=at or utcnow())  # fmt: skip
            return _record(row)

    def cancel(self, optimization_id: int, *, at: datetime | None = None) -> OptimizationRecord:
        """Cancel a queued or running optimization; cancelling a cancelled one changes nothing.

        Raises:
            Conflict: it is done or failed already.
        """
        with self._db.transaction() as session:
            row = get_row(session, OptimizationRow, optimization_id, "optimization")
            if row.status == JobStatus.CANCELLED.value:
                return _record(row)
            row = self._moved(session, optimization_id, LIVE, status=JobStatus.CANCELLED.value,
                              finished_at=at or utcnow())  # fmt: skip
            return _record(row)

    @staticmethod
    def _moved(
        session: Session, optimization_id: int, allowed: tuple[str, ...], **values: Any
    ) -> OptimizationRow:
        """Apply ``values`` if the status is in ``allowed`` (one conditional UPDATE, which
        locks the row to the end of the transaction); else Conflict or NotFound."""
        stmt = (
            update(OptimizationRow)
            .where(OptimizationRow.id == optimization_id, OptimizationRow.status.in_(allowed))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        moved = session.execute(stmt).rowcount  # type: ignore[attr-defined]
        row = session.get(OptimizationRow, optimization_id, populate_existing=True)
        if row is None:
            raise NotFound(f"optimization {optimization_id} does not exist")
        if not moved:
            what = f"optimization {optimization_id}"
            if row.status in LIVE:
                raise Conflict(f"{what} is {row.status}; it cannot do that while it is")
            ensure_finishable(row.status, what)
        return row


def _where(strategy: str | None, status: JobStatus | str | None) -> builtins.list[Any]:
    where: builtins.list[Any] = []
    if strategy is not None:
        where.append(OptimizationRow.strategy == strategy)
    if status is not None:
        try:
            where.append(OptimizationRow.status == JobStatus(status).value)
        except ValueError:
            known = ", ".join(s.value for s in JobStatus)
            raise ValidationError(
                f"status {status!r} is not one of {known}", field="status"
            ) from None
    return where
