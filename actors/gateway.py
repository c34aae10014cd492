"""The IB gateway as a Ray actor: one named, detached, async actor owns the IBKR connection.

Every task and deployment that needs IBKR calls :func:`get_gateway` and talks to the same
actor, so there is one connection, one client id and one pacer for the whole cluster. The
actor is async: ib_async's event loop is the actor's own loop and is never blocked. It is
pinned to the head node by the ``scizor_head`` custom resource that cluster bootstrap
declares there (pass ``pin_to_head=False`` on a cluster without it).

Example:
    >>> gw = get_gateway(settings)                                         # doctest: +SKIP
    >>> ray.get(gw.historical_bars.remote("AAPL.NASDAQ", bar_size="1d", start=s, end=e))
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from typing import Any

import pandas as pd
import ray

from actors.gateway_service import GatewayService
from actors.order_acks import OrderAck
from actors.order_finder import OrderKey
from actors.pacing import Priority
from actors.stream_status import StreamBatch, StreamStatus
from core.settings import IBSettings, Settings
from core.types import Fill, Instrument, Order, Position

log = logging.getLogger(__name__)

ACTOR_NAME = "scizor-gateway"
NAMESPACE = "scizor"
HEAD_RESOURCE = "scizor_head"
GATEWAY_NAME = ACTOR_NAME
GATEWAY_NAMESPACE = NAMESPACE


class GatewayActor:
    """Ray-facing wrapper of :class:`GatewayService`; connects on first use.

    Args:
        ib: Connection settings.
        options: Keyword arguments for :class:`GatewayService` (``time_scale``, ...).
    """

    def __init__(self, ib: IBSettings, options: dict[str, Any] | None = None) -> None:
        from actors.metrics import GatewayMetrics  # needs a Ray worker: create it here

        self._service = GatewayService(ib, observer=GatewayMetrics(), **(options or {}))
        self._lock = asyncio.Lock()
        self._started = False

    async def _svc(self) -> GatewayService:
        if not self._started:
            async with self._lock:
                if not self._started:
                    await self._service.connect()
                    self._started = True
        return self._service

    async def ready(self) -> dict[str, Any]:
        """Connect if needed; return the health record as a dict."""
        return (await self._svc()).health().as_dict()

    async def health(self) -> dict[str, Any]:
        """Return the health record (without connecting)."""
        return self._service.health().as_dict()

    async def qualify(self, items: list[str | Instrument]) -> dict[str, Instrument | None]:
        """See :meth:`GatewayService.qualify`."""
        return await (await self._svc()).qualify(items)

    async def contract_details(self, instrument: Instrument | str) -> dict[str, Any]:
        """See :meth:`GatewayService.contract_details`."""
        return await (await self._svc()).contract_details(instrument)

    async def historical_bars(
        self,
        instrument: Instrument | str,
        *,
        bar_size: str,
        start: datetime,
        end: datetime,
        what_to_show: str = "TRADES",
        use_rth: bool = True,
        priority: int = Priority.BACKFILL,
    ) -> pd.DataFrame:
        """See :meth:`GatewayService.historical_bars`."""
        svc = await self._svc()
        return await svc.historical_bars(
            instrument,
            bar_size=bar_size,
            start=start,
            end=end,
            what_to_show=what_to_show,
            use_rth=use_rth,
            priority=Priority(priority),
        )

    async def snapshot(self, instrument: Instrument | str) -> dict[str, Any]:
        """See :meth:`GatewayService.snapshot`."""
        return await (await self._svc()).snapshot(instrument)

    async def stream_bars(self, instrument: Instrument | str, bar_size: str = "5s") -> str:
        """See :meth:`GatewayService.stream_bars`."""
        return await (await self._svc()).stream_bars(instrument, bar_size)

    async def poll_stream(self, stream_id: str) -> StreamBatch:
        """See :meth:`GatewayService.poll_stream`."""
        return await (await self._svc()).poll_stream(stream_id)

    async def stream_status(self, stream_id: str) -> StreamStatus:
        """See :meth:`GatewayService.stream_status`."""
        return await (await self._svc()).stream_status(stream_id)

    async def cancel_stream(self, stream_id: str) -> None:
        """See :meth:`GatewayService.cancel_stream`."""
        await (await self._svc()).cancel_stream(stream_id)

    async def place_order(self, order: Order) -> OrderAck:
        """See :meth:`GatewayService.place_order`."""
        return await (await self._svc()).place_order(order)

    async def order_status(self, order: OrderKey) -> OrderAck:
        """See :meth:`GatewayService.order_status`."""
        return await (await self._svc()).order_status(order)

    async def cancel_order(self, order_id: int) -> OrderAck:
        """See :meth:`GatewayService.cancel_order`."""
        return await (await self._svc()).cancel_order(order_id)

    async def positions(self) -> list[Position]:
        """See :meth:`GatewayService.positions`."""
        return await (await self._svc()).positions()

    async def executions(self) -> list[Fill]:
        """See :meth:`GatewayService.executions`."""
        return await (await self._svc()).executions()

    async def poll_fills(self) -> list[Fill]:
        """See :meth:`GatewayService.poll_fills`."""
        return await (await self._svc()).poll_fills()

    async def account_summary(self) -> dict[str, dict[str, str]]:
        """See :meth:`GatewayService.account_summary`."""
        return await (await self._svc()).account_summary()

    async def shutdown(self) -> None:
        """Disconnect from IB (the actor stays alive until killed)."""
        await self._service.disconnect()
        self._started = False


# max_task_retries=0: a call lost with a crashed actor is not replayed, because replaying
# place_order could send an order twice. Callers retry reads themselves if they wish.
RemoteGateway = ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)(GatewayActor)


def get_gateway(
    settings: Settings | IBSettings,
    *,
    pin_to_head: bool = True,
    name: str = ACTOR_NAME,
    namespace: str = NAMESPACE,
    **service_options: Any,
) -> Any:
    """Return the handle of the cluster's gateway actor, creating it if it does not exist.

    Args:
        settings: SCIZOR settings (or their ``ib`` part).
        pin_to_head: Require the ``scizor_head`` resource (declared on the head node by
            cluster bootstrap); pass False on a cluster that does not declare it.
        name: Actor name (one gateway per name and namespace).
        namespace: Ray namespace of the actor.
        **service_options: Passed to :class:`GatewayService` when the actor is created
            (``time_scale``, ``request_timeout``, ...); ignored if it already exists.
    """
    ib = settings.ib if isinstance(settings, Settings) else settings
    options: dict[str, Any] = {
        "name": name,
        "namespace": namespace,
        "lifetime": "detached",
        "get_if_exists": True,
    }
    if pin_to_head:
        options["resources"] = {HEAD_RESOURCE: 0.001}
    return RemoteGateway.options(**options).remote(ib, service_options)
