"""The risk manager over HTTP: limits, events, a dry-run check, the trading state.

Each route reads the catalog afresh (the risk manager of :attr:`ApiContext.risk` reloads its
book and kill switch), so what it shows is what the trading actors enforce. Reading needs
scope ``trade``; changing limits needs ``admin`` and is all or nothing: a bad field is a
422 naming it (``limits.max_order_notional``) and nothing is written.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Body, Depends, Query, Request

from actors.risk_rules import RiskContext
from core.errors import ValidationError
from core.types import Order, utcnow
from serve.auth import needs
from serve.context import ApiContext
from serve.routes.common import ERRORS, context_of, principal_of
from serve.schemas_risk import (
    LIMITS_BODY,
    CheckRequest,
    DecisionView,
    LimitBookView,
    RiskEventPageView,
    RiskEventView,
    RiskStateView,
)

router = APIRouter(tags=["risk"], responses=ERRORS)

EVENT_KINDS = ("rejected", "halted", "emergency_stop", "reset", "limits_changed")


@router.get("/risk/limits", response_model=LimitBookView, openapi_extra=needs("trade"))
def get_limits(context: ApiContext = Depends(context_of)) -> LimitBookView:
    """The account's limits and each deployment's override."""
    context.risk.reload()
    return LimitBookView.of(context.risk.limits())


@router.put("/risk/limits", response_model=LimitBookView, openapi_extra=needs("admin"))
def put_limits(
    request: Request,
    body: dict[str, Any] = Body(..., **LIMITS_BODY),
    context: ApiContext = Depends(context_of),
) -> LimitBookView:
    """Replace the limits of the scopes the body names; answers the whole book."""
    by = principal_of(request).name
    if "scope" in body:
        extra = sorted(set(body) - {"scope", "limits"})
        if extra:
            raise ValidationError(
                f"{extra[0]} is not part of a one-scope body; send scope and limits",
                field=extra[0],
            )
        book = context.risk.set_limits(str(body["scope"]), body.get("limits") or {}, by=by)
    else:
        book = context.risk.set_book(body, by=by)
    context.trading.limits_changed()  # the risk-manager actor enforces them from now on
    return LimitBookView.of(book)


@router.get("/risk/events", response_model=RiskEventPageView, openapi_extra=needs("trade"))
def list_events(
    context: ApiContext = Depends(context_of),
    kind: str | None = Query(None, pattern="^(" + "|".join(EVENT_KINDS) + ")$"),
    since: datetime | None = Query(None, description="Events at or after (timezone-aware)"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> RiskEventPageView:
    """Risk events, newest first, a page at a time; ``total`` says how many match in all."""
    if since is not None and since.utcoffset() is None:
        raise ValidationError("since needs a time zone, e.g. 2026-12-01T00:00:00Z", field="since")
    repo = context.catalog.risk
    items = repo.events(since=since, kind=kind, limit=limit, offset=offset)
    return RiskEventPageView(
        total=repo.count_events(since=since, kind=kind), offset=offset, limit=limit,
        items=[RiskEventView.of(e) for e in items],
    )  # fmt: skip


@router.post("/risk/check", response_model=DecisionView, openapi_extra=needs("trade"))
def check_order(body: CheckRequest, context: ApiContext = Depends(context_of)) -> DecisionView:
    """Check an order against the limits in force: a dry run, so nothing is recorded.

    Answers 200 with every breach whether the order would pass or not; no ``rejected``
    event is written (only orders really sent are), and no order is sent.
    """
    context.risk.reload()
    spec = body.order
    order = Order(
        instrument=spec.instrument, side=spec.side, quantity=spec.quantity,
        order_type=spec.order_type, limit_price=spec.limit_price, stop_price=spec.stop_price,
        deployment_id=spec.deployment_id, order_ref=spec.order_ref,
    )  # fmt: skip
    c = body.context
    risk_context = RiskContext(
        now=c.now or utcnow(), positions=c.positions, last_prices=c.last_prices,
        equity=c.equity, day_start_equity=c.day_start_equity, high_water_mark=c.high_water_mark,
        recent_orders={_deployment(k): v for k, v in c.recent_orders.items()},
    )  # fmt: skip
    return DecisionView.of(context.risk.check(order, risk_context, record=False))


@router.get("/risk/state", response_model=RiskStateView, openapi_extra=needs("trade"))
def get_state(context: ApiContext = Depends(context_of)) -> RiskStateView:
    """Whether trading is halted, since when, by whom and why."""
    context.risk.reload()
    return RiskStateView.of(context.risk.state())


def _deployment(key: str) -> int | None:
    if key == "manual":
        return None
    try:
        return int(key)
    except ValueError:
        raise ValidationError(
            f"context.recent_orders keys are deployment ids or 'manual'; got {key!r}",
            field="context.recent_orders",
        ) from None
