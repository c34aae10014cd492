"""Collection runs: one row per run, one item per (instrument, bar size, range) to fetch.

A run survives a crash: items left ``pending`` or ``running`` are returned again by
:meth:`CollectionRunRepository.pending_items`, so a rerun picks up where it stopped.

One run of a kind works at a time. A running run holds a lease (``owner``, ``lease_until``)
that its driver renews while it works (:meth:`CollectionRunRepository.renew`). Creating a
run of the same kind while another's lease holds is a :class:`~core.errors.Conflict` naming
the owner; a run whose lease ran out (its driver was killed) is closed as interrupted first.
The database holds one running run per kind (revision 0004), so two drivers starting at the
same moment cannot both win.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.barsize import bar_size as parse_bar_size
from core.errors import Conflict, NotFound, ValidationError
from core.instruments import parse
from core.types import utcnow
from storage.catalog.db import Database
from storage.catalog.models import RUNNING_RUN_INDEX, CollectionItemRow, CollectionRunRow
from storage.catalog.records import CollectionItem, CollectionRun, ItemStatus, RunStatus

ItemSpec = tuple[str, str, datetime | None, datetime | None]
"""(instrument id, bar_size, start, end) of one item to collect."""

LEASE = timedelta(minutes=2)
"""How long a run's lease lasts unless renewed; drivers renew it every few seconds."""


def _item(row: CollectionItemRow) -> CollectionItem:
    return CollectionItem(
        id=row.id,
        run_id=row.run_id,
        instrument=row.instrument,
        bar_size=row.bar_size,
        start=row.start,
        end=row.end,
        status=ItemStatus(row.status),
        bars_written=row.bars_written,
        error=row.error,
        attempts=row.attempts,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _run(session: Session, row: CollectionRunRow) -> CollectionRun:
    stmt = (
        select(
            CollectionItemRow.status,
            func.count(),
            func.coalesce(func.sum(CollectionItemRow.bars_written), 0),
        )
        .where(CollectionItemRow.run_id == row.id)
        .group_by(CollectionItemRow.status)
    )
    counts = {status: 0 for status in ItemStatus}
    bars = 0
    for status, count, written in session.execute(stmt):
        counts[ItemStatus(status)] = int(count)
        bars += int(written)
    return CollectionRun(
        id=row.id,
        kind=row.kind,
        status=RunStatus(row.status),
        created_at=row.created_at,
        finished_at=row.finished_at,
        counts=counts,
        bars_written=bars,
        owner=row.owner,
        lease_until=row.lease_until,
    )


def _new_item(spec: ItemSpec) -> CollectionItemRow:
    instrument, size, start, end = spec
    instrument = str(parse(instrument))  # a canonical id, never a bare ticker
    size = parse_bar_size(size).name  # raises ValidationError naming the valid sizes
    if start is not None and end is not None and start >= end:
        raise ValidationError(f"start must be before end for {instrument} {size}", field="start")
    return CollectionItemRow(
        instrument=instrument,
        bar_size=size,
        start=start,
        end=end,
        status=ItemStatus.PENDING.value,
        bars_written=0,
        attempts=0,
    )


def _flush_new_run(session: Session, kind: str) -> None:
    """Insert the new run; a run of ``kind`` created at the same moment is a Conflict.

    Two drivers may both find no live run and insert one; the database's one-running-run-
    per-kind index (revision 0004) refuses the second.
    """
    try:
        session.flush()
    except IntegrityError as exc:
        if RUNNING_RUN_INDEX not in str(exc) and "collection_runs.kind" not in str(exc):
            raise
        raise Conflict(
            f"another {kind} collection was started at the same moment and is running; wait "
            "for it to finish, or stop it, before starting another"
        ) from exc


class CollectionRunRepository:
    """Create runs, move their items through pending → running → done | failed."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        kind: str,
        items: Iterable[ItemSpec],
        *,
        at: datetime | None = None,
        owner: str = "",
        lease: timedelta = LEASE,
    ) -> CollectionRun:
        """Create a run of ``kind`` with its items, all pending, atomically, holding a lease.

        Runs of ``kind`` still marked running whose lease ran out (or that never had one) are
        closed as interrupted first, in the same transaction.

        Raises:
            Conflict: if another run of ``kind`` holds a live lease (nothing is written), or
                if the same (instrument, bar_size) appears twice.
            ValidationError: if an item is not a canonical id, has an unknown bar size or an
                empty range.
        """
        rows = [_new_item(spec) for spec in items]
        now = at or utcnow()
        with self._db.transaction() as session:
            self._refuse_live(session, kind, now)
            self._close_interrupted(session, kind=kind, now=now)
            run = CollectionRunRow(
                kind=kind, status=RunStatus.RUNNING.value, created_at=now,
                owner=owner or None, lease_until=now + lease,
            )  # fmt: skip
            session.add(run)
            _flush_new_run(session, kind)
            for item in rows:
                item.run_id = run.id
            session.add_all(rows)
            session.flush()
            return _run(session, run)

    def renew(
        self, run_id: int, *, at: datetime | None = None, lease: timedelta = LEASE
    ) -> CollectionRun:
        """Extend a running run's lease to ``lease`` from now.

        Raises:
            Conflict: if the run is no longer running (another driver closed it).
        """
        now = at or utcnow()
        # One conditional UPDATE, so a run closed by another driver meanwhile stays closed.
        renewal = (
            update(CollectionRunRow)
            .where(
                CollectionRunRow.id == run_id, CollectionRunRow.status == RunStatus.RUNNING.value
            )
            .values(lease_until=now + lease)
        )
        with self._db.transaction() as session:
            renewed = session.execute(renewal).rowcount  # type: ignore[attr-defined]
            row = self._run_row(session, run_id)
            if not renewed:
                raise Conflict(
                    f"collection run {run_id} is {row.status}, so its lease is gone (another "
                    "driver closed it when its lease ran out): stop this driver; the next run "
                    "collects what is still missing"
                )
            return _run(session, row)

    @staticmethod
    def _refuse_live(session: Session, kind: str, now: datetime) -> None:
        live = session.scalars(
            select(CollectionRunRow).where(
                CollectionRunRow.kind == kind,
                CollectionRunRow.status == RunStatus.RUNNING.value,
                CollectionRunRow.lease_until > now,
            )
        ).first()
        if live is not None:
            raise Conflict(
                f"a {kind} collection (run {live.id}, owner {live.owner or 'unknown'}) is still "
                f"running (lease until {live.lease_until:%Y-%m-%d %H:%M:%S} UTC); wait for it to "
                "finish, or stop it, before starting another"
            )

    def get(self, run_id: int) -> CollectionRun:
        """Return a run with its item counts.

        Raises:
            NotFound: if there is no such run.
        """
        with self._db.transaction() as session:
            return _run(session, self._run_row(session, run_id))

    def latest(self, *, kind: str | None = None) -> CollectionRun | None:
        """Return the most recent run (of ``kind``, if given), or None."""
        stmt = select(CollectionRunRow).order_by(CollectionRunRow.id.desc()).limit(1)
        if kind is not None:
            stmt = stmt.where(CollectionRunRow.kind == kind)
        with self._db.transaction() as session:
            row = session.scalars(stmt).first()
            return None if row is None else _run(session, row)

    def items(self, run_id: int) -> builtins.list[CollectionItem]:
        """Return every item of a run, in creation order."""
        stmt = (
            select(CollectionItemRow)
            .where(CollectionItemRow.run_id == run_id)
            .order_by(CollectionItemRow.id)
        )
        with self._db.transaction() as session:
            self._run_row(session, run_id)
            return [_item(row) for row in session.scalars(stmt)]

    def pending_items(
        self, run_id: int, *, retry_failed: bool = False, max_attempts: int = 3
    ) -> builtins.list[CollectionItem]:
        """Return items still to do: pending, or running when a worker died mid-way.

        With ``retry_failed=True``, failed items with fewer than ``max_attempts`` failures
        are included too.
        """
        wanted = [ItemStatus.PENDING.value, ItemStatus.RUNNING.value]
        cond: ColumnElement[bool] = CollectionItemRow.status.in_(wanted)
        if retry_failed:
            cond = cond | (
                (CollectionItemRow.status == ItemStatus.FAILED.value)
                & (CollectionItemRow.attempts < max_attempts)
            )
        stmt = (
            select(CollectionItemRow)
            .where(CollectionItemRow.run_id == run_id, cond)
            .order_by(CollectionItemRow.id)
        )
        with self._db.transaction() as session:
            self._run_row(session, run_id)
            return [_item(row) for row in session.scalars(stmt)]

    def start_item(self, item_id: int, *, at: datetime | None = None) -> CollectionItem:
        """Mark an item running (from pending, failed, or running after a crash)."""
        with self._db.transaction() as session:
            row = self._item_row(session, item_id)
            if row.status == ItemStatus.DONE.value:
                raise Conflict(f"collection item {item_id} is already done; nothing to start")
            row.status, row.started_at, row.error = ItemStatus.RUNNING.value, at or utcnow(), None
            session.flush()
            return _item(row)

    def finish_item(
        self, item_id: int, *, bars_written: int, at: datetime | None = None
    ) -> CollectionItem:
        """Mark an item done with the number of bars it wrote."""
        if bars_written < 0:
            raise ValidationError("bars_written must be >= 0", field="bars_written")
        with self._db.transaction() as session:
            row = self._item_row(session, item_id)
            row.status, row.bars_written = ItemStatus.DONE.value, bars_written
            row.finished_at, row.error = at or utcnow(), None
            session.flush()
            return _item(row)

    def fail_item(self, item_id: int, error: str, *, at: datetime | None = None) -> CollectionItem:
        """Mark an item failed with ``error``; ``attempts`` counts the failures."""
        with self._db.transaction() as session:
            row = self._item_row(session, item_id)
            row.status, row.error = ItemStatus.FAILED.value, error
            row.attempts += 1
            row.finished_at = at or utcnow()
            session.flush()
            return _item(row)

    def finish(self, run_id: int, *, at: datetime | None = None) -> CollectionRun:
        """Close a run: ``done`` when every item is done, else ``failed``."""
        with self._db.transaction() as session:
            row = self._run_row(session, run_id)
            current = _run(session, row)
            all_done = current.counts[ItemStatus.DONE] == current.total
            row.status = (RunStatus.DONE if all_done else RunStatus.FAILED).value
            row.finished_at, row.lease_until = at or utcnow(), None
            session.flush()
            return _run(session, row)

    def close_interrupted(
        self, *, kind: str | None = None, at: datetime | None = None
    ) -> builtins.list[int]:
        """Close runs still marked ``running`` whose lease ran out; return their ids.

        A driver killed mid-run cannot close its own run; its lease then runs out. Items left
        ``running`` become ``failed`` with an "interrupted" error, and each run is finished
        as :meth:`finish` would (``done`` only if every item was done). A run whose lease
        still holds is left alone.
        """
        with self._db.transaction() as session:
            return self._close_interrupted(session, kind=kind, now=at or utcnow())

    @staticmethod
    def _close_interrupted(session: Session, *, kind: str | None, now: datetime) -> list[int]:
        expired = CollectionRunRow.lease_until.is_(None) | (CollectionRunRow.lease_until <= now)
        stmt = select(CollectionRunRow).where(
            CollectionRunRow.status == RunStatus.RUNNING.value, expired
        )
        if kind is not None:
            stmt = stmt.where(CollectionRunRow.kind == kind)
        # FOR UPDATE (PostgreSQL): a renewal committed meanwhile takes the run out of the set.
        runs = list(session.scalars(stmt.with_for_update()))
        for run in runs:
            stuck = select(CollectionItemRow).where(
                CollectionItemRow.run_id == run.id,
                CollectionItemRow.status == ItemStatus.RUNNING.value,
            )
            for item in session.scalars(stuck):
                item.status = ItemStatus.FAILED.value
                item.error = "interrupted: the run's driver stopped before this item finished"
                item.finished_at = now
            session.flush()
            current = _run(session, run)
            all_done = current.counts[ItemStatus.DONE] == current.total
            run.status = (RunStatus.DONE if all_done else RunStatus.FAILED).value
            run.finished_at, run.lease_until = now, None
        session.flush()  # closed before any new run of the kind is inserted (one running)
        return [int(run.id) for run in runs]

    @staticmethod
    def _run_row(session: Session, run_id: int) -> CollectionRunRow:
        row = session.get(CollectionRunRow, run_id)
        if row is None:
            raise NotFound(f"collection run {run_id} does not exist")
        return row

    @staticmethod
    def _item_row(session: Session, item_id: int) -> CollectionItemRow:
        row = session.get(CollectionItemRow, item_id)
        if row is None:
            raise NotFound(f"collection item {item_id} does not exist")
        return row
