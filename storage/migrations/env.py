"""Alembic environment for the catalog.

Run programmatically by :meth:`storage.catalog.Catalog.upgrade`, which passes an open
connection in ``config.attributes["connection"]``; without one, the ``sqlalchemy.url`` main
option is used. Batch mode is on so ALTERs work on SQLite as well as PostgreSQL.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from storage.catalog.db import make_engine
from storage.catalog.migrate import VERSION_TABLE
from storage.catalog.models import Base

config = context.config
target_metadata = Base.metadata


def _ours(name: str | None, type_: str, parent_names: object) -> bool:
    """Compare only the catalog's tables: Optuna's share the database (autogenerate would
    otherwise propose dropping them)."""
    return type_ != "table" or name in target_metadata.tables


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=True,
        compare_type=True,
        version_table=VERSION_TABLE,
        include_name=_ours,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit SQL to stdout instead of running it (``alembic upgrade --sql``)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
        version_table=VERSION_TABLE,
        include_name=_ours,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run migrations on the caller's connection, or on a new engine from the URL."""
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(str(config.get_main_option("sqlalchemy.url")))
    try:
        with engine.begin() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
