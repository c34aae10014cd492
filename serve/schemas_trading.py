"""Pydantic models of the trading routes: deployments, orders, executions, positions,
performance, the account and the emergency stop.

Amounts and quantities travel as strings (Decimal), as the risk routes' do.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from actors.positions import PositionState
from core.types import Fill, OrderType, Side, TimeInForce
from serve.schemas import INSTRUMENT_PATTERN, NAME_PATTERN
from serve.schemas_risk import DecisionView
from storage.catalog.records import DeploymentRecord, OrderRecord

BarSize = Literal["1s", "5s", "30s", "1m", "5m", "15m", "30m", "1h", "1d"]
Instrument = Field(pattern=INSTRUMENT_PATTERN, max_length=48, examples=["AAPL.NASDAQ"])


class DeploymentRequest(BaseModel):
    """A strategy to deploy: a library strategy by name (see ``GET /strategies``)."""

    model_config = ConfigDict(extra="forbid")

    strategy: str = Field(pattern=NAME_PATTERN, max_length=64, examples=["sma_cross"])
    instruments: list[str] = Field(min_length=1, max_length=100, examples=[["AAPL.NASDAQ"]])
    capital: Decimal = Field(gt=0, le=10**12, examples=["100000"])
    params: dict[str, Any] = Field(default_factory=dict, examples=[{"fast": 10, "slow": 50}])
    bar_size: BarSize = "1d"
    account: str = Field("", max_length=32, description="The IB account ('': the only one)",
                         examples=["DU1234567"])  # fmt: skip
    mode: Literal["paper", "live"] = "paper"
    start: bool = Field(False, description="Start the runner at once (paper only: a live "
                        "deployment starts with /start and confirm_live)")  # fmt: skip


class DeploymentView(BaseModel):
    """A deployment as stored: its spec, status and the runner's saved state."""

    id: int
    strategy: str
    params: dict[str, Any]
    instruments: list[str]
    mode: str
    status: str = Field(examples=["created", "running", "paused", "stopped", "failed"])
    bar_size: str
    capital: Decimal | None
    account: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    runner_state: dict[str, Any] | None

    @classmethod
    def of(cls, record: DeploymentRecord) -> DeploymentView:
        """The view of a catalog deployment."""
        return cls(
            id=record.id, strategy=record.strategy, params=record.params,
            instruments=record.instruments, mode=str(record.mode), status=str(record.status),
            bar_size=record.bar_size, capital=record.capital, account=record.account,
            created_at=record.created_at, updated_at=record.updated_at,
            started_at=record.started_at, stopped_at=record.stopped_at,
            runner_state=record.runner_state,
        )  # fmt: skip


class DeploymentPageView(BaseModel):
    """A page of deployments, newest first; ``total`` says how many match in all."""

    total: int
    offset: int
    limit: int
    items: list[DeploymentView]


class StartRequest(BaseModel):
    """Start (or restart) a deployment."""

    model_config = ConfigDict(extra="forbid")

    confirm_live: bool = Field(False, description="Required (true) to start a live deployment")


class StopRequest(BaseModel):
    """Stop a deployment."""

    model_config = ConfigDict(extra="forbid")

    flatten: bool = Field(False, description="First send the orders that zero its positions")


class LifecycleView(BaseModel):
    """A deployment after a lifecycle call, with what its runner reports."""

    deployment: DeploymentView
    runner: dict[str, Any]


class OrderRequest(BaseModel):
    """A manual order: checked by the risk manager, then sent by the order manager."""

    model_config = ConfigDict(extra="forbid")

    instrument: str = Instrument
    side: Side
    quantity: Decimal = Field(gt=0, le=10**9, examples=["10"])
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = Field(None, gt=0, le=10**9)
    stop_price: Decimal | None = Field(None, gt=0, le=10**9)
    tif: TimeInForce = TimeInForce.DAY
    order_ref: str = Field(
        "", max_length=64, pattern=r"^[A-Za-z0-9_.:-]*$",
        description="Your idempotency key: the same order_ref is never sent twice ('': new)",
    )  # fmt: skip


class OrderView(BaseModel):
    """An order as stored, with its broker state."""

    order_ref: str
    instrument: str
    side: str
    quantity: Decimal
    order_type: str
    limit_price: Decimal | None
    stop_price: Decimal | None
    tif: str
    deployment_id: int | None
    status: str = Field(examples=["Submitted", "Filled", "Cancelled", "Rejected"])
    filled_quantity: Decimal
    avg_fill_price: Decimal | None
    broker_order_id: int | None
    perm_id: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, record: OrderRecord) -> OrderView:
        """The view of a stored order."""
        o = record.order
        return cls(
            order_ref=o.order_ref, instrument=o.instrument, side=str(o.side), quantity=o.quantity,
            order_type=str(o.order_type), limit_price=o.limit_price, stop_price=o.stop_price,
            tif=str(o.tif), deployment_id=o.deployment_id, status=str(record.status),
            filled_quantity=record.filled_quantity, avg_fill_price=record.avg_fill_price,
            broker_order_id=record.broker_order_id, perm_id=record.perm_id,
            created_at=o.created_at, updated_at=record.updated_at,
        )  # fmt: skip


class SubmissionView(BaseModel):
    """What the order manager did with a submitted order."""

    order: OrderView
    sent: bool = Field(description="This request sent it to the broker")
    duplicate: bool = Field(description="The order_ref was already stored: nothing was done")
    message: str
    decision: DecisionView | None


class OrderPageView(BaseModel):
    """A page of orders, newest first; ``total`` says how many match in all."""

    total: int
    offset: int
    limit: int
    items: list[OrderView]


class ExecutionView(BaseModel):
    """One execution (fill) of an order."""

    exec_id: str
    order_ref: str
    instrument: str
    side: str
    quantity: Decimal
    price: Decimal
    commission: Decimal
    time: datetime

    @classmethod
    def of(cls, fill: Fill) -> ExecutionView:
        """The view of a stored fill."""
        return cls(exec_id=fill.exec_id, order_ref=fill.order_ref, instrument=fill.instrument,
                   side=str(fill.side), quantity=fill.quantity, price=fill.price,
                   commission=fill.commission, time=fill.time)  # fmt: skip


class ExecutionPageView(BaseModel):
    """A page of executions, newest first; ``total`` says how many match in all."""

    total: int
    offset: int
    limit: int
    items: list[ExecutionView]


class PositionView(BaseModel):
    """One instrument's position from the stored executions (IB's average cost)."""

    instrument: str
    quantity: Decimal
    avg_cost: Decimal
    last_price: Decimal | None
    realized_pnl: Decimal = Field(description="Before commissions")
    unrealized_pnl: Decimal | None = Field(description="At last_price; null without one")
    commission: Decimal
    fills: int

    @classmethod
    def of(cls, state: PositionState) -> PositionView:
        """The view of a position."""
        return cls(instrument=state.instrument, quantity=state.quantity,
                   avg_cost=state.avg_cost, last_price=state.last_price,
                   realized_pnl=state.realized_pnl, unrealized_pnl=state.unrealized_pnl,
                   commission=state.commission, fills=state.fills)  # fmt: skip


class PositionsView(BaseModel):
    """Every position, by instrument."""

    items: list[PositionView]


class PnlView(BaseModel):
    """Positions and their P&L summed."""

    positions: list[PositionView]
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    commission: Decimal
    net_pnl: Decimal = Field(description="realized + unrealized - commission")

    @classmethod
    def of(cls, summary: dict[str, Any]) -> PnlView:
        """The view of :func:`actors.trading_ops.summary`'s mapping."""
        return cls(**{**summary, "positions": [PositionView.of(p) for p in summary["positions"]]})


class DeploymentPnlView(PnlView):
    """One deployment's positions and P&L (``deployment_id`` null: manual orders)."""

    deployment_id: int | None
    strategy: str
    status: str


class PerformanceView(BaseModel):
    """P&L per deployment and in total."""

    deployments: list[DeploymentPnlView]
    total: PnlView

    @classmethod
    def of(cls, report: dict[str, Any]) -> PerformanceView:
        """The view of :func:`actors.trading_ops.performance`'s mapping."""
        entries = [
            DeploymentPnlView(**{**e, "positions": [PositionView.of(p) for p in e["positions"]]})
            for e in report["deployments"]
        ]
        return cls(deployments=entries, total=PnlView.of(report["total"]))


class AccountView(BaseModel):
    """The gateway's account summary."""

    accounts: dict[str, dict[str, str]] = Field(
        examples=[{"DU1234567": {"NetLiquidation": "1000000", "TotalCashValue": "1000000"}}]
    )


class EmergencyStopRequest(BaseModel):
    """Halt trading."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=500, examples=["gap down at the open"])
    flatten: bool = Field(False, description="Also close every position at market")


class EmergencyStopView(BaseModel):
    """What the emergency stop did."""

    halted: dict[str, Any] = Field(description="The kill switch's event")
    paused: list[int] = Field(description="Deployments paused")
    cancelled: list[str] = Field(description="Orders cancelled (order refs)")
    flatten_orders: list[str] = Field(description="Orders sent to close positions")
    failures: list[str]


class ResetView(BaseModel):
    """The kill switch cleared; the deployments still paused (resume each one)."""

    reset: dict[str, Any]
    paused: list[int]
