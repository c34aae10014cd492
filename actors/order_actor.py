"""The order manager as a Ray actor: one named, detached actor per cluster.

:class:`OrderManagerHost` opens the catalog from the settings and serves an
:class:`actors.order_manager.OrderManager` over the cluster's gateway and risk-manager actors
(:class:`GatewayCalls` and :class:`RiskCalls` make their handles plain blocking objects).
:data:`OrderManagerActor` is that class under ``ray.remote``. Like the gateway and the risk
manager it is pinned to the head node by the ``scizor_head`` resource, and Ray restarts it
after a crash; its state is the catalog's, so a restarted one carries on after reconciling.

On start it subscribes to the gateway (fills, order statuses and reconnects are pushed to
its ``on_fill``, ``on_order_status`` and ``on_connected``) and reconciles; it reconciles again
after every reconnect of the gateway. Calls are serial (one at a time), so a pushed fill is
applied between two submissions, never in the middle of one. A gateway Ray restarted pushes
to it again by itself: the gateway's creation arguments name it (``subscribers``; the
default order manager's name, or this one's when it creates the gateway), see
:mod:`actors.gateway`.

The kill switch acts on its own: after every new fill, reconcile and mark the host feeds the
account's equity (the gateway's NetLiquidation, else a base plus the positions' net P&L; see
:mod:`actors.halt`) to the risk manager; when that trips the switch, every running
deployment is paused and every open order cancelled (:func:`actors.halt.halt_trading`), a
``halt_actions`` risk event records it next to the risk manager's ``halted`` one, and the
``scizor_kill_switch_trips`` metric counts it.

Example:
    >>> om = get_order_manager(settings)                                   # doctest: +SKIP
    >>> ray.get(om.submit.remote(Order(instrument="AAPL.NASDAQ", side=Side.BUY, quantity=5)))
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

import ray

from actors.gateway import ACTOR_NAME as GATEWAY_NAME
from actors.gateway import HEAD_RESOURCE, NAMESPACE, ORDER_MANAGER_NAME, get_gateway
from actors.halt import EquityWatch, halt_trading
from actors.order_acks import OrderAck
from actors.order_finder import OrderKey
from actors.order_manager import OrderManager, Submission
from actors.positions import PositionState
from actors.reconcile import FlattenReport, ReconcileReport
from actors.risk_actor import ACTOR_NAME as RISK_NAME
from actors.risk_actor import get_risk_manager
from actors.risk_rules import Decision, RiskContext
from actors.risk_state import KillSwitchEvent
from actors.strategy_runner import runner_name
from core.errors import ScizorError
from core.settings import Settings
from core.types import Fill, Order, Position
from storage.catalog.records import OrderRecord

log = logging.getLogger(__name__)

ACTOR_NAME = ORDER_MANAGER_NAME
CALL_TIMEOUT_S = 120.0
"""Seconds one call to the gateway or the risk manager may take."""


class GatewayCalls:
    """The gateway actor's handle as a plain, blocking :class:`actors.reconcile.GatewayLike`.

    Args:
        handle: The gateway actor (:func:`actors.gateway.get_gateway`).
        timeout: Seconds each call may take.
    """

    def __init__(self, handle: Any, *, timeout: float = CALL_TIMEOUT_S) -> None:
        self.handle = handle
        self._timeout = timeout

    def _get(self, ref: Any) -> Any:
        return ray.get(ref, timeout=self._timeout)

    def place_order(self, order: Order) -> OrderAck:
        """See :meth:`actors.gateway_service.GatewayService.place_order`."""
        ack: OrderAck = self._get(self.handle.place_order.remote(order))
        return ack

    def cancel_order(self, order_id: int) -> OrderAck:
        """See :meth:`actors.gateway_service.GatewayService.cancel_order`."""
        ack: OrderAck = self._get(self.handle.cancel_order.remote(order_id))
        return ack

    def order_status(self, order: OrderKey) -> OrderAck:
        """See :meth:`actors.gateway_service.GatewayService.order_status`."""
        ack: OrderAck = self._get(self.handle.order_status.remote(order))
        return ack

    def positions(self) -> list[Position]:
        """See :meth:`actors.gateway_service.GatewayService.positions`."""
        held: list[Position] = self._get(self.handle.positions.remote())
        return held

    def executions(self) -> list[Fill]:
        """See :meth:`actors.gateway_service.GatewayService.executions`."""
        fills: list[Fill] = self._get(self.handle.executions.remote())
        return fills

    def last_price(self, instrument: str) -> Decimal | None:
        """The last traded price of ``instrument`` (else the bid/ask midpoint); None if IB
        has neither or cannot answer."""
        try:
            quote: dict[str, Any] = self._get(self.handle.snapshot.remote(instrument))
        except (ScizorError, ray.exceptions.GetTimeoutError) as exc:
            log.warning("no quote of %s for the risk check: %s", instrument, exc)
            return None
        last, bid, ask = quote.get("last"), quote.get("bid"), quote.get("ask")
        if last:
            return Decimal(str(last))
        if bid and ask:
            return (Decimal(str(bid)) + Decimal(str(ask))) / 2
        return None

    def net_liquidation(self) -> Decimal | None:
        """The account's NetLiquidation (see ``GatewayService.net_liquidation``); None if IB
        reports none or the gateway cannot answer."""
        try:
            value: Decimal | None = self._get(self.handle.net_liquidation.remote())
        except (ScizorError, ray.exceptions.RayError) as exc:
            log.warning("no NetLiquidation from the gateway: %s", exc)
            return None
        return value

    def subscribe(self, subscriber: Any, namespace: str = NAMESPACE) -> int:
        """Subscribe ``subscriber`` (a handle, or a named actor's name in ``namespace``) to
        the gateway's pushed events (idempotent)."""
        count: int = self._get(self.handle.subscribe.remote(subscriber, namespace))
        return count


class RiskCalls:
    """The risk-manager actor's handle as a plain, blocking ``RiskLike``."""

    def __init__(self, handle: Any, *, timeout: float = CALL_TIMEOUT_S) -> None:
        self.handle = handle
        self._timeout = timeout

    def check(self, order: Order, context: RiskContext) -> Decision:
        """See :meth:`actors.risk_manager.RiskManager.check` (a rejection is recorded)."""
        decision: Decision = ray.get(
            self.handle.check.remote(order, context), timeout=self._timeout
        )
        return decision

    def observe_equity(self, equity: Decimal) -> KillSwitchEvent | None:
        """See :meth:`actors.risk_manager.RiskManager.observe_equity`.

        Raises:
            ScizorError: if the risk manager cannot answer (e.g. while Ray restarts it).
        """
        try:
            event: KillSwitchEvent | None = ray.get(
                self.handle.observe_equity.remote(equity), timeout=self._timeout
            )
        except ray.exceptions.RayError as exc:
            raise ScizorError(f"the risk manager did not take the equity: {exc}") from exc
        return event


class OrderManagerHost:
    """The order manager over the catalog named by ``settings``, the gateway and risk actors.

    Args:
        settings: SCIZOR settings (the catalog's URL, the gateway's address).
        gateway_name: Name of the gateway actor (created if it does not exist).
        risk_name: Name of the risk-manager actor (created if it does not exist).
        namespace: Ray namespace of both.
        pin_to_head: Passed to :func:`get_gateway` and :func:`get_risk_manager` when they
            create the actors.
        quotes: Ask the gateway for a quote before each risk check (the notional and price
            band limits need one).
        base_equity: The equity to add the positions' net P&L to while the gateway reports
            no NetLiquidation (see :mod:`actors.halt`).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        gateway_name: str = GATEWAY_NAME,
        risk_name: str = RISK_NAME,
        namespace: str = NAMESPACE,
        pin_to_head: bool = True,
        quotes: bool = True,
        base_equity: Decimal | None = None,
    ) -> None:
        from actors.metrics import TradingMetrics  # needs a Ray worker: created here
        from storage.catalog import Catalog

        self._catalog = Catalog(settings.db.url)
        self._namespace = namespace
        self._metrics = TradingMetrics()
        where: dict[str, Any] = {"namespace": namespace, "pin_to_head": pin_to_head}
        me = ray.get_runtime_context().get_actor_name() if ray.is_initialized() else None
        subscribers = [me] if me else [ACTOR_NAME]  # used if this call creates the gateway
        handle = get_gateway(settings, name=gateway_name, subscribers=subscribers, **where)
        self.gateway = GatewayCalls(handle)
        risk = RiskCalls(get_risk_manager(settings, name=risk_name, **where))
        source = self.gateway.last_price if quotes else None
        watch = EquityWatch(risk, net_liquidation=self.gateway.net_liquidation,
                            base_equity=base_equity, on_halt=self._halted)  # fmt: skip
        self._manager = OrderManager(
            self._catalog, self.gateway, risk, price_source=source, equity=watch
        )
        self.halts: list[dict[str, Any]] = []
        self.push_failures = 0
        self.reconciles = 0
        self.recovered_fills = 0
        self.last_report: ReconcileReport | None = None
        self._start()

    def _start(self) -> None:
        try:
            self._subscribe()
            self.reconcile()
        except Exception:  # actor start: the next reconnect or call tries again
            log.exception("order manager could not subscribe and reconcile at start")

    def _subscribe(self) -> None:
        self.gateway.subscribe(ray.get_runtime_context().current_actor)

    def _halted(self, event: KillSwitchEvent) -> None:
        """The kill switch tripped: pause every runner, cancel every open order, count it."""
        self._metrics.halted(event.limit)
        done = halt_trading(event, catalog=self._catalog, orders=self._manager,
                            tell_runner=self._tell_runner)  # fmt: skip
        self.halts.append({k: done[k] for k in ("halted", "paused", "cancelled", "failures")})

    def _tell_runner(self, deployment_id: int) -> None:
        try:
            runner = ray.get_actor(runner_name(deployment_id), namespace=self._namespace)
        except ValueError:  # no runner actor: the catalog's paused status is what it boots to
            return
        runner.pause.remote()  # not waited for: the runner may be waiting on this actor

    # --- calls -------------------------------------------------------------------------------

    def submit(self, order: Order) -> Submission:
        """See :meth:`OrderManager.submit` (subscribes to the gateway again first, so a
        gateway Ray restarted pushes this order's fills too)."""
        self._subscribe()
        return self._manager.submit(order)

    def cancel(self, order_ref: str) -> OrderRecord:
        """See :meth:`OrderManager.cancel`."""
        return self._manager.cancel(order_ref)

    def orders(
        self,
        open_only: bool = False,
        deployment_id: int | None = None,
        instrument: str | None = None,
        since: datetime | None = None,
    ) -> list[OrderRecord]:
        """See :meth:`OrderManager.orders`."""
        return self._manager.orders(
            open_only=open_only, deployment_id=deployment_id, instrument=instrument, since=since
        )

    def order(self, order_ref: str) -> OrderRecord:
        """See :meth:`OrderManager.order`."""
        return self._manager.order(order_ref)

    def executions(self, order_ref: str | None = None, since: datetime | None = None) -> list[Fill]:
        """See :meth:`OrderManager.executions`."""
        return self._manager.executions(order_ref=order_ref, since=since)

    def positions(self, include_flat: bool = False) -> list[PositionState]:
        """See :meth:`OrderManager.positions`."""
        return self._manager.positions(include_flat=include_flat)

    def mark(self, prices: Mapping[str, Decimal]) -> None:
        """See :meth:`OrderManager.mark`."""
        self._manager.mark(prices)

    def reconcile(self) -> ReconcileReport:
        """See :meth:`OrderManager.reconcile`; the report is kept as ``last_report``."""
        self._subscribe()
        report = self._manager.reconcile()
        self.reconciles += 1
        self.recovered_fills += len(report.recovered)
        self.last_report = report
        if not report.clean:
            log.warning("reconcile: %d mismatches, problems %s", len(report.mismatches),
                        list(report.problems))  # fmt: skip
        return report

    def emergency_flatten(self, reason: str = "emergency flatten") -> FlattenReport:
        """See :meth:`OrderManager.emergency_flatten`."""
        return self._manager.emergency_flatten(reason=reason)

    def stats(self) -> dict[str, Any]:
        """Counts for health: failed pushes, reconciliations, the latest problems."""
        report, equity = self.last_report, self._manager.equity
        reading = None if equity is None else equity.last
        return {
            "push_failures": self.push_failures,
            "equity": None if reading is None else str(reading.equity),
            "equity_source": None if reading is None else reading.source,
            "halts": list(self.halts),
            "reconciles": self.reconciles,
            "recovered_fills": self.recovered_fills,
            "errors": list(self._manager.errors),
            "last_reconcile": None if report is None else report.at.isoformat(),
            "last_reconcile_clean": None if report is None else report.clean,
        }

    # --- pushed by the gateway ------------------------------------------------------------------

    def on_fill(self, fill: Fill) -> bool:
        """Apply a pushed fill (see :meth:`OrderManager.on_fill`); False if not new."""
        try:
            return self._manager.on_fill(fill)
        except Exception:  # top of a pushed event: logged and counted; reconcile recovers it
            self.push_failures += 1
            log.exception("pushed fill %s not applied", fill.exec_id)
            return False

    def on_order_status(self, ack: OrderAck) -> None:
        """Apply a pushed order status (see :meth:`OrderManager.on_order_status`)."""
        try:
            self._manager.on_order_status(ack)
        except Exception:  # top of a pushed event: logged and counted; reconcile recovers it
            self.push_failures += 1
            log.exception("pushed status of %s not applied", ack.order_ref)

    def on_connected(self) -> None:
        """The gateway reconnected (or IB restored its link): reconcile."""
        try:
            self.reconcile()
        except Exception:  # top of a pushed event: logged and counted; the next one retries
            self.push_failures += 1
            log.exception("reconcile after the gateway reconnected failed")

    def close(self) -> None:
        """Release the catalog's connections."""
        self._catalog.dispose()


OrderManagerActor = ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)(OrderManagerHost)


def get_order_manager(
    settings: Settings, *, pin_to_head: bool = True, name: str = ACTOR_NAME,
    namespace: str = NAMESPACE, gateway_name: str = GATEWAY_NAME, risk_name: str = RISK_NAME,
    **host_options: Any,
) -> Any:  # fmt: skip
    """Return the handle of the cluster's order-manager actor, creating it if it does not exist.

    Args:
        settings: SCIZOR settings (the catalog's URL, the gateway's address).
        pin_to_head: Require the ``scizor_head`` resource (see :func:`actors.gateway.get_gateway`).
        name: Actor name (one order manager per name and namespace).
        namespace: Ray namespace of the actor (and of the gateway and risk manager).
        gateway_name: The gateway actor it sends through.
        risk_name: The risk-manager actor it checks with.
        **host_options: Passed to :class:`OrderManagerHost` when the actor is created
            (``quotes``, ``base_equity``); ignored if it already exists.
    """
    options: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "lifetime": "detached",
        "get_if_exists": True,
    }
    if pin_to_head:
        options["resources"] = {HEAD_RESOURCE: 0.001}
    return OrderManagerActor.options(**options).remote(
        settings, gateway_name=gateway_name, risk_name=risk_name, namespace=namespace,
        pin_to_head=pin_to_head, **host_options,
    )  # fmt: skip
