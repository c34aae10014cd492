"""The universe of listings and their IB validation state.

Every listing is named by its canonical id ``SYMBOL.VENUE`` (:mod:`core.instruments`);
lookups accept the id or a bare symbol that names exactly one listing, and an ambiguous bare
symbol is an :class:`~core.instruments.AmbiguousInstrument` error listing the candidates.
"""

from __future__ import annotations

import builtins
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from core.errors import NotFound, ValidationError
from core.instruments import instrument_id, is_canonical, resolve, venue_of
from core.types import SecType, utcnow
from storage.catalog.db import Database
from storage.catalog.models import SymbolRow
from storage.catalog.records import SymbolRecord

_KEY = ("symbol", "primary_exchange", "currency")
_UPDATABLE = ("sec_type", "exchange", "universe")


def _record(row: SymbolRow) -> SymbolRecord:
    return SymbolRecord(
        symbol=row.symbol,
        sec_type=SecType(row.sec_type),
        exchange=row.exchange,
        primary_exchange=row.primary_exchange,
        currency=row.currency,
        con_id=row.con_id,
        name=row.name,
        universe=row.universe,
        valid=row.valid,
        last_verified=row.last_verified,
        added_at=row.added_at,
        instrument_id=row.instrument_id,
    )


def _values(record: SymbolRecord, at: datetime) -> dict[str, Any]:
    symbol = record.symbol.strip().upper()
    if not symbol:
        raise ValidationError("symbol must not be empty", field="symbol")
    venue = venue_of(primary_exchange=record.primary_exchange, exchange=record.exchange)
    return {
        "instrument_id": instrument_id(symbol, venue, field="symbol"),
        "symbol": symbol,
        "sec_type": SecType(record.sec_type).value,
        "exchange": record.exchange.strip().upper(),
        "primary_exchange": record.primary_exchange.strip().upper(),
        "currency": record.currency.upper(),
        "con_id": record.con_id,
        "name": record.name,
        "universe": record.universe,
        "valid": record.valid,
        "last_verified": record.last_verified,
        "added_at": record.added_at or at,
    }


class SymbolRepository:
    """Listings keyed by canonical instrument id; bare-symbol lookups work whenever the symbol
    names one listing (the common case)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert_many(self, records: Iterable[SymbolRecord], *, at: datetime | None = None) -> int:
        """Insert new symbols and refresh descriptive fields of existing ones, atomically.

        Validation state (``valid``, ``last_verified``) and ``added_at`` of existing rows are
        kept, so re-populating a universe does not force re-validation. Idempotent.

        Returns:
            The number of records processed (a listing given twice counts twice; the last
            one is stored).

        Raises:
            ValidationError: if a record is malformed; nothing is written.
        """
        at = at or utcnow()
        values = [_values(r, at) for r in records]
        # One row per listing, the last record winning, as on SQLite (PostgreSQL refuses to
        # update a row twice in one statement).
        rows = list({tuple(v[k] for k in _KEY): v for v in values}.values())
        if not rows:
            return 0
        dialect = postgresql if self._db.dialect == "postgresql" else sqlite
        with self._db.transaction() as session:
            for chunk_start in range(0, len(rows), 500):
                stmt = dialect.insert(SymbolRow).values(rows[chunk_start : chunk_start + 500])
                stmt = stmt.on_conflict_do_update(
                    index_elements=list(_KEY),
                    set_={
                        **{col: stmt.excluded[col] for col in _UPDATABLE},
                        # A bare re-populate must not erase what IB validation filled in.
                        "con_id": func.coalesce(stmt.excluded.con_id, SymbolRow.con_id),
                        "name": func.coalesce(func.nullif(stmt.excluded.name, ""), SymbolRow.name),
                    },
                )
                session.execute(stmt)
        return len(values)

    def get(self, instrument: str) -> SymbolRecord:
        """Return the listing ``instrument`` names (a canonical id or an unambiguous symbol).

        Raises:
            NotFound: if no listing matches (close matches are suggested).
            AmbiguousInstrument: if a bare symbol names several listings.
        """
        with self._db.transaction() as session:
            return _record(self._one(session, instrument))

    def resolve(self, instrument: str) -> str:
        """Return the canonical id ``instrument`` names (see :meth:`get`)."""
        return self.get(instrument).id

    def listings(self) -> dict[str, str]:
        """Return ``{instrument id: name}`` of every listing."""
        stmt = select(SymbolRow.instrument_id, SymbolRow.name)
        with self._db.transaction() as session:
            return {str(i): str(n) for i, n in session.execute(stmt)}

    def universes(self) -> builtins.list[str]:
        """Return the names of the universes that have at least one listing, sorted."""
        stmt = select(SymbolRow.universe).where(SymbolRow.universe.is_not(None)).distinct()
        with self._db.transaction() as session:
            return sorted(str(name) for name in session.scalars(stmt))

    def list(
        self, *, universe: str | None = None, valid: bool | None = None
    ) -> builtins.list[SymbolRecord]:
        """Return symbols ordered by symbol, optionally of one universe / validity."""
        stmt = select(SymbolRow).order_by(SymbolRow.symbol, SymbolRow.primary_exchange)
        if universe is not None:
            stmt = stmt.where(SymbolRow.universe == universe)
        if valid is not None:
            stmt = stmt.where(SymbolRow.valid.is_(valid))
        with self._db.transaction() as session:
            return [_record(row) for row in session.scalars(stmt)]

    def due_for_validation(
        self,
        *,
        max_age_days: int = 90,
        now: datetime | None = None,
        force: bool = False,
        limit: int | None = None,
    ) -> builtins.list[SymbolRecord]:
        """Return symbols never verified or verified more than ``max_age_days`` ago.

        With ``force=True`` every symbol is due. Never-verified symbols come first, then
        the stalest.
        """
        now = now or utcnow()
        stmt = select(SymbolRow)
        if not force:
            cutoff = now - timedelta(days=max_age_days)
            stmt = stmt.where(
                SymbolRow.last_verified.is_(None) | (SymbolRow.last_verified < cutoff)
            )
        stmt = stmt.order_by(
            SymbolRow.last_verified.is_not(None), SymbolRow.last_verified, SymbolRow.symbol
        )
        if limit is not None:
            stmt = stmt.limit(limit)
        with self._db.transaction() as session:
            return [_record(row) for row in session.scalars(stmt)]

    def mark_verified(
        self,
        instrument: str,
        *,
        con_id: int,
        at: datetime | None = None,
        details: dict[str, Any] | None = None,
    ) -> SymbolRecord:
        """Record that IB knows ``instrument``: set ``con_id``, ``valid`` and ``last_verified``.

        ``details`` may update ``name``, ``exchange`` and ``sec_type`` from IB's contract
        details.
        """
        allowed = {"name", "exchange", "sec_type"}
        unknown = set(details or {}) - allowed
        if unknown:
            raise ValidationError(
                f"details has unknown key(s) {sorted(unknown)}; allowed: {sorted(allowed)}",
                field="details",
            )
        with self._db.transaction() as session:
            row = self._one(session, instrument)
            row.con_id, row.valid, row.last_verified = con_id, True, at or utcnow()
            for key, value in (details or {}).items():
                setattr(row, key, SecType(value).value if key == "sec_type" else value)
            session.flush()
            return _record(row)

    def mark_invalid(self, instrument: str, *, at: datetime | None = None) -> SymbolRecord:
        """Record that IB does not know ``instrument`` (kept, ``valid=False``, for reports)."""
        with self._db.transaction() as session:
            row = self._one(session, instrument)
            row.valid, row.last_verified = False, at or utcnow()
            session.flush()
            return _record(row)

    def delete(self, instrument: str) -> SymbolRecord:
        """Delete a listing and return what was deleted.

        Raises:
            NotFound: if no such listing exists.
            AmbiguousInstrument: if a bare symbol names several listings.
        """
        with self._db.transaction() as session:
            row = self._one(session, instrument)
            record = _record(row)
            session.delete(row)
            return record

    def remove_invalid(self) -> builtins.list[SymbolRecord]:
        """Delete every symbol marked invalid and return them (for the validation report)."""
        with self._db.transaction() as session:
            rows = list(session.scalars(select(SymbolRow).where(SymbolRow.valid.is_(False))))
            records = [_record(row) for row in rows]
            for row in rows:
                session.delete(row)
            return records

    @staticmethod
    def _one(session: Session, instrument: str) -> SymbolRow:
        text = instrument.strip().upper() if isinstance(instrument, str) else ""
        column = SymbolRow.instrument_id if is_canonical(text) else SymbolRow.symbol
        rows: Sequence[SymbolRow] = session.scalars(select(SymbolRow).where(column == text)).all()
        if len(rows) == 1:
            return rows[0]
        # Nothing or several: let resolve() word the error (candidates, close matches).
        every = select(SymbolRow.instrument_id, SymbolRow.name)
        listings = {r.instrument_id: r.name for r in rows} or {
            str(i): str(n) for i, n in session.execute(every)
        }
        resolve(instrument, listings, field="instrument")
        raise NotFound(f"instrument {instrument!r} is not in the catalog")  # pragma: no cover
