"""Strategies and backtests: the research side of the catalog (optimizations:
:mod:`storage.catalog.optimizations`)."""

from __future__ import annotations

import builtins
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Text, cast, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.errors import Conflict, NotFound, ValidationError
from core.instruments import parse
from core.types import utcnow
from storage.catalog.db import Database
from storage.catalog.models import (
    BacktestResultRow,
    BacktestRow,
    Base,
    StrategyRow,
)
from storage.catalog.records import (
    BacktestRecord,
    JobStatus,
    StrategyKind,
    StrategyRecord,
)

RowT = TypeVar("RowT", bound=Base)

PORTFOLIO = "portfolio"
"""The ``backtest_results.instrument`` of a portfolio-mode job's one row."""


def get_row(session: Session, model: type[RowT], key: int, what: str) -> RowT:
    row = session.get(model, key)
    if row is None:
        raise NotFound(f"{what} {key} does not exist")
    return row


def ensure_finishable(status: str, what: str) -> None:
    if status in (JobStatus.DONE.value, JobStatus.FAILED.value, JobStatus.CANCELLED.value):
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


def json_safe(value: Any) -> Any:
    """Return ``value`` with every non-finite float (NaN, inf) replaced by None.

    Metrics are NaN where undefined (no trades, no losses); JSON has no NaN and PostgreSQL
    refuses it, so the catalog stores them as ``null``.
    """
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestResultRecord:
    """One instrument's (or the portfolio's) outcome of a backtest job.

    Attributes:
        backtest_id: The job.
        instrument: The canonical instrument id, or ``"portfolio"``.
        stats: The metrics (undefined ones are None); empty when ``error`` is set.
        error: Why this instrument has no result (no bars in the range, bad data, ...).
        created_at: When the row was (last) written.
    """

    backtest_id: int
    instrument: str
    stats: dict[str, Any]
    error: str | None
    created_at: datetime


ResultRow = tuple[str, dict[str, Any], str | None]
"""(instrument id or ``"portfolio"``, stats, error) of one row to store."""

_LIVE = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


class BacktestRepository:
    """Backtest jobs: queued -> running -> done | failed | cancelled, progress in [0, 1].

    Every change of a job's status is one conditional UPDATE, so a job cancelled by one
    process stays cancelled whatever its driver does next: results, progress and the final
    stats of a job that is no longer running are refused (``Conflict``), and nothing is
    written.
    """

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
            return _backtest(get_row(session, BacktestRow, backtest_id, "backtest"))

    def list(
        self,
        *,
        strategy: str | None = None,
        status: JobStatus | str | None = None,
        instrument: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> builtins.list[BacktestRecord]:
        """Return backtests newest first: of ``strategy``, in ``status``, over the canonical
        ``instrument``, created in ``[since, until)``; ``offset``/``limit`` (1..1000) page
        them, and :meth:`count` takes the same filters."""
        if not 1 <= limit <= 1000 or offset < 0:
            raise ValidationError(
                f"limit must be in 1..1000 and offset >= 0; got limit={limit}, offset={offset}",
                field="limit" if offset >= 0 else "offset",
            )
        stmt = select(BacktestRow).where(*_filters(strategy, status, instrument, since, until))
        stmt = stmt.order_by(BacktestRow.id.desc()).offset(offset).limit(limit)
        with self._db.transaction() as session:
            return [_backtest(row) for row in session.scalars(stmt)]

    def count(
        self,
        *,
        strategy: str | None = None,
        status: JobStatus | str | None = None,
        instrument: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
    ) -> int:
        """Return how many backtests match the filters of :meth:`list`."""
        where = _filters(strategy, status, instrument, since, until)
        stmt = select(func.count()).select_from(BacktestRow).where(*where)
        with self._db.transaction() as session:
            return int(session.scalar(stmt) or 0)

    def start(self, backtest_id: int) -> BacktestRecord:
        """Mark a queued backtest running (a running one stays running: its driver resumes).

        Raises:
            Conflict: if it is done, failed or cancelled.
        """
        return self._move(backtest_id, _LIVE, status=JobStatus.RUNNING.value)

    def update_progress(self, backtest_id: int, progress: float) -> BacktestRecord:
        """Set progress (0..1); a queued backtest becomes running."""
        _check_progress(progress)
        return self._move(
            backtest_id, _LIVE, status=JobStatus.RUNNING.value, progress=float(progress)
        )

    def save_results(
        self, backtest_id: int, rows: Sequence[ResultRow], *, progress: float | None = None
    ) -> int:
        """Store result rows of a running backtest (one per instrument, idempotent).

        A row for an instrument the job already has replaces it, so a part computed twice
        (a retried task) is stored once. Rows and progress are one transaction.

        Returns:
            The number of rows written.

        Raises:
            Conflict: if the backtest is not running (cancelled, done, failed, or still
                queued); nothing is written.
        """
        if progress is not None:
            _check_progress(progress)
        values = [
            {
                "backtest_id": backtest_id,
                "instrument": _result_key(instrument),
                "stats": json_safe(dict(stats)),
                "error": error,
                "created_at": utcnow(),
            }
            for instrument, stats, error in rows
        ]
        dialect = postgresql if self._db.dialect == "postgresql" else sqlite
        with self._db.transaction() as session:
            self._move_in(session, backtest_id, (JobStatus.RUNNING.value,), **_progress(progress))
            for at in range(0, len(values), 500):
                stmt = dialect.insert(BacktestResultRow).values(values[at : at + 500])
                stmt = stmt.on_conflict_do_update(
                    index_elements=["backtest_id", "instrument"],
                    set_={c: stmt.excluded[c] for c in ("stats", "error", "created_at")},
                )
                session.execute(stmt)
        return len(values)

    def results(self, backtest_id: int) -> builtins.list[BacktestResultRecord]:
        """Return a backtest's result rows, by instrument (NotFound if the job is absent)."""
        stmt = select(BacktestResultRow).where(BacktestResultRow.backtest_id == backtest_id)
        with self._db.transaction() as session:
            get_row(session, BacktestRow, backtest_id, "backtest")
            rows = session.scalars(stmt.order_by(BacktestResultRow.instrument))
            return [_result(row) for row in rows]

    def result_counts(self, backtest_id: int) -> tuple[int, int]:
        """Return (rows with stats, rows with an error) stored for a backtest."""
        failed = BacktestResultRow.error.is_not(None)
        stmt = (
            select(failed, func.count())
            .where(BacktestResultRow.backtest_id == backtest_id)
            .group_by(failed)
        )
        with self._db.transaction() as session:
            counts = {bool(k): int(n) for k, n in session.execute(stmt)}
        return counts.get(False, 0), counts.get(True, 0)

    def finish(
        self,
        backtest_id: int,
        *,
        stats: dict[str, Any],
        artifacts: dict[str, Any] | None = None,
        at: datetime | None = None,
    ) -> BacktestRecord:
        """Mark a backtest done with its stats and artifact paths (progress 1)."""
        return self._move(
            backtest_id,
            _LIVE,
            status=JobStatus.DONE.value,
            progress=1.0,
            stats=json_safe(stats),
            artifacts=json_safe(artifacts or {}),
            finished_at=at or utcnow(),
        )

    def fail(self, backtest_id: int, error: str, *, at: datetime | None = None) -> BacktestRecord:
        """Mark a backtest failed with ``error``."""
        return self._move(
            backtest_id,
            _LIVE,
            status=JobStatus.FAILED.value,
            error=error,
            finished_at=at or utcnow(),
        )

    def cancel(self, backtest_id: int, *, at: datetime | None = None) -> BacktestRecord:
        """Cancel a queued or running backtest; cancelling a cancelled one changes nothing.

        From this transaction on, no result, progress or stats of the job is accepted.

        Raises:
            Conflict: if it is already done or failed.
        """
        with self._db.transaction() as session:
            row = get_row(session, BacktestRow, backtest_id, "backtest")
            if row.status == JobStatus.CANCELLED.value:
                return _backtest(row)
            cancelled = JobStatus.CANCELLED.value
            return _backtest(
                self._move_in(
                    session, backtest_id, _LIVE, status=cancelled, finished_at=at or utcnow()
                )
            )

    def _move(self, backtest_id: int, allowed: tuple[str, ...], **values: Any) -> BacktestRecord:
        with self._db.transaction() as session:
            return _backtest(self._move_in(session, backtest_id, allowed, **values))

    @staticmethod
    def _move_in(
        session: Session, backtest_id: int, allowed: tuple[str, ...], **values: Any
    ) -> BacktestRow:
        """Apply ``values`` if the job's status is in ``allowed``, in one conditional UPDATE
        (it locks the row until the transaction ends); else raise Conflict or NotFound."""
        stmt = (
            update(BacktestRow)
            .where(BacktestRow.id == backtest_id, BacktestRow.status.in_(allowed))
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        moved = session.execute(stmt).rowcount  # type: ignore[attr-defined]
        row = session.get(BacktestRow, backtest_id, populate_existing=True)
        if row is None:
            raise NotFound(f"backtest {backtest_id} does not exist")
        if not moved:
            if row.status == JobStatus.QUEUED.value:
                raise Conflict(f"backtest {backtest_id} is queued, not running: start it first")
            ensure_finishable(row.status, f"backtest {backtest_id}")
        return row


def _filters(
    strategy: str | None,
    status: JobStatus | str | None,
    instrument: str | None,
    since: datetime | None,
    until: datetime | None,
) -> builtins.list[ColumnElement[bool]]:
    where: builtins.list[ColumnElement[bool]] = []
    if strategy is not None:
        where.append(BacktestRow.strategy == strategy)
    if status is not None:
        try:
            where.append(BacktestRow.status == JobStatus(status).value)
        except ValueError:
            known = ", ".join(s.value for s in JobStatus)
            raise ValidationError(
                f"status {status!r} is not one of {known}", field="status"
            ) from None
    if instrument is not None:
        # Ids hold no LIKE wildcards (core.instruments), and JSON quotes each list item.
        key = str(parse(instrument, field="instrument"))
        where.append(cast(BacktestRow.instruments, Text).like(f'%"{key}"%'))
    if since is not None:
        where.append(BacktestRow.created_at >= since)
    if until is not None:
        where.append(BacktestRow.created_at < until)
    return where


def _check_progress(progress: float) -> None:
    if not 0.0 <= progress <= 1.0:
        raise ValidationError(f"progress must be in [0, 1]; got {progress}", field="progress")


def _progress(progress: float | None) -> dict[str, Any]:
    # The status is set to itself at least: the UPDATE is what locks the job's row.
    values: dict[str, Any] = {"status": JobStatus.RUNNING.value}
    return values if progress is None else {**values, "progress": float(progress)}


def _result_key(instrument: str) -> str:
    return PORTFOLIO if instrument == PORTFOLIO else str(parse(instrument, field="instrument"))


def _result(row: BacktestResultRow) -> BacktestResultRecord:
    return BacktestResultRecord(
        backtest_id=row.backtest_id,
        instrument=row.instrument,
        stats=dict(row.stats or {}),
        error=row.error,
        created_at=row.created_at,
    )
