"""SQLAlchemy 2 models of the catalog: the tables, their keys and their CHECK constraints.

Rows never leave :mod:`storage.catalog`; repositories turn them into the frozen records of
:mod:`storage.catalog.records` (or core domain types). Every constraint is named (see
``NAMING``) so migrations are stable and a violation can be reported by field.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.barsize import BAR_SIZES
from core.types import OrderStatus, OrderType, Side, TimeInForce, TradingMode
from storage.catalog.records import (
    DeploymentStatus,
    ItemStatus,
    JobStatus,
    RunStatus,
    StrategyKind,
    TokenScope,
)
from storage.catalog.sqltypes import Money, UTCDateTime

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _sql_list(values: Any) -> str:
    return ", ".join(f"'{v.value}'" for v in values)


def one_of(column: str, values: Any) -> CheckConstraint:
    """Return a CHECK that ``column`` holds one of the enum ``values`` (named ``<col>_valid``)."""
    return CheckConstraint(f"{column} IN ({_sql_list(values)})", name=f"{column}_valid")


def required_for(column: str, types: Any) -> CheckConstraint:
    """Return a CHECK that ``column`` is set on orders of the given ``types``.

    Named ``<col>_required``; ``info["rule"]`` says why, for error messages (see
    :func:`storage.catalog.db.translate`).
    """
    names = ", ".join(t.value for t in types)
    return CheckConstraint(
        f"order_type NOT IN ({_sql_list(types)}) OR {column} IS NOT NULL",
        name=f"{column}_required",
        info={"rule": f"is required for {names} orders"},
    )


# Order types that carry a limit price / a stop price (the same rule as core.types.Order).
LIMIT_TYPES = (OrderType.LIMIT, OrderType.STOP_LIMIT, OrderType.LIMIT_ON_CLOSE)
STOP_TYPES = (OrderType.STOP, OrderType.STOP_LIMIT)


class Base(DeclarativeBase):
    """Declarative base with the catalog's constraint naming convention."""

    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        Decimal: Money(),
        dict[str, Any]: JSON(),
    }


class SymbolRow(Base):
    __tablename__ = "symbols"
    __table_args__ = (
        UniqueConstraint("symbol", "primary_exchange", "currency"),
        UniqueConstraint("con_id"),  # IB's contract id names one listing; NULLs allowed
        UniqueConstraint("instrument_id"),  # the canonical SYMBOL.VENUE (core.instruments)
        Index(None, "symbol"),
        Index(None, "universe"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    instrument_id: Mapped[str] = mapped_column(String(48))
    symbol: Mapped[str] = mapped_column(String(32))
    sec_type: Mapped[str] = mapped_column(String(8))
    exchange: Mapped[str] = mapped_column(String(16))
    primary_exchange: Mapped[str] = mapped_column(String(16))
    currency: Mapped[str] = mapped_column(String(3))
    con_id: Mapped[int | None] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(200))
    universe: Mapped[str | None] = mapped_column(String(64))
    valid: Mapped[bool | None] = mapped_column(Boolean)
    last_verified: Mapped[datetime | None]
    added_at: Mapped[datetime]


RUNNING_RUN_INDEX = "uq_collection_runs_kind_running"
"""One running collection run per kind, whoever writes (revision 0004)."""


class CollectionRunRow(Base):
    __tablename__ = "collection_runs"
    __table_args__ = (
        one_of("status", RunStatus),
        Index(
            RUNNING_RUN_INDEX,
            "kind",
            unique=True,
            sqlite_where=text("status = 'running'"),
            postgresql_where=text("status = 'running'"),
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # The driver that owns a running run, and until when: renewed while it works, so a second
    # run of the same kind is refused while the lease holds and may close the run after.
    owner: Mapped[str | None] = mapped_column(String(200))
    lease_until: Mapped[datetime | None]


class CollectionItemRow(Base):
    __tablename__ = "collection_items"
    __table_args__ = (
        UniqueConstraint("run_id", "instrument", "bar_size"),
        Index(None, "run_id", "status"),
        one_of("status", ItemStatus),
        CheckConstraint("bars_written >= 0", name="bars_written_nonnegative"),
        CheckConstraint("attempts >= 0", name="attempts_nonnegative"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("collection_runs.id", ondelete="CASCADE"))
    instrument: Mapped[str] = mapped_column(String(48))
    bar_size: Mapped[str] = mapped_column(String(8))
    start: Mapped[datetime | None]
    end: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))
    bars_written: Mapped[int] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class StrategyRow(Base):
    __tablename__ = "strategies"
    __table_args__ = (UniqueConstraint("name"), one_of("kind", StrategyKind))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(16))
    spec: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]


class BacktestRow(Base):
    __tablename__ = "backtests"
    __table_args__ = (
        Index(None, "strategy"),
        Index(None, "status"),
        one_of("status", JobStatus),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_range"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    strategy: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict[str, Any]]
    instruments: Mapped[list[str]] = mapped_column(JSON)
    bar_size: Mapped[str] = mapped_column(String(8))
    start: Mapped[datetime | None]
    end: Mapped[datetime | None]
    costs: Mapped[dict[str, Any]]
    status: Mapped[str] = mapped_column(String(16))
    progress: Mapped[float] = mapped_column(Float)
    stats: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    artifacts: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # Sizing, stops, long/short, portfolio or per-instrument mode, ranking metric, ...
    options: Mapped[dict[str, Any]]


class BacktestResultRow(Base):
    """One instrument's (or the portfolio's) outcome of a backtest job."""

    __tablename__ = "backtest_results"
    __table_args__ = (UniqueConstraint("backtest_id", "instrument"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    backtest_id: Mapped[int] = mapped_column(ForeignKey("backtests.id", ondelete="CASCADE"))
    instrument: Mapped[str] = mapped_column(String(48))  # an id, or "portfolio"
    stats: Mapped[dict[str, Any]]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]


class OptimizationRow(Base):
    __tablename__ = "optimizations"
    __table_args__ = (
        UniqueConstraint("study_name"),
        Index(None, "status"),
        one_of("status", JobStatus),
        CheckConstraint("n_trials > 0", name="n_trials_positive"),
        CheckConstraint("progress >= 0 AND progress <= 1", name="progress_range"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    study_name: Mapped[str] = mapped_column(String(200))
    strategy: Mapped[str] = mapped_column(String(100))
    space: Mapped[dict[str, Any]]
    objective: Mapped[str] = mapped_column(String(64))
    n_trials: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    best_params: Mapped[dict[str, Any] | None]
    best_value: Mapped[float | None] = mapped_column(Float)
    report: Mapped[dict[str, Any] | None]
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    # The study spec as submitted; trial counts; the Ray Job, timings and sweep figures.
    spec: Mapped[dict[str, Any]]
    progress: Mapped[float] = mapped_column(Float)
    n_complete: Mapped[int] = mapped_column(Integer)
    n_failed: Mapped[int] = mapped_column(Integer)
    artifacts: Mapped[dict[str, Any]]
    started_at: Mapped[datetime | None]


class DeploymentRow(Base):
    __tablename__ = "deployments"
    __table_args__ = (
        Index(None, "status"),
        one_of("mode", TradingMode),
        one_of("status", DeploymentStatus),
        CheckConstraint(f"bar_size IN ({', '.join(map(repr, BAR_SIZES))})", name="bar_size_valid"),
        CheckConstraint("capital IS NULL OR capital > 0", name="capital_positive"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    strategy: Mapped[str] = mapped_column(String(100))
    params: Mapped[dict[str, Any]]
    instruments: Mapped[list[str]] = mapped_column(JSON)
    mode: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # Revision 0008: the rest of the spec (capital NULL on older rows), the rule-spec
    # document of a rule-spec strategy, and the strategy runner's state.
    bar_size: Mapped[str] = mapped_column(String(8))
    capital: Mapped[Decimal | None]
    account: Mapped[str] = mapped_column(String(32))
    rule_spec: Mapped[dict[str, Any] | None]
    runner_state: Mapped[dict[str, Any] | None]
    started_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]


class OrderRow(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("order_ref"),
        Index(None, "status"),
        Index(None, "deployment_id"),
        one_of("side", Side),
        one_of("order_type", OrderType),
        one_of("tif", TimeInForce),
        one_of("status", OrderStatus),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("limit_price IS NULL OR limit_price > 0", name="limit_price_positive"),
        CheckConstraint("stop_price IS NULL OR stop_price > 0", name="stop_price_positive"),
        required_for("limit_price", LIMIT_TYPES),
        required_for("stop_price", STOP_TYPES),
        CheckConstraint(
            "filled_quantity >= 0 AND filled_quantity <= quantity", name="filled_quantity_range"
        ),
        CheckConstraint(
            "avg_fill_price IS NULL OR avg_fill_price > 0", name="avg_fill_price_positive"
        ),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_ref: Mapped[str] = mapped_column(String(64))
    deployment_id: Mapped[int | None] = mapped_column(ForeignKey("deployments.id"))
    broker_order_id: Mapped[int | None] = mapped_column(BigInteger)
    perm_id: Mapped[int | None] = mapped_column(BigInteger)
    instrument: Mapped[str] = mapped_column(String(48))
    con_id: Mapped[int | None] = mapped_column(BigInteger)
    side: Mapped[str] = mapped_column(String(4))
    order_type: Mapped[str] = mapped_column(String(8))
    quantity: Mapped[Decimal]
    limit_price: Mapped[Decimal | None]
    stop_price: Mapped[Decimal | None]
    tif: Mapped[str] = mapped_column(String(8))
    status: Mapped[str] = mapped_column(String(20))
    filled_quantity: Mapped[Decimal]
    avg_fill_price: Mapped[Decimal | None]
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class ExecutionRow(Base):
    __tablename__ = "executions"
    __table_args__ = (
        UniqueConstraint("exec_id"),
        Index(None, "order_id"),
        one_of("side", Side),
        CheckConstraint("quantity > 0", name="quantity_positive"),
        CheckConstraint("price > 0", name="price_positive"),
        CheckConstraint("commission >= 0", name="commission_nonnegative"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    exec_id: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    instrument: Mapped[str] = mapped_column(String(48))
    con_id: Mapped[int | None] = mapped_column(BigInteger)
    side: Mapped[str] = mapped_column(String(4))
    quantity: Mapped[Decimal]
    price: Mapped[Decimal]
    commission: Mapped[Decimal]
    time: Mapped[datetime]


class PositionRow(Base):
    __tablename__ = "positions"
    __table_args__ = (
        UniqueConstraint("account", "instrument"),
        CheckConstraint("avg_cost >= 0", name="avg_cost_nonnegative"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    account: Mapped[str] = mapped_column(String(32))
    instrument: Mapped[str] = mapped_column(String(48))
    con_id: Mapped[int | None] = mapped_column(BigInteger)
    quantity: Mapped[Decimal]
    avg_cost: Mapped[Decimal]
    updated_at: Mapped[datetime]


class RiskLimitRow(Base):
    """One scope's limits (``global`` or ``deployment:<id>``), as a JSON mapping."""

    __tablename__ = "risk_limits"
    __table_args__ = (UniqueConstraint("scope"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(64))
    limits: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(100))


class RiskStateRow(Base):
    """The kill switch's state: one row, ``id = 1``."""

    __tablename__ = "risk_state"
    __table_args__ = (CheckConstraint("id = 1", name="single_row"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[dict[str, Any]]
    updated_at: Mapped[datetime]


class RiskEventRow(Base):
    __tablename__ = "risk_events"
    __table_args__ = (Index(None, "time"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(32))
    limit_name: Mapped[str | None] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]]
    order_ref: Mapped[str | None] = mapped_column(String(64))


class ApiTokenRow(Base):
    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("token_hash"), one_of("scope", TokenScope))
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(8))
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    expires_at: Mapped[datetime | None]


class AuditRow(Base):
    __tablename__ = "audit_log"
    __table_args__ = (Index(None, "time"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    time: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(100))
    action: Mapped[str] = mapped_column(String(100))
    detail: Mapped[dict[str, Any]]
    status: Mapped[int | None] = mapped_column(Integer)  # the HTTP status answered
    request_id: Mapped[str | None] = mapped_column(String(64))
