"""Trading over HTTP: deployments and their lifecycle, performance, the emergency stop.

``POST /trading/deployments`` validates the spec through the strategy's own parameters
(a bad one is a 422 naming it, ``params.fast``) and stores it ``created``; ``start``,
``pause``, ``resume`` and ``stop`` go to the deployment's runner actor. A live deployment
starts only with ``{"confirm_live": true}``. ``POST /trading/emergency-stop`` halts the risk
manager's kill switch, pauses every running deployment, cancels every open order and, with
``flatten``, closes every position (:mod:`actors.trading_ops`); only an admin may reset it,
and deployments stay paused until each is resumed. Everything here needs scope ``trade``.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from actors import trading_ops
from actors.deployments import DeploymentSpec, create_deployment
from core.errors import Conflict, NotFound, ParameterError, ValidationError
from core.types import TradingMode
from serve.auth import needs
from serve.context import ApiContext
from serve.routes.common import ERRORS, context_of, principal_of
from serve.schemas_trading import (
    DeploymentPageView,
    DeploymentRequest,
    DeploymentView,
    EmergencyStopRequest,
    EmergencyStopView,
    LifecycleView,
    PerformanceView,
    ResetView,
    StartRequest,
    StopRequest,
)
from storage.catalog import DeploymentStatus

router = APIRouter(tags=["trading"], responses=ERRORS)

TRADE = needs("trade")
DEPLOYMENT_ID = Path(ge=1, le=2**31 - 1, description="The id POST /trading/deployments gave")
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {"description": "The deployment's status cannot make that move"}
}
Status = Literal["created", "running", "paused", "stopped", "failed"]


@router.post("/trading/deployments", response_model=DeploymentView, status_code=201,
             openapi_extra=TRADE)  # fmt: skip
def create(body: DeploymentRequest, context: ApiContext = Depends(context_of)) -> DeploymentView:
    """Check a deployment spec and store it as ``created`` (start it with ``/start``, or at
    once with ``start: true`` on paper)."""
    if body.start and body.mode == "live":
        raise ValidationError(
            "a live deployment is not started on creation: create it, then POST "
            "/trading/deployments/{id}/start with {\"confirm_live\": true}", field="start",
        )  # fmt: skip
    spec = DeploymentSpec(
        strategy=body.strategy, instruments=body.instruments, capital=body.capital,
        params=body.params, account=body.account, mode=body.mode, bar_size=body.bar_size,
    )  # fmt: skip
    try:
        record = create_deployment(context.catalog, spec)
    except NotFound as exc:  # an unknown strategy is bad input, not a missing resource
        raise ValidationError(str(exc), field="strategy") from exc
    except ParameterError as exc:
        field = f"params.{exc.field}" if exc.field else "params"
        raise ValidationError(str(exc), field=field) from exc
    if body.start:
        context.trading.start(record.id, confirm_live=False)
        record = context.catalog.deployments.get(record.id)
    return DeploymentView.of(record)


@router.get("/trading/deployments", response_model=DeploymentPageView, openapi_extra=TRADE)
def list_deployments(
    context: ApiContext = Depends(context_of),
    status: Status | None = Query(None),
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=1_000_000),
) -> DeploymentPageView:
    """Deployments, newest first, optionally of one status."""
    records = context.catalog.deployments.list(
        status=None if status is None else DeploymentStatus(status)
    )
    records = sorted(records, key=lambda r: r.id, reverse=True)
    return DeploymentPageView(
        total=len(records), offset=offset, limit=limit,
        items=[DeploymentView.of(r) for r in records[offset : offset + limit]],
    )  # fmt: skip


@router.get("/trading/deployments/{deployment_id}", response_model=DeploymentView,
            openapi_extra=TRADE)  # fmt: skip
def get_deployment(
    deployment_id: int = DEPLOYMENT_ID, context: ApiContext = Depends(context_of)
) -> DeploymentView:
    """One deployment: its spec, status, and the runner's saved state."""
    return DeploymentView.of(context.catalog.deployments.get(deployment_id))


@router.post("/trading/deployments/{deployment_id}/start", response_model=LifecycleView,
             openapi_extra=TRADE, responses=CONFLICT)  # fmt: skip
def start(
    deployment_id: int = DEPLOYMENT_ID,
    body: StartRequest | None = Body(None),
    context: ApiContext = Depends(context_of),
) -> LifecycleView:
    """Start (or restart) a deployment's runner; a live one needs ``confirm_live: true``."""
    record = context.catalog.deployments.get(deployment_id)
    confirm = body is not None and body.confirm_live
    if record.mode == TradingMode.LIVE and not confirm:
        raise ValidationError(
            f"deployment {deployment_id} trades live money: send {{\"confirm_live\": true}} "
            "to start it", field="confirm_live",
        )  # fmt: skip
    runner = context.trading.start(deployment_id, confirm_live=confirm)
    return _lifecycle(context, deployment_id, runner)


@router.post("/trading/deployments/{deployment_id}/stop", response_model=LifecycleView,
             openapi_extra=TRADE, responses=CONFLICT)  # fmt: skip
def stop(
    deployment_id: int = DEPLOYMENT_ID,
    body: StopRequest | None = Body(None),
    context: ApiContext = Depends(context_of),
) -> LifecycleView:
    """Stop a deployment; ``flatten: true`` first sends the orders that zero its positions."""
    context.catalog.deployments.get(deployment_id)  # 404 before any actor is made
    flatten = body is not None and body.flatten
    return _lifecycle(context, deployment_id, context.trading.stop(deployment_id, flatten=flatten))


@router.post("/trading/deployments/{deployment_id}/pause", response_model=LifecycleView,
             openapi_extra=TRADE, responses=CONFLICT)  # fmt: skip
def pause(
    deployment_id: int = DEPLOYMENT_ID, context: ApiContext = Depends(context_of)
) -> LifecycleView:
    """Pause a running deployment: it sends no orders and keeps its positions."""
    _needs_status(context, deployment_id, DeploymentStatus.RUNNING, "pause")
    return _lifecycle(context, deployment_id, context.trading.pause(deployment_id))


@router.post("/trading/deployments/{deployment_id}/resume", response_model=LifecycleView,
             openapi_extra=TRADE, responses=CONFLICT)  # fmt: skip
def resume(
    deployment_id: int = DEPLOYMENT_ID, context: ApiContext = Depends(context_of)
) -> LifecycleView:
    """Resume a paused deployment: it acts again from its next bar."""
    _needs_status(context, deployment_id, DeploymentStatus.PAUSED, "resume")
    return _lifecycle(context, deployment_id, context.trading.resume(deployment_id))


@router.get("/trading/performance", response_model=PerformanceView, openapi_extra=TRADE)
def performance(context: ApiContext = Depends(context_of)) -> PerformanceView:
    """Positions, realized and unrealized P&L and commissions per deployment and in total."""
    trading = context.trading
    report = trading_ops.performance(
        deployments=sorted(context.catalog.deployments.list(), key=lambda r: r.id),
        orders=trading.orders(),
        fills=trading.executions(),
        positions=trading.positions(include_flat=True),
    )
    return PerformanceView.of(report)


@router.post("/trading/emergency-stop", response_model=EmergencyStopView, openapi_extra=TRADE)
def emergency_stop(
    request: Request, body: EmergencyStopRequest, context: ApiContext = Depends(context_of)
) -> EmergencyStopView:
    """Halt trading: the kill switch, every running deployment paused, every open order
    cancelled and, with ``flatten``, every position closed at market."""
    by = principal_of(request).name
    done = context.trading.emergency_stop(reason=body.reason, by=by, flatten=body.flatten)
    return EmergencyStopView(**done)


@router.post("/trading/emergency-stop/reset", response_model=ResetView,
             openapi_extra=needs("admin"), responses=CONFLICT)  # fmt: skip
def reset(request: Request, context: ApiContext = Depends(context_of)) -> ResetView:
    """Clear the kill switch (409 if trading is not halted); deployments stay paused."""
    return ResetView(**context.trading.reset(by=principal_of(request).name))


def _needs_status(
    context: ApiContext, deployment_id: int, status: DeploymentStatus, move: str
) -> None:
    record = context.catalog.deployments.get(deployment_id)
    if record.status != status:
        raise Conflict(f"deployment {deployment_id} is {record.status}; only a {status} "
                       f"deployment can {move}")  # fmt: skip


def _lifecycle(context: ApiContext, deployment_id: int, runner: dict[str, Any]) -> LifecycleView:
    record = context.catalog.deployments.get(deployment_id)
    return LifecycleView(deployment=DeploymentView.of(record), runner=runner)
