"""Orders, executions, positions and the account over HTTP (scope ``trade``).

A manual order (``POST /orders``) takes the path a strategy's does: the order manager's
submit, which has the risk manager check it first. A refusal is a 422 listing every breach
and the order is never sent; the same ``order_ref`` sent again is answered with the stored
order (200, ``duplicate: true``) and never reaches the broker twice. ``DELETE
/orders/{order_ref}`` asks the broker to cancel. Positions and P&L come from the stored
executions; ``GET /account`` is the gateway's account summary.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Response
from fastapi.responses import JSONResponse

from core.errors import ValidationError
from core.instruments import parse
from core.types import Order, OrderStatus
from serve.auth import needs
from serve.context import ApiContext
from serve.routes.common import ERRORS, context_of
from serve.schemas import Problem
from serve.schemas_risk import DecisionView
from serve.schemas_trading import (
    AccountView,
    ExecutionPageView,
    ExecutionView,
    OrderPageView,
    OrderRequest,
    OrderView,
    PositionsView,
    PositionView,
    SubmissionView,
)

router = APIRouter(tags=["orders"], responses=ERRORS)

TRADE = needs("trade")
ORDER_REF = Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$",
                 description="The order's reference (POST /orders answered it)")  # fmt: skip
INSTRUMENT_QUERY = Query(None, max_length=48, description="Canonical id, e.g. AAPL.NASDAQ")
SUBMITTED: dict[int | str, dict[str, Any]] = {
    200: {"model": SubmissionView,
          "description": "The order_ref was already stored: the stored order, nothing sent"},
    422: {"model": Problem,
          "description": "Bad input, or refused by the risk manager (the body has the decision "
                         "with every breach, and the order stored Rejected) or the broker"},
}  # fmt: skip


@router.post("/orders", response_model=SubmissionView, status_code=201, openapi_extra=TRADE,
             responses=SUBMITTED)  # fmt: skip
def submit_order(
    body: OrderRequest, response: Response, context: ApiContext = Depends(context_of)
) -> Any:
    """Send a manual order through the risk manager and the order manager."""
    order = Order(
        instrument=str(parse(body.instrument, field="instrument")), side=body.side,
        quantity=body.quantity, order_type=body.order_type, limit_price=body.limit_price,
        stop_price=body.stop_price, tif=body.tif, order_ref=body.order_ref,
    )  # fmt: skip
    done = context.trading.submit(order)
    view = SubmissionView(
        order=OrderView.of(done.record), sent=done.sent, duplicate=done.duplicate,
        message=done.message,
        decision=None if done.decision is None else DecisionView.of(done.decision),
    )  # fmt: skip
    if done.record.status == OrderStatus.REJECTED and not done.duplicate:
        refused_by_risk = done.decision is not None and not done.decision.accepted
        return JSONResponse(
            {"error": "RiskRejected" if refused_by_risk else "OrderRejected",
             "detail": done.message or "the order was rejected",
             **view.model_dump(mode="json")},
            status_code=422,
        )  # fmt: skip
    response.headers["Location"] = f"/orders/{done.record.order_ref}"
    if done.duplicate:
        response.status_code = 200
    return view


@router.get("/orders", response_model=OrderPageView, openapi_extra=TRADE)
def list_orders(
    context: ApiContext = Depends(context_of),
    status: OrderStatus | None = Query(None),
    open_only: bool = Query(False, alias="open", description="Only orders still working"),
    instrument: str | None = INSTRUMENT_QUERY,
    deployment_id: int | None = Query(None, ge=1, le=2**31 - 1),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> OrderPageView:
    """Orders, newest first, filtered; ``total`` says how many match in all."""
    records = context.trading.orders(
        open_only=open_only, deployment_id=deployment_id, instrument=_instrument(instrument)
    )
    if status is not None:
        records = [r for r in records if r.status == status]
    records = records[::-1]
    return OrderPageView(
        total=len(records), offset=offset, limit=limit,
        items=[OrderView.of(r) for r in records[offset : offset + limit]],
    )  # fmt: skip


@router.get("/orders/{order_ref}", response_model=OrderView, openapi_extra=TRADE)
def get_order(order_ref: str = ORDER_REF, context: ApiContext = Depends(context_of)) -> OrderView:
    """One order with its broker state."""
    return OrderView.of(context.trading.order(order_ref))


@router.delete(
    "/orders/{order_ref}",
    response_model=OrderView,
    openapi_extra=TRADE,
    responses={409: {"description": "The broker never acknowledged the order"}},
)
def cancel_order(
    order_ref: str = ORDER_REF, context: ApiContext = Depends(context_of)
) -> OrderView:  # fmt: skip
    """Ask the broker to cancel an open order; a finished one is answered unchanged."""
    return OrderView.of(context.trading.cancel(order_ref))


@router.get("/executions", response_model=ExecutionPageView, openapi_extra=TRADE)
def list_executions(
    context: ApiContext = Depends(context_of),
    instrument: str | None = INSTRUMENT_QUERY,
    order_ref: str | None = Query(None, max_length=64),
    since: datetime | None = Query(None, description="At or after (timezone-aware)"),
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=10_000_000),
) -> ExecutionPageView:
    """Executions, newest first, filtered; ``total`` says how many match in all."""
    if since is not None and since.utcoffset() is None:
        raise ValidationError("since needs a time zone, e.g. 2026-12-01T00:00:00Z", field="since")
    fills = context.trading.executions(order_ref=order_ref, since=since)
    wanted = _instrument(instrument)
    if wanted is not None:
        fills = [f for f in fills if f.instrument == wanted]
    fills = fills[::-1]
    return ExecutionPageView(
        total=len(fills), offset=offset, limit=limit,
        items=[ExecutionView.of(f) for f in fills[offset : offset + limit]],
    )  # fmt: skip


@router.get("/positions", response_model=PositionsView, openapi_extra=TRADE)
def list_positions(
    context: ApiContext = Depends(context_of),
    include_flat: bool = Query(False, description="Also instruments traded and flat now"),
) -> PositionsView:
    """Positions from the stored executions with realized/unrealized P&L and commissions."""
    held = context.trading.positions(include_flat=include_flat)
    return PositionsView(items=[PositionView.of(p) for p in held])


@router.get("/account", response_model=AccountView, openapi_extra=TRADE)
async def account(context: ApiContext = Depends(context_of)) -> AccountView:
    """The gateway's account summary: every account's values by tag."""
    return AccountView(accounts=await context.gateway.account_summary())


def _instrument(text: str | None) -> str | None:
    return None if text is None else str(parse(text, field="instrument"))
