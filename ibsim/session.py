"""One client connection: handshake, version negotiation, message rate, request dispatch.

The handshake settles on ``min(client max, 178)`` (refusing a client with no version in
157..178) and every reply is then encoded for that version. After the handshake a reader
task takes frames off the socket as they arrive, counts them against the message-rate limit
on the real clock (see :class:`~ibsim.pacing.MessageRate`) and queues them; the dispatch loop
answers them in order, so a slow request (a large history) never makes later arrivals look
like a burst. Anything that breaks the framing closes this connection only; unknown message
ids get an error reply and the connection lives on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from ibsim import messages as m
from ibsim import versions
from ibsim.handlers import DATA_HANDLERS, Handler
from ibsim.order_handlers import ORDER_HANDLERS
from ibsim.pacing import RATE_TEXT, MessageRate
from ibsim.protocol import (
    Field,
    FrameReader,
    ProtocolError,
    decode_fields,
    encode_message,
    negotiate,
    server_hello,
)
from ibsim.state import LINK_LOST, Peer, SimState

log = logging.getLogger("ibsim.session")
FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefil"),
)
INBOX_LIMIT = 10_000
"""Requests queued before the reader stops reading (and TCP pushes back on the client)."""
Inbound = list[str] | Exception
"""A request's fields, or why the reader stopped."""


def _ignore(peer: Peer, fields: list[str]) -> None:
    """Requests ibsim accepts without an answer (auto-open binding, data type, ...)."""


def _managed_accounts(peer: Peer, fields: list[str]) -> None:
    peer.send(m.managed_accounts([peer.sim.account]))


def _current_time(peer: Peer, fields: list[str]) -> None:
    peer.send(m.current_time(int(peer.sim.clock.now().timestamp())))


SESSION_HANDLERS: dict[int, Handler] = {
    15: _ignore,  # reqAutoOpenOrders: nothing to bind in ibsim
    17: _managed_accounts,
    49: _current_time,
    59: _ignore,  # reqMarketDataType: ibsim data is always "live"
    63: _ignore,  # cancelAccountSummary: summaries are one-shot here
}


class RateLimitExceeded(ProtocolError):
    """The client kept sending more than 50 messages a second: TWS drops it."""


class Session:
    """Serve one TWS API client over an asyncio stream pair."""

    def __init__(
        self, sim: SimState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.client_id = -1
        self.version = versions.MAX_VERSION
        """The negotiated server version (set by the handshake)."""
        self.frames = FrameReader()
        self._pending: list[bytes] = []
        self._inbox: asyncio.Queue[Inbound] = asyncio.Queue(maxsize=INBOX_LIMIT)
        self.rate = MessageRate(sim.rate_clock)
        self.tasks: dict[tuple[str, int], asyncio.Task[None]] = {}
        self.wants_positions = False
        self.account_updates = False
        self.multi_req_ids: set[int] = set()
        self.closed = False
        self.handlers: dict[int, Handler] = {**DATA_HANDLERS, **ORDER_HANDLERS, **SESSION_HANDLERS}

    # ---- plumbing ---------------------------------------------------------------------
    def send(self, fields: list[Field]) -> None:
        """Frame and queue one message (dropped silently once the connection is gone)."""
        # The peer may vanish before ``closed`` is set (the reader notices later): writing to a
        # closing transport only makes asyncio log "socket.send() raised exception".
        if not self.closed and not self.writer.is_closing():
            self.writer.write(encode_message(fields))

    def error(self, req_id: int, code: int, text: str) -> None:
        """Send a TWS error message in the negotiated layout."""
        self.send(m.server_error(req_id, code, text, version=self.version))

    def abort(self) -> None:
        """Drop the TCP connection at once (the client sees a reset)."""
        self.writer.transport.abort()

    async def run(self) -> None:
        """Serve the connection until the client leaves or breaks the protocol."""
        peer = self.writer.get_extra_info("peername")
        try:
            await self._handshake()
            await self._serve()
        except (ProtocolError, UnicodeDecodeError, ValueError, IndexError) as exc:
            log.warning("closing %s (client %s): %s", peer, self.client_id, exc)
        except (ConnectionError, asyncio.IncompleteReadError):
            log.info("client %s at %s disconnected", self.client_id, peer)
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop this session's streams and close the socket."""
        if self.closed:
            return
        self.closed = True
        for task in self.tasks.values():
            task.cancel()
        self.sim.forget(self)
        self.writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await self.writer.wait_closed()

    # ---- handshake ----------------------------------------------------------------------
    async def _handshake(self) -> None:
        greeting = await self.reader.readexactly(4)
        if greeting != b"API\0":
            raise ProtocolError(f"expected b'API\\x00' greeting, got {greeting!r}")
        self.version = negotiate(await self._next_payload())
        self.writer.write(server_hello(self.version, self.sim.clock.now(), zone=self.sim.time_zone))
        fields = decode_fields(await self._next_payload())
        if not fields or fields[0] != "71" or len(fields) < 3:
            raise ProtocolError(f"expected startApi (71), got {fields[:3]}")
        client_id = int(fields[2])
        if not self.sim.claim_client_id(client_id, self):
            self.error(
                -1,
                326,
                f"Unable to connect as the client id is already in use. "
                f"Retry with a unique client id. (clientId {client_id})",
            )
            await self.writer.drain()
            raise ProtocolError(f"clientId {client_id} already in use")
        self.client_id = client_id
        self.send(m.next_valid_id(self.sim.next_order_id))
        self.send(m.managed_accounts([self.sim.account]))
        if self.sim.link_down:  # restarted but not yet logged in to IB: no farm is up
            self.error(-1, *LINK_LOST)
            return
        for code, text in FARM_NOTICES:
            self.error(-1, code, text)

    async def _next_payload(self) -> bytes:
        while not self._pending:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("peer closed")
            self._pending += self.frames.feed(data)
        return self._pending.pop(0)

    # ---- reading and dispatch -------------------------------------------------------------
    async def _serve(self) -> None:
        reading = asyncio.ensure_future(self._read_forever())
        try:
            while not self.closed:
                item = await self._inbox.get()
                if isinstance(item, Exception):
                    raise item
                await self.sim.wait_unstalled()
                await self._dispatch(item)
                if self._inbox.empty():
                    await self.writer.drain()
        finally:
            reading.cancel()

    async def _read_forever(self) -> None:
        """Move arriving frames into the inbox, counting each against the rate limit."""
        backlog, self._pending = self._pending, []
        try:
            while True:
                for payload in backlog:
                    await self._admit(payload)
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("peer closed")
                backlog = self.frames.feed(data)
        except (ProtocolError, UnicodeDecodeError, ConnectionError, OSError) as exc:
            await self._inbox.put(exc)

    async def _admit(self, payload: bytes) -> None:
        fields = decode_fields(payload)
        excess = self.rate.record() if self.sim.pacing_enabled else None
        if excess is not None:
            self.error(-1, 100, RATE_TEXT % (self.rate.limit, excess.count))
            if excess.close:
                await self.writer.drain()
                await self.close()  # TWS drops a client that keeps flooding
                raise RateLimitExceeded(
                    f"client {self.client_id} over {self.rate.limit} messages/s in "
                    f"{self.rate.close_after} consecutive seconds"
                )
        await self._inbox.put(fields)

    async def _dispatch(self, fields: list[str]) -> None:
        if not fields or not fields[0].isdigit():
            raise ProtocolError(f"message without a numeric id: {fields[:3]}")
        handler = self.handlers.get(int(fields[0]))
        if handler is None:
            log.warning("client %s: unknown message id %s", self.client_id, fields[0])
            self.error(-1, 505, f"Fatal Error: Unknown message id {fields[0]}")
            return
        result = handler(self, fields)
        if result is not None:
            await result

    # ---- streams ------------------------------------------------------------------------
    def start_task(self, kind: str, req_id: int, coro: Coroutine[Any, Any, None]) -> None:
        """Run a streaming subscription until cancelled or the session ends."""
        task = asyncio.ensure_future(coro)
        self.tasks[(kind, req_id)] = task

        def _done(t: asyncio.Task[None]) -> None:
            self.tasks.pop((kind, req_id), None)
            self.sim.open_requests.close((self, req_id))
            if not t.cancelled() and t.exception() is not None:
                log.error("stream %s/%s failed", kind, req_id, exc_info=t.exception())

        task.add_done_callback(_done)

    def cancel_task(self, kind: str, req_id: int) -> None:
        """Stop a streaming subscription (no-op when it is not running)."""
        task = self.tasks.pop((kind, req_id), None)
        if task is not None:
            task.cancel()
