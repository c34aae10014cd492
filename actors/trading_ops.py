"""Trading operations the HTTP routes and the CLI share: the emergency stop, its reset, and
performance per deployment.

:func:`emergency_stop` halts the risk manager's kill switch first (so no order a runner sends
meanwhile gets through), then pauses every running deployment, then cancels every open order
and, with ``flatten``, sends the orders that bring every broker position to zero (the order
manager's :meth:`~actors.order_manager.OrderManager.emergency_flatten`, which bypasses the
halted risk check). Every step is attempted; a failure is reported, never stops the rest.
:func:`reset` clears the kill switch only: paused deployments stay paused until resumed.

:func:`stop_trading` and :func:`performance` are plain functions over plain objects (tests
drive them without Ray); :func:`emergency_stop` and :func:`reset` reach the cluster's actors.

Example:
    >>> emergency_stop(settings, "gap down", by="ops", flatten=True)["paused"]  # doctest: +SKIP
    [3, 7]
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal
from typing import Any, Protocol

import ray

from actors.positions import PositionBook, PositionState
from core.errors import ScizorError
from core.settings import Settings
from core.types import Fill
from storage.catalog.records import DeploymentRecord, DeploymentStatus, OrderRecord

CALL_TIMEOUT_S = 120.0
"""Seconds one call to an actor may take."""
FAILURES = (ScizorError, ray.exceptions.RayError, TimeoutError)
"""What one step of the stop may fail with (reported; the other steps still run)."""
MANUAL = "manual"
"""The performance bucket of orders no deployment sent (manual and flatten orders)."""


class RiskSwitch(Protocol):
    """What the stop needs of the risk manager (the actor's methods, made blocking)."""

    def emergency_stop(self, reason: str, *, by: str, flatten: bool = False) -> Any: ...

    def reset(self, *, by: str, rebase: bool = False) -> Any: ...


class OrderDesk(Protocol):
    """What the stop needs of the order manager (the actor's methods, made blocking)."""

    def orders(self, *, open_only: bool = False) -> list[OrderRecord]: ...

    def cancel(self, order_ref: str) -> OrderRecord: ...

    def emergency_flatten(self, *, reason: str = "emergency flatten") -> Any: ...


class Blocking:
    """An actor handle whose methods are called and waited for: ``Blocking(h).f(x)`` is
    ``ray.get(h.f.remote(x))``, with a timeout.

    Args:
        handle: A Ray actor handle.
        timeout: Seconds each call may take.
    """

    def __init__(self, handle: Any, *, timeout: float = CALL_TIMEOUT_S) -> None:
        self.handle = handle
        self._timeout = timeout

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.handle, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            return ray.get(method.remote(*args, **kwargs), timeout=self._timeout)

        return call


def stop_trading(
    *,
    risk: RiskSwitch,
    orders: OrderDesk,
    pause: Callable[[int], Any],
    running: Iterable[int],
    reason: str,
    by: str,
    flatten: bool = False,
) -> dict[str, Any]:
    """Halt, pause every running deployment, cancel open orders, optionally flatten.

    Returns:
        ``halted`` (the kill switch event as a mapping), ``paused`` (deployment ids),
        ``cancelled`` and ``flatten_orders`` (order refs) and ``failures`` (sentences).

    Raises:
        ValidationError: when the risk manager refuses the stop (e.g. an empty reason); then
            nothing else is done.
    """
    event = risk.emergency_stop(reason, by=by, flatten=flatten)
    paused: list[int] = []
    failures: list[str] = []
    for deployment_id in running:
        try:
            pause(deployment_id)
            paused.append(deployment_id)
        except FAILURES as exc:  # a runner that fails must not stop the rest
            failures.append(f"pause deployment {deployment_id}: {exc}")
    cancelled: list[str] = []
    sent: list[str] = []
    if flatten:
        try:
            report = orders.emergency_flatten(reason=f"emergency stop by {by}: {reason}")
            cancelled = [r.order_ref for r in report.cancelled]
            sent = [r.order_ref for r in report.orders]
            failures.extend(report.failures)
        except FAILURES as exc:  # reported; the switch is already halted
            failures.append(f"flatten: {exc}")
    else:
        cancelled = _cancel_open(orders, failures)
    return {
        "halted": event.to_mapping(),
        "paused": paused,
        "cancelled": cancelled,
        "flatten_orders": sent,
        "failures": failures,
    }


def _cancel_open(orders: OrderDesk, failures: list[str]) -> list[str]:
    try:
        open_orders = orders.orders(open_only=True)
    except FAILURES as exc:  # reported; the switch is already halted
        failures.append(f"open orders: {exc}")
        return []
    cancelled = []
    for record in open_orders:
        try:
            orders.cancel(record.order_ref)
            cancelled.append(record.order_ref)
        except FAILURES as exc:  # one order must not stop the others
            failures.append(f"cancel {record.order_ref!r}: {exc}")
    return cancelled


def emergency_stop(
    settings: Settings, reason: str, by: str, flatten: bool = False
) -> dict[str, Any]:
    """The emergency stop on the cluster's actors (see :func:`stop_trading`).

    Args:
        settings: SCIZOR settings (the catalog, the gateway).
        reason: Why (kept with the halt).
        by: Who (a token's name, or the CLI's user).
        flatten: Also close every position at market.
    """
    from actors.deployments import pause_deployment
    from actors.order_actor import get_order_manager
    from actors.risk_actor import get_risk_manager
    from storage.catalog import Catalog

    catalog = Catalog(settings.db.url)
    try:
        running = [d.id for d in catalog.deployments.list(status=DeploymentStatus.RUNNING)]
    finally:
        catalog.dispose()
    return stop_trading(
        risk=Blocking(get_risk_manager(settings)),
        orders=Blocking(get_order_manager(settings)),
        pause=lambda deployment_id: pause_deployment(settings, deployment_id),
        running=running,
        reason=reason,
        by=by,
        flatten=flatten,
    )


def reset(settings: Settings, by: str) -> dict[str, Any]:
    """Clear the kill switch (deployments stay paused until resumed one by one).

    Returns:
        ``reset`` (the event as a mapping) and ``paused`` (the deployments still paused).

    Raises:
        Conflict: if trading is not halted.
    """
    from actors.risk_actor import get_risk_manager
    from storage.catalog import Catalog

    event = Blocking(get_risk_manager(settings)).reset(by=by)
    catalog = Catalog(settings.db.url)
    try:
        paused = [d.id for d in catalog.deployments.list(status=DeploymentStatus.PAUSED)]
    finally:
        catalog.dispose()
    return {"reset": event.to_mapping(), "paused": paused}


def reload_risk(settings: Settings) -> None:
    """Make the risk-manager actor read its limits and switch again (after the API set them).

    Raises:
        ScizorError: never for a missing actor (one created now reads the catalog anyway).
    """
    from actors.risk_actor import get_risk_manager

    Blocking(get_risk_manager(settings)).reload()


def performance(
    *,
    deployments: Sequence[DeploymentRecord],
    orders: Iterable[OrderRecord],
    fills: Iterable[Fill],
    positions: Iterable[PositionState],
) -> dict[str, Any]:
    """Positions and P&L per deployment and in total, from the order manager's records.

    A fill belongs to the deployment of its order (``manual`` when the order has none). The
    total is the order manager's own positions; each deployment's are rebuilt from its fills
    and marked at the same last prices.

    Returns:
        ``{"deployments": [...], "total": {...}}``; each entry has ``positions``,
        ``realized_pnl``, ``unrealized_pnl``, ``commission`` and ``net_pnl``.
    """
    owner = {r.order_ref: r.order.deployment_id for r in orders}
    total = list(positions)
    marks = {p.instrument: p.last_price for p in total if p.last_price is not None}
    by_owner: dict[int | None, list[Fill]] = {}
    for fill in fills:
        by_owner.setdefault(owner.get(fill.order_ref), []).append(fill)
    entries = []
    for record in deployments:
        held = PositionBook.from_fills(by_owner.pop(record.id, [])).positions(
            last_prices=marks, include_flat=True
        )
        entries.append({"deployment_id": record.id, "strategy": record.strategy,
                        "status": str(record.status), **summary(held)})  # fmt: skip
    rest = [f for fills_of in by_owner.values() for f in fills_of]
    if rest:
        held = PositionBook.from_fills(rest).positions(last_prices=marks, include_flat=True)
        entries.append({"deployment_id": None, "strategy": MANUAL, "status": "", **summary(held)})
    return {"deployments": entries, "total": summary(total)}


def summary(positions: Sequence[PositionState]) -> dict[str, Any]:
    """Positions with their P&L summed (an unknown unrealized P&L counts as 0)."""
    realized = sum((p.realized_pnl for p in positions), Decimal(0))
    unrealized = sum((p.unrealized_pnl or Decimal(0) for p in positions), Decimal(0))
    commission = sum((p.commission for p in positions), Decimal(0))
    return {
        "positions": list(positions),
        "realized_pnl": realized,
        "unrealized_pnl": unrealized,
        "commission": commission,
        "net_pnl": realized + unrealized - commission,
    }


__all__ = [
    "Blocking",
    "emergency_stop",
    "performance",
    "reload_risk",
    "reset",
    "stop_trading",
    "summary",
]
