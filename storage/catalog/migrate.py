"""Run the catalog's Alembic migrations from code (no alembic.ini needed)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine

import storage.migrations
from core.errors import StorageError

SCRIPT_LOCATION = Path(storage.migrations.__file__).resolve().parent


def alembic_config(url: str | None = None) -> Config:
    """Return an Alembic config pointing at the packaged migrations (and ``url`` if given)."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    if url is not None:
        # ConfigParser interpolates '%': escape it so passwords survive.
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``revision``; a no-op when already there.

    One transaction: a failed migration changes nothing, on SQLite too.

    Raises:
        StorageError: if, on SQLite, the migrated tables fail ``PRAGMA foreign_key_check``
            (the migration is rolled back), or a revision refuses the data it finds.
    """
    _migrate(engine, lambda config: command.upgrade(config, revision))


def downgrade(engine: Engine, revision: str) -> None:
    """Revert the database behind ``engine`` to ``revision``, in one transaction.

    On SQLite, foreign keys are off while tables are rebuilt, as for :func:`upgrade`:
    otherwise rebuilding ``orders`` fails against its executions and rebuilding
    ``collection_runs`` silently deletes every collection item (``ON DELETE CASCADE``).

    Raises:
        StorageError: as for :func:`upgrade`, e.g. when a revision refuses to revert because
            it would lose what the data says.
    """
    _migrate(engine, lambda config: command.downgrade(config, revision))


def _migrate(engine: Engine, step: Callable[[Config], None]) -> None:
    config = alembic_config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        if connection.dialect.name != "sqlite":
            with connection.begin():
                step(config)
            return
        with _sqlite_migration(connection):
            step(config)
            _check_foreign_keys(connection)


@contextmanager
def _sqlite_migration(connection: Connection) -> Iterator[None]:
    """Run the block in one real SQLite transaction with foreign keys off, then restore.

    pysqlite opens transactions only before INSERT/UPDATE/DELETE, so DDL would otherwise
    commit as it runs; here BEGIN is explicit. Batch migrations recreate tables, and with
    foreign keys enforced, dropping the old copy of a referenced table (orders) fails against
    its children; SQLite ignores ``PRAGMA foreign_keys`` inside a transaction, so it is set
    before BEGIN (and :func:`_check_foreign_keys` runs before COMMIT).
    """
    dbapi: Any = connection.connection.dbapi_connection  # a sqlite3.Connection
    saved = dbapi.isolation_level
    dbapi.isolation_level = None
    try:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
        connection.commit()
        with connection.begin():
            connection.exec_driver_sql("BEGIN")
            yield
    finally:
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()
        dbapi.isolation_level = saved


def _check_foreign_keys(connection: Connection) -> None:
    """Raise StorageError if any row points at a missing parent (foreign keys were off)."""
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        tables = sorted({str(row[0]) for row in broken})
        raise StorageError(
            f"the catalog migration would leave {len(broken)} row(s) in {', '.join(tables)} "
            "pointing at missing rows; it was rolled back and nothing was changed"
        )


def head_revision() -> str | None:
    """The newest revision shipped with this version of SCIZOR."""
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (None for a database never migrated)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
