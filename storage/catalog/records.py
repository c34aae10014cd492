"""Frozen records the catalog's repositories return (never ORM rows), and their status enums.

Orders, fills and positions use the core domain types (:class:`core.types.Order`,
:class:`core.types.Fill`, :class:`core.types.Position`); everything else the catalog stores
has a record here. Timestamps are timezone-aware UTC; money and quantities are ``Decimal``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

from core.types import Instrument, Order, OrderStatus, SecType, TradingMode


class RunStatus(StrEnum):
    """State of a whole collection run."""

    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class ItemStatus(StrEnum):
    """State of one (instrument, bar size) item of a collection run."""

    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class JobStatus(StrEnum):
    """State of a backtest or an optimization."""

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class DeploymentStatus(StrEnum):
    """State of a trading deployment; legal moves are in ``DEPLOYMENT_TRANSITIONS``."""

    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FAILED = "failed"


_D = DeploymentStatus
DEPLOYMENT_TRANSITIONS: dict[DeploymentStatus, frozenset[DeploymentStatus]] = {
    _D.CREATED: frozenset({_D.RUNNING, _D.STOPPED, _D.FAILED}),
    _D.RUNNING: frozenset({_D.PAUSED, _D.STOPPED, _D.FAILED}),
    _D.PAUSED: frozenset({_D.RUNNING, _D.STOPPED, _D.FAILED}),
    _D.STOPPED: frozenset({_D.RUNNING}),
    _D.FAILED: frozenset({_D.RUNNING, _D.STOPPED}),
}


class StrategyKind(StrEnum):
    """Where a strategy's logic lives."""

    LIBRARY = "library"
    RULE_SPEC = "rule_spec"


class TokenScope(StrEnum):
    """What an API token may do; each scope includes the ones before it."""

    READ = "read"
    RESEARCH = "research"
    TRADE = "trade"
    ADMIN = "admin"


@dataclass(frozen=True, slots=True, kw_only=True)
class SymbolRecord:
    """A listing of the universe. ``valid`` is None until IB has been asked about it.

    ``instrument_id`` is the canonical ``SYMBOL.VENUE`` the catalog stores; records built by
    hand leave it empty and :attr:`id` derives it from the symbol and exchanges.
    """

    symbol: str
    sec_type: SecType = SecType.STOCK
    exchange: str = "SMART"
    primary_exchange: str = ""
    currency: str = "USD"
    con_id: int | None = None
    name: str = ""
    universe: str | None = None
    valid: bool | None = None
    last_verified: datetime | None = None
    added_at: datetime | None = None
    instrument_id: str = ""

    @property
    def id(self) -> str:
        """The canonical instrument id (``VEA.ASX``)."""
        return self.instrument_id or self.instrument.id

    @property
    def instrument(self) -> Instrument:
        """The symbol as a core :class:`~core.types.Instrument`."""
        return Instrument(
            symbol=self.symbol,
            sec_type=self.sec_type,
            exchange=self.exchange,
            primary_exchange=self.primary_exchange,
            currency=self.currency,
            con_id=self.con_id,
            name=self.name,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectionItem:
    """One (instrument, bar size, range) unit of work of a collection run."""

    id: int
    run_id: int
    instrument: str
    bar_size: str
    start: datetime | None
    end: datetime | None
    status: ItemStatus
    bars_written: int
    error: str | None
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class CollectionRun:
    """A collection run with its item counts by status and the bars written so far."""

    id: int
    kind: str
    status: RunStatus
    created_at: datetime
    finished_at: datetime | None
    counts: dict[ItemStatus, int] = field(default_factory=dict)
    bars_written: int = 0
    owner: str | None = None
    lease_until: datetime | None = None

    @property
    def total(self) -> int:
        """Number of items in the run."""
        return sum(self.counts.values())


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyRecord:
    """A named strategy: a library strategy reference or a rule spec."""

    id: int
    name: str
    kind: StrategyKind
    spec: dict[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class BacktestRecord:
    """A backtest request and, once done, its stats and artifact paths."""

    id: int
    strategy: str
    params: dict[str, Any]
    instruments: list[str]
    bar_size: str
    start: datetime | None
    end: datetime | None
    costs: dict[str, Any]
    status: JobStatus
    progress: float
    stats: dict[str, Any] | None
    error: str | None
    artifacts: dict[str, Any]
    created_at: datetime
    finished_at: datetime | None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class OptimizationRecord:
    """An Optuna study run through the platform and its outcome."""

    id: int
    study_name: str
    strategy: str
    space: dict[str, Any]
    objective: str
    n_trials: int
    status: JobStatus
    best_params: dict[str, Any] | None
    best_value: float | None
    report: dict[str, Any] | None
    error: str | None
    created_at: datetime
    finished_at: datetime | None
    spec: dict[str, Any] = field(default_factory=dict)
    progress: float = 0.0
    n_complete: int = 0
    n_failed: int = 0
    artifacts: dict[str, Any] = field(default_factory=dict)
    started_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeploymentRecord:
    """A strategy deployed to paper or live trading.

    Attributes:
        strategy: a library strategy's name, or the rule spec's name when ``rule_spec``
            holds its document.
        params: the strategy's parameters as given (resolved by the strategy at start).
        instruments: canonical instrument ids, in order.
        bar_size: the bars it trades on (``1d``, ``5m``, ...).
        capital: the money allocated (None for rows from before revision 0008).
        account: the IB account it trades ("" when not set).
        rule_spec: the rule-spec document, or None for a library strategy.
        runner_state: the strategy runner's saved state (JSON; see
            ``actors.runner_state.RunnerState``), or None before its first bar.
        started_at, stopped_at: when it last started and stopped.
    """

    id: int
    strategy: str
    params: dict[str, Any]
    instruments: list[str]
    mode: TradingMode
    status: DeploymentStatus
    created_at: datetime
    updated_at: datetime
    bar_size: str = "1d"
    capital: Decimal | None = None
    account: str = ""
    rule_spec: dict[str, Any] | None = None
    runner_state: dict[str, Any] | None = None
    started_at: datetime | None = None
    stopped_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRecord:
    """An order as stored: the submitted :class:`~core.types.Order` plus its broker state."""

    id: int
    order: Order
    status: OrderStatus
    filled_quantity: Decimal
    avg_fill_price: Decimal | None
    broker_order_id: int | None
    perm_id: int | None
    updated_at: datetime

    @property
    def order_ref(self) -> str:
        """The order's unique client reference."""
        return self.order.order_ref

    @property
    def remaining(self) -> Decimal:
        """Quantity not yet filled."""
        return self.order.quantity - self.filled_quantity


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskLimitSet:
    """One scope's risk limits as stored: ``global`` or ``deployment:<id>``.

    Attributes:
        scope: ``global`` or ``deployment:<id>``.
        limits: The limits by name (``actors.risk_limits.RiskLimits.to_mapping``'s layout).
        legacy: Named values of an older catalog that are no limit of this version (kept
            by revision 0007, never read as limits).
        updated_at: When they were last set.
        updated_by: Who set them.
    """

    scope: str
    limits: dict[str, Any]
    legacy: dict[str, Any]
    updated_at: datetime
    updated_by: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskEvent:
    """Something the risk manager did or refused."""

    id: int
    time: datetime
    kind: str
    limit_name: str | None
    detail: dict[str, Any]
    order_ref: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class TokenRecord:
    """An API token's metadata (the plaintext is never stored)."""

    id: int
    scope: TokenScope
    name: str
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditEntry:
    """One line of the audit log."""

    id: int
    time: datetime
    actor: str
    action: str
    detail: dict[str, Any]
