"""Positions, API tokens and the audit log (risk limits and events: :mod:`storage.catalog.risk`)."""

from __future__ import annotations

import builtins
import hashlib
import hmac
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update

from core.errors import NotFound, ValidationError
from core.instruments import parse
from core.types import Position, utcnow
from storage.catalog.db import Database, corrupt_row
from storage.catalog.models import ApiTokenRow, AuditRow, PositionRow
from storage.catalog.records import AuditEntry, TokenRecord, TokenScope

TOKEN_PREFIX = "scz_"
MIN_CHOSEN = 32
"""The shortest token an operator may choose (``SCIZOR_ADMIN_TOKEN``)."""


class PositionRepository:
    """Holdings per (account, instrument id), as last reported by the broker."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def upsert(self, position: Position, *, at: datetime | None = None) -> Position:
        """Insert or replace one position."""
        with self._db.transaction() as session:
            row = session.scalars(
                select(PositionRow).where(
                    PositionRow.account == position.account,
                    PositionRow.instrument == position.instrument,
                )
            ).first()
            if row is None:
                row = PositionRow(account=position.account, instrument=position.instrument)
                session.add(row)
            row.quantity, row.avg_cost = position.quantity, position.avg_cost
            row.con_id = position.con_id
            row.updated_at = at or utcnow()
            session.flush()
            return self._position(row)

    def replace_account(
        self, account: str, positions: Iterable[Position], *, at: datetime | None = None
    ) -> int:
        """Make ``positions`` the whole of ``account``'s holdings (broker reconciliation).

        Returns:
            How many positions the account now has.
        """
        now = at or utcnow()
        rows = [
            PositionRow(
                account=account,
                instrument=p.instrument,
                con_id=p.con_id,
                quantity=p.quantity,
                avg_cost=p.avg_cost,
                updated_at=now,
            )
            for p in positions
        ]
        with self._db.transaction() as session:
            session.execute(delete(PositionRow).where(PositionRow.account == account))
            session.add_all(rows)
            session.flush()
        return len(rows)

    def get(self, instrument: str, *, account: str = "") -> Position:
        """Return the position in ``instrument`` (a canonical id); NotFound if none."""
        key = str(parse(instrument))
        with self._db.transaction() as session:
            row = session.scalars(
                select(PositionRow).where(
                    PositionRow.account == account, PositionRow.instrument == key
                )
            ).first()
            if row is None:
                raise NotFound(f"no position in {key!r} for account {account!r}")
            return self._position(row)

    def list(self, *, account: str | None = None) -> builtins.list[Position]:
        """Return positions by account and instrument."""
        stmt = select(PositionRow).order_by(PositionRow.account, PositionRow.instrument)
        if account is not None:
            stmt = stmt.where(PositionRow.account == account)
        with self._db.transaction() as session:
            return [self._position(row) for row in session.scalars(stmt)]

    @staticmethod
    def _position(row: PositionRow) -> Position:
        """Return ``row`` as a position (StorageError naming the row if it is not one)."""
        try:
            return Position(
                instrument=row.instrument,
                quantity=row.quantity,
                avg_cost=row.avg_cost,
                account=row.account,
                con_id=row.con_id,
            )
        except (ValueError, ValidationError) as exc:
            where = (
                f"position of account {row.account!r} in {row.instrument!r} (positions.id={row.id})"
            )
            raise corrupt_row(where, exc) from exc


def hash_token(token: str) -> str:
    """Return the SHA-256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode()).hexdigest()


SCOPE_ORDER: tuple[TokenScope, ...] = (
    TokenScope.READ,
    TokenScope.RESEARCH,
    TokenScope.TRADE,
    TokenScope.ADMIN,
)
"""Scopes from least to most powerful; each includes the ones before it."""


def scope_includes(granted: TokenScope | str, needed: TokenScope | str) -> bool:
    """True when a token of scope ``granted`` may do what needs ``needed``."""
    return SCOPE_ORDER.index(TokenScope(granted)) >= SCOPE_ORDER.index(TokenScope(needed))


def parse_scope(value: TokenScope | str) -> TokenScope:
    """Return ``value`` as a scope, or raise ValidationError naming ``scope`` and the choices."""
    try:
        return TokenScope(str(value).strip().lower())
    except ValueError:
        choices = ", ".join(s.value for s in SCOPE_ORDER)
        raise ValidationError(
            f"scope must be one of {choices}; got {value!r}", field="scope"
        ) from None


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiToken(TokenRecord):
    """A token's metadata with its expiry (the plaintext is never stored)."""

    expires_at: datetime | None = None

    def state(self, at: datetime) -> str:
        """``live``, ``revoked`` or ``expired`` at ``at``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= at:
            return "expired"
        return "live"


class TokenRepository:
    """API bearer tokens; only their SHA-256 hashes are stored."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def create(
        self,
        scope: TokenScope | str,
        name: str = "",
        *,
        expires_at: datetime | None = None,
        at: datetime | None = None,
        plaintext: str | None = None,
    ) -> tuple[ApiToken, str]:
        """Create a token; return its record and the plaintext, which is never shown again.

        ``plaintext`` stores a token chosen by the operator (``SCIZOR_ADMIN_TOKEN``) instead
        of a random one.

        Raises:
            ValidationError: for an unknown scope, an expiry not in the future, or a chosen
                token shorter than 32 characters, with spaces, or already stored.
        """
        scope = parse_scope(scope)
        now = at or utcnow()
        if expires_at is not None and expires_at <= now:
            raise ValidationError(
                f"expires_at {expires_at:%Y-%m-%d %H:%M} UTC is not in the future; give a "
                "later time, or none for a token that does not expire",
                field="expires_at",
            )
        if plaintext is None:
            plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
        else:
            self._check_chosen(plaintext)
        row = ApiTokenRow(
            token_hash=hash_token(plaintext), scope=scope.value, name=name,
            created_at=now, expires_at=expires_at,
        )  # fmt: skip
        with self._db.transaction() as session:
            session.add(row)
            session.flush()
            return self._record(row), plaintext

    def _check_chosen(self, plaintext: str) -> None:
        if len(plaintext) < MIN_CHOSEN or any(c.isspace() for c in plaintext):
            raise ValidationError(
                f"a chosen token needs at least {MIN_CHOSEN} characters and no spaces; "
                "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(32))'",
                field="token",
            )
        if self.lookup(plaintext) is not None:
            raise ValidationError("that token is stored already; choose another", field="token")

    def lookup(self, token: str) -> ApiToken | None:
        """Return the record of ``token`` (live or not), or None if it is unknown; writes nothing.

        The stored hash is compared with ``hmac.compare_digest``, in constant time.
        """
        digest = hash_token(token)
        with self._db.transaction() as session:
            row = session.scalars(
                select(ApiTokenRow).where(ApiTokenRow.token_hash == digest)
            ).first()
            if row is None or not hmac.compare_digest(row.token_hash, digest):
                return None
            return self._record(row)

    def verify(self, token: str, *, at: datetime | None = None) -> TokenScope | None:
        """Return the scope of a live token (and note its use), or None if unknown, revoked
        or expired. Writes on every call: the API uses :meth:`lookup` and :meth:`mark_used`."""
        now = at or utcnow()
        record = self.lookup(token)
        if record is None or record.state(now) != "live":
            return None
        self.mark_used({record.id: now})
        return record.scope

    def mark_used(self, uses: Mapping[int, datetime]) -> None:
        """Record when each token (by id) was last used, in one transaction."""
        if not uses:
            return
        with self._db.transaction() as session:
            for token_id, when in uses.items():
                session.execute(
                    update(ApiTokenRow).where(ApiTokenRow.id == token_id).values(last_used_at=when)
                )

    def revoke(self, token_id: int, *, at: datetime | None = None) -> ApiToken:
        """Revoke a token by id (idempotent; NotFound if there is no such token)."""
        with self._db.transaction() as session:
            row = session.get(ApiTokenRow, token_id)
            if row is None:
                raise NotFound(
                    f"API token {token_id} does not exist; 'scizor token list' shows the ids"
                )
            if row.revoked_at is None:
                row.revoked_at = at or utcnow()
            session.flush()
            return self._record(row)

    def list(self) -> builtins.list[ApiToken]:
        """Return every token's metadata by id."""
        with self._db.transaction() as session:
            rows = session.scalars(select(ApiTokenRow).order_by(ApiTokenRow.id))
            return [self._record(row) for row in rows]

    def count(self) -> int:
        """How many tokens were ever created (revoked and expired ones included)."""
        with self._db.transaction() as session:
            return int(session.scalar(select(func.count()).select_from(ApiTokenRow)) or 0)

    @staticmethod
    def _record(row: ApiTokenRow) -> ApiToken:
        return ApiToken(
            id=row.id,
            scope=TokenScope(row.scope),
            name=row.name,
            created_at=row.created_at,
            revoked_at=row.revoked_at,
            last_used_at=row.last_used_at,
            expires_at=row.expires_at,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditRecord(AuditEntry):
    """An audit entry with the HTTP status answered and the request's id (None off HTTP)."""

    status: int | None = None
    request_id: str | None = None


class AuditLog:
    """An append-only log of who did what."""

    def __init__(self, db: Database) -> None:
        self._db = db

    def record(
        self,
        actor: str,
        action: str,
        *,
        detail: dict[str, Any] | None = None,
        status: int | None = None,
        request_id: str | None = None,
        at: datetime | None = None,
    ) -> AuditRecord:
        """Append an entry (``status`` and ``request_id`` for HTTP mutations)."""
        row = AuditRow(
            time=at or utcnow(), actor=actor[:100], action=action[:100], detail=detail or {},
            status=status, request_id=request_id[:64] if request_id else None,
        )  # fmt: skip
        with self._db.transaction() as session:
            session.add(row)
            session.flush()
            return self._entry(row)

    def list(
        self,
        *,
        actor: str | None = None,
        action: str | None = None,
        request_id: str | None = None,
        limit: int = 100,
    ) -> builtins.list[AuditRecord]:
        """Return the newest entries first, optionally filtered."""
        stmt = select(AuditRow).order_by(AuditRow.time.desc(), AuditRow.id.desc()).limit(limit)
        if actor is not None:
            stmt = stmt.where(AuditRow.actor == actor)
        if action is not None:
            stmt = stmt.where(AuditRow.action == action)
        if request_id is not None:
            stmt = stmt.where(AuditRow.request_id == request_id)
        with self._db.transaction() as session:
            return [self._entry(row) for row in session.scalars(stmt)]

    @staticmethod
    def _entry(row: AuditRow) -> AuditRecord:
        return AuditRecord(
            id=row.id, time=row.time, actor=row.actor, action=row.action, detail=row.detail,
            status=row.status, request_id=row.request_id,
        )  # fmt: skip
