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
from sqlalchemy import Connection, Engine, inspect, text

import storage.migrations
from core.errors import StorageError

SCRIPT_LOCATION = Path(storage.migrations.__file__).resolve().parent
VERSION_TABLE = "scizor_schema_version"
"""Where the catalog's revision is kept. Not Alembic's default ``alembic_version``: Optuna's
tables share the catalog's database and Optuna's own migrations keep their version there."""
LEGACY_VERSION_TABLE = "alembic_version"
"""Where catalogs before revision 0006 kept theirs (moved on the next upgrade)."""


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
                _adopt_legacy_version(connection)
                step(config)
            return
        with _sqlite_migration(connection):
            _adopt_legacy_version(connection)
            step(config)
            _check_foreign_keys(connection)


def _ours(revision: str | None) -> bool:
    """True for a revision of the catalog's scripts (not, e.g., one of Optuna's)."""
    if revision is None:
        return False
    scripts = ScriptDirectory.from_config(alembic_config())
    return any(script.revision == revision for script in scripts.walk_revisions())


def _legacy_revision(connection: Connection) -> str | None:
    """The catalog revision a pre-0006 catalog kept in ``alembic_version``, if it did."""
    if not inspect(connection).has_table(LEGACY_VERSION_TABLE):
        return None
    found = MigrationContext.configure(connection).get_current_revision()
    return found if _ours(found) else None


def _adopt_legacy_version(connection: Connection) -> None:
    """Move a pre-0006 catalog's revision from ``alembic_version`` to :data:`VERSION_TABLE`
    (inside the migration's transaction), so Optuna may keep its own version there."""
    legacy = _legacy_revision(connection)
    if legacy is None or inspect(connection).has_table(VERSION_TABLE):
        return
    connection.execute(
        text(f"CREATE TABLE {VERSION_TABLE} (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
    )
    connection.execute(text(f"INSERT INTO {VERSION_TABLE} VALUES (:v)"), {"v": legacy})
    connection.execute(text(f"DROP TABLE {LEGACY_VERSION_TABLE}"))


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
        opts = {"version_table": VERSION_TABLE}
        found = MigrationContext.configure(connection, opts=opts).get_current_revision()
        return found if found is not None else _legacy_revision(connection)
