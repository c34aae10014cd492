"""What a strategy runner talks to: its bar history, its live bars and its order sink.

:class:`StrategyRunner <actors.strategy_runner.StrategyRunner>` codes against these three
protocols, so unit tests drive it with a real :class:`storage.bars.BarStore` and plain
fakes, and production plugs in the gateway actor (:class:`GatewayFeed`) and the order
manager actor (:class:`ActorSink`, over ``actors.order_actor.get_order_manager``'s
handle, whose ``submit(order)`` is idempotent by ``order_ref``).
"""

from __future__ import annotations

import inspect
from typing import Any, Protocol

import pandas as pd

from actors.stream_status import StreamBatch
from core.types import Order


class HistorySource(Protocol):
    """Stored bars (``storage.bars.BarStore`` is one)."""

    def read(
        self, instrument: str, bar_size: str, start: Any = None, end: Any = None
    ) -> pd.DataFrame:
        """Return the bars with ``start <= ts < end`` (UTC index; empty when none)."""
        ...

    def write(self, instrument: str, bar_size: str, frame: pd.DataFrame) -> Any:
        """Merge completed bars into the store (newer bars win on equal times)."""
        ...


class MarketFeed(Protocol):
    """Live completed bars and the broker's accounts (the gateway actor behind it)."""

    async def open_stream(self, instrument: str, bar_size: str) -> str:
        """Subscribe to ``instrument``'s bars; return the stream id."""
        ...

    async def poll_stream(self, stream_id: str) -> StreamBatch:
        """Return the completed bars not returned before, with the stream's status."""
        ...

    async def close_stream(self, stream_id: str) -> None:
        """Cancel the stream."""
        ...

    async def accounts(self) -> list[str]:
        """Return the accounts the broker reports for this connection."""
        ...


class OrderSink(Protocol):
    """Where order intents go; ``submit`` may return an awaitable."""

    def submit(self, order: Order) -> Any:
        """Accept an order intent (idempotent by ``order.order_ref``)."""
        ...


async def submit_to(sink: OrderSink, order: Order) -> Any:
    """Submit ``order`` to ``sink``, awaiting the answer when it is awaitable."""
    result = sink.submit(order)
    if inspect.isawaitable(result):
        result = await result
    return result


class GatewayFeed:
    """A :class:`MarketFeed` over the gateway actor's handle (``actors.gateway``).

    Args:
        gateway: the handle :func:`actors.gateway.get_gateway` returns.
    """

    def __init__(self, gateway: Any) -> None:
        self._gateway = gateway

    async def open_stream(self, instrument: str, bar_size: str) -> str:
        """See :meth:`GatewayActor.stream_bars`."""
        stream_id: str = await self._gateway.stream_bars.remote(instrument, bar_size)
        return stream_id

    async def poll_stream(self, stream_id: str) -> StreamBatch:
        """See :meth:`GatewayActor.poll_stream`."""
        batch: StreamBatch = await self._gateway.poll_stream.remote(stream_id)
        return batch

    async def close_stream(self, stream_id: str) -> None:
        """See :meth:`GatewayActor.cancel_stream`."""
        await self._gateway.cancel_stream.remote(stream_id)

    async def accounts(self) -> list[str]:
        """The accounts of the gateway's account summary."""
        summary: dict[str, Any] = await self._gateway.account_summary.remote()
        return sorted(a for a in summary if a and a != "All")


class ActorSink:
    """An :class:`OrderSink` over an actor handle with a ``submit(order)`` method.

    Args:
        handle: e.g. the order manager's (``actors.order_actor.get_order_manager``).
    """

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    async def submit(self, order: Order) -> Any:
        """Call ``submit`` on the actor and await its answer."""
        return await self._handle.submit.remote(order)
