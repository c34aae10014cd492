"""The kill switch acting on its own: equity fed to the risk manager, and what a trip does.

The order manager (:mod:`actors.order_manager`) calls :meth:`EquityWatch.observe` after every
new fill, every reconcile and every :meth:`~actors.order_manager.OrderManager.mark`. The
watch works out the account's equity and feeds it to the risk manager's
``observe_equity``; when that returns a ``halted`` event (the daily loss or the drawdown
limit was breached; the risk manager has already stored the halted state and its
``halted`` risk event) the watch calls its ``on_halt`` with the event.

Which equity:

1. The broker's ``NetLiquidation`` (the gateway's streamed account values, summed over the
   accounts; :meth:`actors.gateway_service.GatewayService.net_liquidation`) when it has one.
   The watch then remembers a *base*: that equity less the positions' net P&L.
2. Otherwise (no gateway answer, or a gateway that reports none) the base plus the
   positions' net P&L: realized plus unrealized, less commissions
   (:func:`net_pnl`). The base is the one learnt from the last ``NetLiquidation``, else the
   ``base_equity`` given; with neither nothing is observed (the loss limits cannot be
   measured against an unknown equity).

:func:`halt_trading` is what a trip does on the cluster: it pauses every running deployment
and cancels every open order through :func:`actors.trading_ops.stop_trading` (the emergency
stop's own steps, so there is one implementation of them), with the kill switch already
halted by the trip. A deployment is paused in the catalog first, so a runner that restarts
meanwhile boots paused, then its runner actor is told fire-and-forget: the order manager
calls this while serving a pushed fill, and a runner waiting on the order manager must not
make it wait in turn.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol

from actors.positions import PositionState
from actors.risk_state import KillSwitchEvent
from core.errors import ScizorError
from storage.catalog.records import DeploymentStatus

if TYPE_CHECKING:
    from storage.catalog import Catalog

__all__ = ["EquityReading", "EquityRisk", "EquityWatch", "halt_trading", "net_pnl"]

log = logging.getLogger(__name__)

HALT_ACTIONS = "halt_actions"
"""The risk event kind that records what a trip paused and cancelled."""


class EquityRisk(Protocol):
    """What the watch needs of the risk manager (``RiskManager.observe_equity``)."""

    def observe_equity(self, equity: Decimal) -> KillSwitchEvent | None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class EquityReading:
    """One equity the watch fed to the risk manager.

    Attributes:
        equity: The account's equity.
        source: ``"net_liquidation"`` (the broker's) or ``"base_plus_pnl"``.
        net_pnl: The positions' realized + unrealized P&L less commissions then.
    """

    equity: Decimal
    source: str
    net_pnl: Decimal


def net_pnl(positions: Iterable[PositionState]) -> Decimal:
    """Realized plus unrealized P&L less commissions (an unknown unrealized P&L counts 0)."""
    total = Decimal(0)
    for p in positions:
        total += p.realized_pnl + (p.unrealized_pnl or Decimal(0)) - p.commission
    return total


class EquityWatch:
    """Feeds the account's equity to the kill switch (see the module docstring).

    Args:
        risk: The risk manager (its ``observe_equity``).
        net_liquidation: ``() -> the broker's NetLiquidation or None``.
        base_equity: The base to add the net P&L to until a ``NetLiquidation`` is seen.
        on_halt: Called with the ``halted`` event when an observation trips the switch.
    """

    def __init__(
        self,
        risk: EquityRisk,
        *,
        net_liquidation: Callable[[], Decimal | None] | None = None,
        base_equity: Decimal | None = None,
        on_halt: Callable[[KillSwitchEvent], Any] | None = None,
    ) -> None:
        self.risk = risk
        self._net_liquidation = net_liquidation
        self.base = None if base_equity is None else Decimal(base_equity)
        self._on_halt = on_halt
        self.last: EquityReading | None = None
        self.trips = 0

    def equity(self, positions: Iterable[PositionState]) -> EquityReading | None:
        """Return the account's equity now (see the module docstring), or None if unknown."""
        pnl = net_pnl(positions)
        broker = self._net_liquidation() if self._net_liquidation is not None else None
        if broker is not None:
            self.base = Decimal(broker) - pnl
            return EquityReading(equity=Decimal(broker), source="net_liquidation", net_pnl=pnl)
        if self.base is None:
            return None
        return EquityReading(equity=self.base + pnl, source="base_plus_pnl", net_pnl=pnl)

    def observe(self, positions: Iterable[PositionState]) -> KillSwitchEvent | None:
        """Feed the equity to the risk manager; on a trip call ``on_halt``; return the trip.

        Raises:
            ScizorError: what the risk manager or ``on_halt`` raise.
        """
        reading = self.equity(positions)
        if reading is None:
            log.warning("equity unknown (no NetLiquidation, no base): the kill switch waits")
            return None
        self.last = reading
        event = self.risk.observe_equity(reading.equity)
        if event is None:
            return None
        self.trips += 1
        log.error("kill switch tripped at equity %s (%s): %s", reading.equity, reading.source,
                  event.reason)  # fmt: skip
        if self._on_halt is not None:
            self._on_halt(event)
        return event


class _AlreadyHalted:
    """The risk side of :func:`actors.trading_ops.stop_trading` when the switch has tripped
    already: its stop returns the trip, records nothing more."""

    def __init__(self, event: KillSwitchEvent) -> None:
        self._event = event

    def emergency_stop(self, reason: str, *, by: str, flatten: bool = False) -> KillSwitchEvent:
        return self._event

    def reset(self, *, by: str, rebase: bool = False) -> KillSwitchEvent:
        raise ScizorError("a tripped kill switch is reset through the risk manager")


def halt_trading(
    event: KillSwitchEvent,
    *,
    catalog: Catalog,
    orders: Any,
    tell_runner: Callable[[int], Any],
) -> dict[str, Any]:
    """Pause every running deployment and cancel every open order after a trip.

    Args:
        event: The ``halted`` event the risk manager returned.
        catalog: The catalog (running deployments; each is set ``paused`` here first).
        orders: The order manager (``orders(open_only=True)`` and ``cancel(order_ref)``).
        tell_runner: Tells a deployment's runner actor to pause (must not wait for it).

    Returns:
        What :func:`actors.trading_ops.stop_trading` returns: ``halted``, ``paused``,
        ``cancelled``, ``flatten_orders`` (empty) and ``failures``. It is also recorded as
        a ``halt_actions`` risk event.
    """

    def pause(deployment_id: int) -> None:
        catalog.deployments.set_status(deployment_id, DeploymentStatus.PAUSED)
        tell_runner(deployment_id)

    running = [d.id for d in catalog.deployments.list(status=DeploymentStatus.RUNNING)]
    # trading_ops reaches the order manager's actor module, which reaches this one: looked up
    # at run time, so the stop's steps have one implementation without a circle of imports.
    stop = importlib.import_module("actors.trading_ops").stop_trading
    done: dict[str, Any] = stop(
        risk=_AlreadyHalted(event),
        orders=orders,
        pause=pause,
        running=running,
        reason=event.reason,
        by=event.by,
    )
    catalog.risk.add_event(
        HALT_ACTIONS,
        limit_name=event.limit,
        detail={k: done[k] for k in ("paused", "cancelled", "failures")} | {"reason": event.reason},
        at=event.at,
    )
    for failure in done["failures"]:
        log.error("after the kill switch tripped: %s", failure)
    return done
