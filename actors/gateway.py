"""The IB gateway as a Ray actor: one named, detached, async actor owns the IBKR connection.

Every task and deployment that needs IBKR calls :func:`get_gateway` and talks to the same
actor, so there is one connection, one client id and one pacer for the whole cluster. The
actor is async: ib_async's event loop is the actor's own loop and is never blocked. It is
pinned to the head node by the ``scizor_head`` custom resource that cluster bootstrap
declares there (pass ``pin_to_head=False`` on a cluster without it).

Fills, order statuses and reconnects are pushed to subscribers (:meth:`GatewayActor.subscribe`):
the gateway calls each subscriber actor's ``on_fill(fill)``, ``on_order_status(ack)`` and
``on_connected()`` fire-and-forget, so a slow subscriber never holds up the ib_async loop. The
subscriptions belong to the actor, not to the connection, so they outlive reconnects; a
subscriber that died is dropped (with a log line).

A gateway restarted by Ray pushes again without waiting for anyone to subscribe: Ray builds
the new process from the creation arguments, which name the subscribers it looks up at
every (re)start (``subscribers``, by default the order manager, ``scizor-order-manager``),
and its constructor queues :meth:`GatewayActor.resubscribe` to itself, which connects,
subscribes the ones that exist and tells them ``on_connected()`` (the order manager then
reconciles what it missed). Subscribers added later (by handle or name) are kept in memory
only, until the next restart.

Example:
    >>> gw = get_gateway(settings)                                         # doctest: +SKIP
    >>> ray.get(gw.historical_bars.remote("AAPL.NASDAQ", bar_size="1d", start=s, end=e))
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
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
ORDER_MANAGER_NAME = "scizor-order-manager"
"""The order manager's actor name (:mod:`actors.order_actor`): a gateway's default subscriber."""
GATEWAY_NAME = ACTOR_NAME
GATEWAY_NAMESPACE = NAMESPACE


class GatewayActor:
    """Ray-facing wrapper of :class:`GatewayService`; connects on first use.

    Args:
        ib: Connection settings.
        options: Keyword arguments for :class:`GatewayService` (``time_scale``, ...).
        subscribers: ``(name, namespace)`` of the named actors subscribed at every (re)start
            of the actor, if they exist then (see the module docstring).
    """

    def __init__(
        self,
        ib: IBSettings,
        options: dict[str, Any] | None = None,
        subscribers: Sequence[tuple[str, str]] = (),
    ) -> None:
        from actors.metrics import GatewayMetrics  # needs a Ray worker: create it here

        self._service = GatewayService(ib, observer=GatewayMetrics(), **(options or {}))
        self._lock = asyncio.Lock()
        self._started = False
        self._subscribers: list[Any] = []
        self._known = [(str(name), str(ns)) for name, ns in subscribers]
        self._deliveries: set[asyncio.Task[None]] = set()
        self._service.add_listener(_Fanout(self._push))
        if self._known:
            with contextlib.suppress(RuntimeError):  # outside an actor (a test): no self-call
                # queued until the constructor returns: a restarted gateway pushes at once
                ray.get_runtime_context().current_actor.resubscribe.remote()

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

    async def net_liquidation(self) -> Decimal | None:
        """See :meth:`GatewayService.net_liquidation`."""
        return await (await self._svc()).net_liquidation()

    async def resubscribe(self) -> list[str]:
        """Subscribe the named ``subscribers`` that exist; tell them ``on_connected()``.

        Queued by the constructor, so a gateway Ray restarted pushes to the order manager
        again with nobody calling it. Connects only if one of them exists.

        Returns:
            The names found and subscribed.
        """
        found: list[tuple[str, Any]] = []
        for name, namespace in self._known:
            try:
                handle = await asyncio.to_thread(ray.get_actor, name, namespace=namespace)
            except ValueError:  # not created (yet): it subscribes itself when it starts
                continue
            if handle not in self._subscribers:
                self._subscribers.append(handle)
            found.append((name, handle))
        if found:
            await self._svc()
            for _, handle in found:
                self._deliver(handle, "on_connected")
            log.info("gateway (re)started: pushing to %s", [n for n, _ in found])
        return [n for n, _ in found]

    async def subscribe(self, subscriber: Any, namespace: str = NAMESPACE) -> int:
        """Push fills, order statuses and reconnects to ``subscriber`` from now on.

        Connects if needed (so a subscriber can reconcile at once). Subscribing again is a
        no-op.

        Args:
            subscriber: An actor handle, or the name of a named actor, with methods
                ``on_fill(fill)``, ``on_order_status(ack)`` and ``on_connected()``.
            namespace: The Ray namespace of a subscriber given by name.

        Returns:
            The number of subscribers.

        Raises:
            ValueError: if no actor has the name ``subscriber``.
        """
        if isinstance(subscriber, str):
            subscriber = await asyncio.to_thread(ray.get_actor, subscriber, namespace=namespace)
        if subscriber not in self._subscribers:
            self._subscribers.append(subscriber)
        await self._svc()
        return len(self._subscribers)

    async def unsubscribe(self, subscriber: Any) -> int:
        """Stop pushing to ``subscriber`` (a handle); return the number left."""
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)
        return len(self._subscribers)

    def _push(self, method: str, *args: Any) -> None:
        for subscriber in list(self._subscribers):
            self._deliver(subscriber, method, *args)

    def _deliver(self, subscriber: Any, method: str, *args: Any) -> None:
        try:
            ref = getattr(subscriber, method).remote(*args)
        except Exception:  # top of a pushed event: one bad subscriber must not stop others
            log.exception("cannot push %s to a subscriber; dropping it", method)
            self._drop(subscriber)
            return
        task = asyncio.ensure_future(self._delivered(subscriber, method, ref))
        self._deliveries.add(task)
        task.add_done_callback(self._deliveries.discard)

    async def _delivered(self, subscriber: Any, method: str, ref: Any) -> None:
        try:
            await ref
        except ray.exceptions.RayActorError:  # died; Ray may be restarting it
            log.warning("subscriber of the gateway failed during %s; checking it", method)
            try:
                await subscriber.__ray_ready__.remote()
            except ray.exceptions.RayActorError:
                log.warning("subscriber of the gateway is dead; dropping it")
                self._drop(subscriber)
        except Exception as exc:  # the subscriber's own failure: it is still subscribed
            log.warning("subscriber failed on %s: %s", method, exc)

    def _drop(self, subscriber: Any) -> None:
        if subscriber in self._subscribers:
            self._subscribers.remove(subscriber)

    async def shutdown(self) -> None:
        """Disconnect from IB (the actor stays alive until killed)."""
        await self._service.disconnect()
        self._started = False


class _Fanout:
    """The service's listener: forwards every pushed event to the actor's subscribers."""

    def __init__(self, push: Callable[..., None]) -> None:
        self._push = push

    def on_fill(self, fill: Fill) -> None:
        self._push("on_fill", fill)

    def on_order_status(self, ack: OrderAck) -> None:
        self._push("on_order_status", ack)

    def on_connected(self) -> None:
        self._push("on_connected")


# max_task_retries=0: a call lost with a crashed actor is not replayed, because replaying
# place_order could send an order twice. Callers retry reads themselves if they wish.
RemoteGateway = ray.remote(max_restarts=-1, max_task_retries=0, num_cpus=0)(GatewayActor)


def get_gateway(
    settings: Settings | IBSettings,
    *,
    pin_to_head: bool = True,
    name: str = ACTOR_NAME,
    namespace: str = NAMESPACE,
    subscribers: Sequence[str] = (ORDER_MANAGER_NAME,),
    **service_options: Any,
) -> Any:
    """Return the handle of the cluster's gateway actor, creating it if it does not exist.

    Args:
        settings: SCIZOR settings (or their ``ib`` part).
        pin_to_head: Require the ``scizor_head`` resource (declared on the head node by
            cluster bootstrap); pass False on a cluster that does not declare it.
        name: Actor name (one gateway per name and namespace).
        namespace: Ray namespace of the actor.
        subscribers: Names of actors in ``namespace`` the gateway subscribes at every
            (re)start if they exist (the order manager's by default); fixed at creation.
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
    known = [(str(subscriber), namespace) for subscriber in subscribers]
    return RemoteGateway.options(**options).remote(ib, service_options, known)
