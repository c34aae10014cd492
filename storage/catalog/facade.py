"""The :class:`Catalog` facade: one object giving every repository over one database."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import SQLAlchemyError

from core.errors import StorageError
from storage.catalog import migrate
from storage.catalog.admin import AuditLog, PositionRepository, TokenRepository
from storage.catalog.collection_runs import CollectionRunRepository
from storage.catalog.db import Database
from storage.catalog.deployments import DeploymentRepository
from storage.catalog.executions import ExecutionRepository
from storage.catalog.optimizations import OptimizationRepository
from storage.catalog.research import BacktestRepository, StrategyRepository
from storage.catalog.risk import RiskRepository
from storage.catalog.symbols import SymbolRepository
from storage.catalog.trading import OrderRepository


class Catalog:
    """The SQL catalog on SQLite or PostgreSQL.

    Example:
        >>> catalog = Catalog("sqlite:///var/scizor.db")
        >>> catalog.upgrade()                       # create or migrate the schema
        >>> catalog.symbols.get("AAPL").con_id      # doctest: +SKIP

    Args:
        url: A SQLAlchemy URL; ``postgresql://`` URLs are run with psycopg 3.

    Every method of every repository is one transaction: it either writes everything or,
    on error, nothing. Errors are :mod:`core.errors` types (``Conflict``, ``NotFound``,
    ``ValidationError``, ``StorageError``), never SQLAlchemy's.
    """

    def __init__(self, url: str | URL) -> None:
        self.db = Database(url)
        self.symbols = SymbolRepository(self.db)
        self.collection_runs = CollectionRunRepository(self.db)
        self.strategies = StrategyRepository(self.db)
        self.backtests = BacktestRepository(self.db)
        self.optimizations = OptimizationRepository(self.db)
        self.deployments = DeploymentRepository(self.db)
        self.orders = OrderRepository(self.db)
        self.executions = ExecutionRepository(self.db)
        self.positions = PositionRepository(self.db)
        self.risk = RiskRepository(self.db)
        self.tokens = TokenRepository(self.db)
        self.audit = AuditLog(self.db)

    @property
    def url(self) -> URL:
        """The database URL (render it with ``hide_password=True`` before logging it)."""
        return self.db.url

    def upgrade(self, revision: str = "head") -> None:
        """Create or migrate the schema to ``revision`` (idempotent).

        Raises:
            StorageError: if the database cannot be reached or the migration fails (nothing
                is changed).
        """
        self._migrate(migrate.upgrade, revision)

    def downgrade(self, revision: str) -> None:
        """Revert the schema to ``revision`` (e.g. ``"0002"``), in one transaction.

        Raises:
            StorageError: if the database cannot be reached, or a revision refuses to revert
                because its data would not fit the older schema (nothing is changed).
        """
        self._migrate(migrate.downgrade, revision)

    def _migrate(self, step: Callable[[Engine, str], None], revision: str) -> None:
        try:
            step(self.db.engine, revision)
        except SQLAlchemyError as exc:
            raise StorageError(
                f"cannot migrate the catalog at {self.url.render_as_string(hide_password=True)}: "
                f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}"
            ) from exc

    def revision(self) -> str | None:
        """The schema revision of the database (None if never migrated)."""
        return migrate.current_revision(self.db.engine)

    def dispose(self) -> None:
        """Close the catalog's pooled connections."""
        self.db.dispose()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()
