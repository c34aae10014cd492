"""The one paced request path to IB that every part of the gateway shares.

:class:`IBLink` bundles what the gateway's parts (history, streams, orders, contracts) all
need: the connection, the pacer, the metrics observer and :meth:`IBLink.paced_request`,
which paces a request, sends it, translates IB's errors into :mod:`core.errors` and retries
after a pacing violation (162) or a dropped connection. The parts import this module; this
module imports none of them, so the gateway's modules depend in one direction only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import ib_async

from actors import ib_convert as conv
from actors.gateway_health import GatewayObserver
from actors.ib_connection import IBConnection
from actors.pacing import Pacer, Priority, RequestKey
from core.clock import Clock
from core.errors import BrokerError, NotConnected, PacingViolation, ScizorError

log = logging.getLogger(__name__)
T = TypeVar("T")


class IBLink:
    """A connection, its pacer and its observer, with the paced request path.

    Args:
        conn: The connection (it owns the ``ib_async.IB``).
        pacer: Paces every request sent through this link.
        observer: Receives request and error counts.
        clock: Time source of the waits after a pacing violation.
        account: The account orders are sent for ("" for the gateway's only one).
        request_timeout: Seconds one request (or a wait for reconnection) may take.
        retries: Retries after a pacing violation (162) or a dropped connection.
        violation_backoff_s: First wait after a pacing violation (doubles per retry).
        time_scale: Divides the violation waits (an ibsim running ``speed`` N).
    """

    def __init__(
        self,
        *,
        conn: IBConnection,
        pacer: Pacer,
        observer: GatewayObserver,
        clock: Clock,
        account: str = "",
        request_timeout: float = 60.0,
        retries: int = 4,
        violation_backoff_s: float = 15.0,
        time_scale: float = 1.0,
    ) -> None:
        self.conn = conn
        self.ib: ib_async.IB = conn.ib
        self.pacer = pacer
        self.observer = observer
        self.clock = clock
        self.account = account
        self.request_timeout = request_timeout
        self._retries = retries
        self._violation_backoff_s = violation_backoff_s
        self._time_scale = time_scale

    async def paced_request(
        self,
        kind: str,
        send: Callable[[], Awaitable[T]],
        *,
        key: RequestKey | None = None,
        priority: Priority = Priority.NORMAL,
    ) -> T:
        """Pace and send a read-only request; retry after 162 or a dropped connection.

        Raises:
            PacingViolation: if IB still refuses after the retries.
            NotConnected: if the connection stays lost.
            NotFound: for IB error 200.
            BrokerError: for any other IB error or no answer in time.
        """
        for attempt in range(self._retries + 1):
            last = attempt == self._retries
            await self.conn.ensure_connected(self.request_timeout)
            self.observer.request(kind)
            try:
                if key is not None:
                    async with self.pacer.historical(key, priority):
                        return await self._timed(kind, send)
                # A message-rate token only: taking it is the wait; nothing is held open.
                async with self.pacer.message(priority):
                    pass
                return await self._timed(kind, send)
            except ib_async.RequestError as exc:
                err = conv.request_error(exc.code, exc.message)
                if not isinstance(err, PacingViolation) or last:
                    raise err from exc
                delay = self._violation_backoff_s * 2**attempt / self._time_scale
                log.warning("pacing violation on %s; retrying in %.2fs", kind, delay)
                await self.clock.sleep(delay)
            except ConnectionError as exc:
                if last:
                    raise NotConnected(f"{kind} failed: connection lost ({exc})") from exc
                log.warning("%s interrupted by a disconnect; retrying after reconnect", kind)
        raise ScizorError("unreachable")  # pragma: no cover

    @contextlib.asynccontextmanager
    async def live_message(self, kind: str) -> AsyncIterator[None]:
        """Hold one live-priority message token for a message sent once (orders, cancels).

        Raises:
            NotConnected: if there is no connection, or it drops while sending.
        """
        await self.conn.ensure_connected(self.request_timeout)
        async with self.pacer.message(Priority.LIVE):
            self.observer.request(kind)
            try:
                yield
            except ConnectionError as exc:
                raise NotConnected(f"{kind} not sent: connection lost ({exc})") from exc

    async def _timed(self, kind: str, send: Callable[[], Awaitable[T]]) -> T:
        try:
            # ib_async's own historical timeout fires first; this one bounds everything else
            return await asyncio.wait_for(send(), self.request_timeout * 1.5)
        except TimeoutError:
            self.observer.error(0)
            raise BrokerError(
                0, f"{kind} got no answer within {self.request_timeout * 1.5:g}s; retry later"
            ) from None
