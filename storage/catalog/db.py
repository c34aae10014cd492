"""Engine, transactions and the one place where SQL errors become SCIZOR errors.

Every repository method runs inside :meth:`Database.transaction`: it commits on success and
rolls back on any error, so a failed call writes nothing. SQLAlchemy/DBAPI exceptions are
translated here, once: unique, foreign-key and CHECK violations become
:class:`~core.errors.Conflict` with a message naming the table and field, missing required
values and out-of-range numbers become :class:`~core.errors.ValidationError`, anything else
becomes :class:`~core.errors.StorageError`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import (
    ArgumentError,
    DataError,
    IntegrityError,
    SQLAlchemyError,
    StatementError,
)
from sqlalchemy.orm import Session, sessionmaker

from core.errors import ConfigError, Conflict, ScizorError, StorageError, ValidationError
from storage.catalog.models import Base

_PG_ALIASES = {"postgres", "postgresql", "postgresql+psycopg2"}


def normalize_url(url: str | URL) -> URL:
    """Return ``url`` as a SQLAlchemy URL, using psycopg 3 for any PostgreSQL URL.

    Raises:
        ConfigError: if the URL cannot be parsed or names an unsupported backend.
    """
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError(
            f"SCIZOR_DATABASE_URL={url!r} is not a database URL: use sqlite:///path/to.db "
            "or postgresql+psycopg://user:pass@host/db"
        ) from exc
    if parsed.drivername in _PG_ALIASES:
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() not in ("sqlite", "postgresql"):
        raise ConfigError(
            f"SCIZOR_DATABASE_URL uses {parsed.drivername!r}; the catalog supports sqlite and "
            "postgresql only"
        )
    return parsed


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    cursor = dbapi_conn.cursor()
    # SQLite ignores foreign keys unless asked, per connection; WAL lets readers run
    # alongside the single writer (Ray workers share one file).
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str | URL) -> Engine:
    """Create an engine for ``url`` with the settings the catalog relies on."""
    parsed = normalize_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        folder = Path(parsed.database).parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"cannot create the SQLite catalog's folder {folder} ({exc.strerror or exc}); "
                "set SCIZOR_DATABASE_URL to a writable path"
            ) from exc
    engine = create_engine(parsed, connect_args={"timeout": 30})
    event.listen(engine, "connect", _sqlite_on_connect)
    return engine


class Database:
    """An engine plus a session factory; repositories share one instance."""

    def __init__(self, url: str | URL) -> None:
        self.url = normalize_url(url)
        self.engine = make_engine(self.url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """Yield a session; commit on success, roll back and translate errors on failure."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except ScizorError:
            session.rollback()
            raise
        except SQLAlchemyError as exc:
            session.rollback()
            raise translate(exc) from exc
        finally:
            session.close()

    def dispose(self) -> None:
        """Close every pooled connection."""
        self.engine.dispose()


def corrupt_row(what: str, exc: Exception) -> StorageError:
    """Return the error for a stored row the domain types refuse to read back.

    Args:
        what: The row, as a user finds it, e.g. ``"order 'o-1' (orders.id=3)"``.
        exc: Why the domain type refused it.
    """
    hint = "repair or delete that row"
    if getattr(exc, "field", None) == "instrument":
        # Revision 0003 keeps a bare symbol it could not map to one listing (e.g. VEA).
        hint = (
            "if it predates instrument ids, its symbol named several listings: set its "
            "instrument to the listing's id (SYMBOL.VENUE, see 'scizor symbols list'), or "
            "delete that row"
        )
    return StorageError(f"stored {what} is corrupt: {exc}; {hint}")


# --- error translation -----------------------------------------------------------------------

_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (.+)")
_SQLITE_CHECK = re.compile(r"CHECK constraint failed: (\w+)")
_SQLITE_NOT_NULL = re.compile(r"NOT NULL constraint failed: (\S+)")


def _constraints() -> dict[str, tuple[str, str, str, str | None]]:
    """Map each named constraint to (kind, table, field, rule text from ``info["rule"]``)."""
    found: dict[str, tuple[str, str, str, str | None]] = {}
    for table in Base.metadata.sorted_tables:
        for constraint in table.constraints:
            name = str(constraint.name)
            kind = type(constraint).__name__
            if kind == "CheckConstraint":
                prefix = f"ck_{table.name}_"
                field = name.removeprefix(prefix).rsplit("_", 1)[0]
            else:
                columns = getattr(constraint, "columns", ())
                field = "+".join(col.name for col in columns)
            found[name] = (kind, table.name, field, constraint.info.get("rule"))
    return found


_CONSTRAINTS = _constraints()
_UNIQUE_BY_COLUMNS = {
    (table, field): name
    for name, (kind, table, field, _rule) in _CONSTRAINTS.items()
    if kind == "UniqueConstraint"
}


def _describe(name: str | None) -> str | None:
    if name is None or name not in _CONSTRAINTS:
        return None
    kind, table, field, rule = _CONSTRAINTS[name]
    if rule is not None:
        return f"{table}.{field} {rule} (rule {name})"
    if kind == "UniqueConstraint":
        return f"{table}.{field} must be unique: a row with this {field} already exists"
    if kind == "ForeignKeyConstraint":
        return f"{table}.{field} refers to a row that does not exist"
    if kind == "CheckConstraint":
        return f"{table}.{field} is out of range (rule {name})"
    return f"{table}.{field} violates {name}"


def _sqlite_constraint_name(message: str) -> str | None:
    if m := _SQLITE_CHECK.search(message):
        return m.group(1)
    if m := _SQLITE_UNIQUE.search(message):
        cols = [c.strip() for c in m.group(1).split(",")]
        table = cols[0].split(".")[0]
        return _UNIQUE_BY_COLUMNS.get((table, "+".join(c.split(".")[-1] for c in cols)))
    return None


def _integrity(exc: IntegrityError) -> ScizorError:
    orig = exc.orig
    message = str(orig).splitlines()[0] if orig is not None else str(exc)
    diag = getattr(orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None) or _sqlite_constraint_name(message)
    column = getattr(diag, "column_name", None)
    not_null = _SQLITE_NOT_NULL.search(message)
    if not_null or "not-null" in message:
        where = not_null.group(1) if not_null else f"{getattr(diag, 'table_name', '')}.{column}"
        return ValidationError(f"{where} is required; nothing was written", field=column)
    described = _describe(constraint)
    if described is None and "FOREIGN KEY" in message.upper():
        described = "a reference (foreign key) points to a row that does not exist"
    return Conflict(f"{described or message}; nothing was written ({message})")


def translate(exc: SQLAlchemyError) -> ScizorError:
    """Return the SCIZOR error for a SQLAlchemy exception (callers ``raise ... from exc``)."""
    if isinstance(exc, StatementError) and isinstance(exc.orig, ScizorError):
        return exc.orig  # raised by our own column types while binding parameters
    if isinstance(exc, IntegrityError):
        return _integrity(exc)
    if isinstance(exc, DataError):
        first = str(exc.orig).splitlines()[0] if exc.orig is not None else str(exc)
        return ValidationError(f"a value does not fit its column: {first}; nothing was written")
    return StorageError(f"catalog database error: {exc.__class__.__name__}: {exc}")
