"""Pydantic models of the risk routes: the limit book, risk events, a check, the state.

Limits travel as plain mappings (``actors.risk_limits.RiskLimits.to_mapping``'s layout:
amounts as strings, ``null`` for no limit); the risk manager checks them field by field, so
a bad one is a 422 naming ``limits.<field>``.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from actors.risk_limits import LimitBook
from actors.risk_rules import Decision
from actors.risk_state import KillSwitch
from core.types import OrderType, Side
from serve.schemas import INSTRUMENT_PATTERN
from storage.catalog.records import RiskEvent

LIMITS_EXAMPLE: dict[str, Any] = {
    "global": {"max_order_notional": "100000", "max_daily_loss": "5000", "trading_hours": True},
    "deployments": {"7": {"max_position": "500"}},
}


class LimitBookView(BaseModel):
    """The account's limits and each deployment's override (the stricter of the two holds)."""

    model_config = ConfigDict(populate_by_name=True)

    global_: dict[str, Any] = Field(alias="global", description="The account's limits")
    deployments: dict[str, dict[str, Any]] = Field(description="Overrides by deployment id")

    @classmethod
    def of(cls, book: LimitBook) -> LimitBookView:
        """The view of ``book``."""
        data = book.to_mapping()
        return cls.model_validate({"global": data["global"], "deployments": data["deployments"]})


LIMITS_BODY: dict[str, Any] = {
    "description": (
        'Either a book, {"global": {...}, "deployments": {"7": {...}}}, replacing the scopes '
        'it names, or one scope, {"scope": "deployment:7", "limits": {...}}; names left out '
        "of a scope's limits have no limit"
    ),
    "examples": [LIMITS_EXAMPLE, {"scope": "global", "limits": {"max_order_quantity": 1000}}],
}


class RiskEventView(BaseModel):
    """Something the risk manager did or refused."""

    id: int
    time: datetime
    kind: str = Field(examples=["rejected", "halted", "emergency_stop", "reset",
                                "limits_changed"])  # fmt: skip
    limit_name: str | None
    order_ref: str | None
    detail: dict[str, Any]

    @classmethod
    def of(cls, event: RiskEvent) -> RiskEventView:
        """The view of a catalog event."""
        return cls(id=event.id, time=event.time, kind=event.kind, limit_name=event.limit_name,
                   order_ref=event.order_ref, detail=event.detail)  # fmt: skip


class RiskEventPageView(BaseModel):
    """A page of risk events, newest first; ``total`` says how many match in all."""

    total: int
    offset: int
    limit: int
    items: list[RiskEventView]


class CheckOrder(BaseModel):
    """The order to check."""

    model_config = ConfigDict(extra="forbid")

    instrument: str = Field(pattern=INSTRUMENT_PATTERN, max_length=48, examples=["BHP.ASX"])
    side: Side
    quantity: Decimal = Field(gt=0, examples=["100"])
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = Field(None, gt=0)
    stop_price: Decimal | None = Field(None, gt=0)
    deployment_id: int | None = Field(None, ge=1)
    order_ref: str = Field("", max_length=64)


class CheckContext(BaseModel):
    """What the check knows; equity left out comes from the marks the manager observed."""

    model_config = ConfigDict(extra="forbid")

    now: datetime | None = Field(default=None, description="Default: now (timezone-aware)")
    positions: dict[str, Decimal] = Field(default_factory=dict, examples=[{"BHP.ASX": "200"}])
    last_prices: dict[str, Decimal] = Field(default_factory=dict, examples=[{"BHP.ASX": "45.10"}])
    equity: Decimal | None = None
    day_start_equity: Decimal | None = None
    high_water_mark: Decimal | None = None
    recent_orders: dict[str, list[datetime]] = Field(
        default_factory=dict,
        description="Send times of recent orders by deployment id ('manual' for none)",
    )


class CheckRequest(BaseModel):
    """An order and, optionally, the context to check it in."""

    model_config = ConfigDict(extra="forbid")

    order: CheckOrder
    context: CheckContext = Field(default_factory=lambda: CheckContext())


class BreachView(BaseModel):
    """One limit the order breaks."""

    limit: str = Field(examples=["max_order_notional"])
    limit_value: Any
    observed: Any
    message: str


class DecisionView(BaseModel):
    """The verdict: accepted when nothing is breached."""

    accepted: bool
    message: str
    breaches: list[BreachView]

    @classmethod
    def of(cls, decision: Decision) -> DecisionView:
        """The view of the engine's decision."""
        return cls(accepted=decision.accepted, message=decision.message,
                   breaches=[BreachView(**b.to_mapping()) for b in decision.breaches])  # fmt: skip


class RiskStateView(BaseModel):
    """Whether orders pass, why not, and the equity marks the loss limits measure against."""

    state: Literal["ACTIVE", "HALTED"]
    halted: bool
    reason: str
    halted_at: datetime | None
    halted_by: str
    halted_limit: str | None
    flatten: bool
    marks: dict[str, Any] | None

    @classmethod
    def of(cls, switch: KillSwitch) -> RiskStateView:
        """The view of the kill switch."""
        data = switch.to_mapping()
        return cls(state=switch.state.value, halted=switch.halted, reason=switch.reason,
                   halted_at=switch.halted_at, halted_by=switch.halted_by,
                   halted_limit=switch.halted_limit, flatten=switch.flatten,
                   marks=data["marks"])  # fmt: skip
