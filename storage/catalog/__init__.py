"""The SQL catalog: SQLAlchemy models, repositories and migrations (SQLite and PostgreSQL).

Use the :class:`Catalog` facade::

    from storage.catalog import Catalog

    catalog = Catalog(settings.db.url)
    catalog.upgrade()
    catalog.symbols.upsert_many([SymbolRecord(symbol="AAPL", primary_exchange="NASDAQ")])

Repositories return frozen records (:mod:`storage.catalog.records`) or core domain types,
never ORM rows, and raise :mod:`core.errors` types only.
"""

from storage.catalog.facade import Catalog
from storage.catalog.records import (
    AuditEntry,
    BacktestRecord,
    CollectionItem,
    CollectionRun,
    DeploymentRecord,
    DeploymentStatus,
    ItemStatus,
    JobStatus,
    OptimizationRecord,
    OrderRecord,
    RiskEvent,
    RiskLimitSet,
    RunStatus,
    StrategyKind,
    StrategyRecord,
    SymbolRecord,
    TokenRecord,
    TokenScope,
)

__all__ = [
    "AuditEntry",
    "BacktestRecord",
    "Catalog",
    "CollectionItem",
    "CollectionRun",
    "DeploymentRecord",
    "DeploymentStatus",
    "ItemStatus",
    "JobStatus",
    "OptimizationRecord",
    "OrderRecord",
    "RiskEvent",
    "RiskLimitSet",
    "RunStatus",
    "StrategyKind",
    "StrategyRecord",
    "SymbolRecord",
    "TokenRecord",
    "TokenScope",
]
