"""The risk manager's catalog: limits per scope, the kill switch's state and risk events.

Plain mappings in and out (storage cannot import ``actors``): the risk manager validates
limits with ``actors.risk_limits.RiskLimits.from_mapping`` before it writes them, and reads
:meth:`RiskRepository.book` with ``LimitBook.from_mapping``.
"""

from __future__ import annotations

import builtins
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Select, func, select

from core.errors import ValidationError
from core.types import utcnow
from storage.catalog.db import Database
from storage.catalog.models import RiskEventRow, RiskLimitRow, RiskStateRow
from storage.catalog.records import RiskEvent, RiskLimitSet

__all__ = ["GLOBAL", "RiskRepository", "deployment_scope"]

GLOBAL = "global"
"""The scope of the account's limits."""
LEGACY = "legacy"
"""The key under which revision 0007 kept named values that are no limit of this version."""
_DEPLOYMENT = re.compile(r"deployment:([1-9][0-9]{0,9})")
_STATE_ID = 1


def deployment_scope(deployment_id: int) -> str:
    """Return the scope of a deployment's override: ``deployment:<id>``."""
    return f"deployment:{int(deployment_id)}"


def check_scope(scope: str) -> str:
    """Return ``scope`` if it is ``global`` or ``deployment:<id>``.

    Raises:
        ValidationError: naming ``scope``.
    """
    if scope == GLOBAL or _DEPLOYMENT.fullmatch(scope):
        return scope
    raise ValidationError(
        f"scope must be 'global' or 'deployment:<id>' (e.g. 'deployment:7'); got {scope!r}",
        field="scope",
    )


class RiskRepository:
    """Risk limits per scope, the kill switch's state, and the events the risk manager records."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def book(self) -> dict[str, Any]:
        """Return ``{"global": {...}, "deployments": {"7": {...}}}`` (``LimitBook.from_mapping``).

        Scopes never set are absent (``global`` is ``{}``); legacy values are left out.
        """
        book: dict[str, Any] = {GLOBAL: {}, "deployments": {}}
        for record in self.limit_sets():
            match = _DEPLOYMENT.fullmatch(record.scope)
            if record.scope == GLOBAL:
                book[GLOBAL] = record.limits
            elif match:  # other scopes (none are written now) are not part of a book
                book["deployments"][match.group(1)] = record.limits
        return book

    def limit_sets(self) -> builtins.list[RiskLimitSet]:
        """Return every scope's stored limits, by scope."""
        with self._db.transaction() as session:
            rows = session.scalars(select(RiskLimitRow).order_by(RiskLimitRow.scope))
            return [self._limit_set(row) for row in rows]

    def set_limits(
        self, scope: str, limits: Mapping[str, Any], *, by: str, at: datetime | None = None
    ) -> RiskLimitSet:
        """Replace one scope's limits (its legacy values stay); see :meth:`set_many`."""
        return self.set_many({scope: limits}, by=by, at=at)[0]

    def set_many(
        self, scopes: Mapping[str, Mapping[str, Any]], *, by: str, at: datetime | None = None
    ) -> builtins.list[RiskLimitSet]:
        """Replace the limits of several scopes in one transaction (all or nothing).

        Args:
            scopes: The limits by scope (``global``, ``deployment:<id>``); JSON-ready values.
            by: Who set them.
            at: When (now by default).

        Raises:
            ValidationError: for a malformed scope, or limits that are not a mapping.
        """
        for scope, limits in scopes.items():
            check_scope(scope)
            if not isinstance(limits, Mapping) or LEGACY in limits:
                raise ValidationError(
                    f"the limits of scope {scope!r} must be a mapping of limit names to values",
                    field="limits",
                )
        now = at or utcnow()
        with self._db.transaction() as session:
            rows = {r.scope: r for r in session.scalars(
                select(RiskLimitRow).where(RiskLimitRow.scope.in_(list(scopes)))
            )}  # fmt: skip
            out = []
            for scope, limits in scopes.items():
                row = rows.get(scope)
                if row is None:
                    row = RiskLimitRow(scope=scope)
                    session.add(row)
                legacy = (row.limits or {}).get(LEGACY)
                row.limits = {**limits, **({LEGACY: legacy} if legacy else {})}
                row.updated_at, row.updated_by = now, by[:100]
                out.append(row)
            session.flush()
            return [self._limit_set(row) for row in out]

    def state(self) -> dict[str, Any] | None:
        """Return the kill switch's saved state (``KillSwitch.to_mapping``), None if never saved."""
        with self._db.transaction() as session:
            row = session.get(RiskStateRow, _STATE_ID)
            return None if row is None else dict(row.state)

    def save_state(self, state: Mapping[str, Any], *, at: datetime | None = None) -> None:
        """Replace the kill switch's saved state."""
        with self._db.transaction() as session:
            row = session.get(RiskStateRow, _STATE_ID)
            if row is None:
                row = RiskStateRow(id=_STATE_ID)
                session.add(row)
            row.state, row.updated_at = dict(state), at or utcnow()

    def add_event(
        self,
        kind: str,
        *,
        limit_name: str | None = None,
        detail: dict[str, Any] | None = None,
        order_ref: str | None = None,
        at: datetime | None = None,
    ) -> RiskEvent:
        """Record a risk event (e.g. ``rejected``, ``halted``, ``emergency_stop``)."""
        row = RiskEventRow(
            time=at or utcnow(),
            kind=kind[:32],
            limit_name=limit_name[:64] if limit_name else None,
            detail=detail or {},
            order_ref=order_ref[:64] if order_ref else None,
        )
        with self._db.transaction() as session:
            session.add(row)
            session.flush()
            return self._event(row)

    def events(
        self,
        *,
        since: datetime | None = None,
        kind: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> builtins.list[RiskEvent]:
        """Return events at or after ``since`` of ``kind`` (if given), newest first."""
        stmt = self._filtered(select(RiskEventRow), since=since, kind=kind)
        stmt = stmt.order_by(RiskEventRow.time.desc(), RiskEventRow.id.desc())
        with self._db.transaction() as session:
            rows = session.scalars(stmt.offset(offset).limit(limit))
            return [self._event(row) for row in rows]

    def count_events(self, *, since: datetime | None = None, kind: str | None = None) -> int:
        """How many events :meth:`events` would page through."""
        stmt = self._filtered(select(func.count()).select_from(RiskEventRow), since=since,
                              kind=kind)  # fmt: skip
        with self._db.transaction() as session:
            return int(session.scalar(stmt) or 0)

    @staticmethod
    def _filtered(stmt: Select[Any], *, since: datetime | None, kind: str | None) -> Select[Any]:
        if since is not None:
            stmt = stmt.where(RiskEventRow.time >= since)
        if kind is not None:
            stmt = stmt.where(RiskEventRow.kind == kind)
        return stmt

    @staticmethod
    def _limit_set(row: RiskLimitRow) -> RiskLimitSet:
        limits = dict(row.limits or {})
        legacy = dict(limits.pop(LEGACY, None) or {})
        return RiskLimitSet(scope=row.scope, limits=limits, legacy=legacy,
                            updated_at=row.updated_at, updated_by=row.updated_by)  # fmt: skip

    @staticmethod
    def _event(row: RiskEventRow) -> RiskEvent:
        return RiskEvent(
            id=row.id,
            time=row.time,
            kind=row.kind,
            limit_name=row.limit_name,
            detail=row.detail,
            order_ref=row.order_ref,
        )
