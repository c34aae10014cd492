"""One client connection: handshake, request dispatch and replies.

Each inbound message id maps to one small handler. Anything that breaks the framing closes
this connection only; unknown message ids get an error reply and the connection lives on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from ibsim import messages as m
from ibsim import streams
from ibsim.contracts import ContractInfo
from ibsim.history import HistoryError, fetch_bars, parse_request
from ibsim.orders import SimOrder
from ibsim.pacing import OPEN_LIMIT_TEXT, PACING_TEXT, RATE_TEXT, MessageRate
from ibsim.protocol import (
    Field,
    FrameReader,
    ProtocolError,
    decode_fields,
    encode_message,
    parse_version_range,
    server_hello,
)

if TYPE_CHECKING:
    from ibsim.server import IBSim

log = logging.getLogger("ibsim.session")
Handler = Callable[[list[str]], Awaitable[None] | None]
FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefil"),
)


class Session:
    """Serve one TWS API client over an asyncio stream pair."""

    def __init__(
        self, sim: IBSim, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.sim = sim
        self.reader = reader
        self.writer = writer
        self.client_id = -1
        self.frames = FrameReader()
        self._pending: list[bytes] = []
        self.rate = MessageRate(sim.clock)
        self.tasks: dict[tuple[str, int], asyncio.Task[None]] = {}
        self.wants_positions = False
        self.account_updates = False
        self.multi_req_ids: set[int] = set()
        self.closed = False
        self.handlers: dict[int, Handler] = {
            1: self._req_mkt_data,
            2: self._cancel_stream("mkt", 2),
            3: self._place_order,
            4: self._cancel_order,
            5: self._req_open_orders,
            6: self._req_account_updates,
            7: self._req_executions,
            8: self._req_ids,
            9: self._req_contract_details,
            15: lambda f: None,  # reqAutoOpenOrders: nothing to bind in ibsim
            16: self._req_open_orders,
            17: lambda f: self.send(m.managed_accounts([self.sim.account])),
            20: self._req_historical,
            25: self._cancel_stream("hist", 2),
            49: lambda f: self.send(m.current_time(int(self.sim.clock.now().timestamp()))),
            50: self._req_realtime_bars,
            51: self._cancel_stream("rtb", 2),
            59: lambda f: None,  # reqMarketDataType: ibsim data is always "live"
            61: self._req_positions,
            62: self._req_account_summary,
            63: lambda f: None,
            64: self._cancel_positions,
            76: self._req_account_updates_multi,
            77: lambda f: self.multi_req_ids.discard(int(f[2])),
            99: lambda f: self.send(m.completed_orders_end()),
        }

    # ---- plumbing ---------------------------------------------------------------------
    def send(self, fields: list[Field]) -> None:
        """Frame and queue one message (dropped silently once the connection is gone)."""
        # The peer may vanish before ``closed`` is set (the reader notices later): writing to a
        # closing transport only makes asyncio log "socket.send() raised exception".
        if not self.closed and not self.writer.is_closing():
            self.writer.write(encode_message(fields))

    def error(self, req_id: int, code: int, text: str) -> None:
        """Send a TWS error message."""
        self.send(m.server_error(req_id, code, text))

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

    async def _handshake(self) -> None:
        greeting = await self.reader.readexactly(4)
        if greeting != b"API\0":
            raise ProtocolError(f"expected b'API\\x00' greeting, got {greeting!r}")
        payload = await self._next_payload()
        parse_version_range(payload)
        self.writer.write(server_hello(self.sim.clock.now()))
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
        for code, text in FARM_NOTICES:
            self.error(-1, code, text)

    async def _next_payload(self) -> bytes:
        while not self._pending:
            data = await self.reader.read(65536)
            if not data:
                raise ConnectionError("peer closed")
            self._pending += self.frames.feed(data)
        return self._pending.pop(0)

    async def _serve(self) -> None:
        backlog, self._pending = self._pending, []
        while not self.closed:
            if not backlog:
                data = await self.reader.read(65536)
                if not data:
                    raise ConnectionError("peer closed")
                backlog = self.frames.feed(data)
            while backlog and not self.closed:
                await self.sim.wait_unstalled()
                await self._dispatch(decode_fields(backlog.pop(0)))
            await self.writer.drain()

    async def _dispatch(self, fields: list[str]) -> None:
        if not fields or not fields[0].isdigit():
            raise ProtocolError(f"message without a numeric id: {fields[:3]}")
        if self.sim.pacing_enabled and (count := self.rate.record()) is not None:
            self.error(-1, 100, RATE_TEXT % count)
            await self.writer.drain()
            raise ProtocolError(f"client {self.client_id} sent {count} messages in a second")
        handler = self.handlers.get(int(fields[0]))
        if handler is None:
            log.warning("client %s: unknown message id %s", self.client_id, fields[0])
            self.error(-1, 505, f"Fatal Error: Unknown message id {fields[0]}")
            return
        result = handler(fields)
        if result is not None:
            await result

    # ---- contracts ----------------------------------------------------------------------
    def resolve(self, fields: list[str], at: int) -> list[ContractInfo]:
        """Match the C12 contract group starting at ``fields[at]`` against the world."""
        con_id, symbol, sec_type = fields[at], fields[at + 1], fields[at + 2]
        exchange, primary, currency = fields[at + 7], fields[at + 8], fields[at + 9]
        return self.sim.world.match(
            con_id=int(con_id or 0),
            symbol=symbol,
            sec_type=sec_type,
            exchange=exchange,
            primary_exchange=primary,
            currency=currency,
        )

    def resolve_one(self, req_id: int, fields: list[str], at: int) -> ContractInfo | None:
        """Resolve a contract for a data or order request, or send error 200 and return None."""
        found = self.resolve(fields, at)
        if len(found) == 1:
            return found[0]
        what = "is ambiguous" if found else "could not be found"
        self.error(
            req_id,
            200,
            f"No security definition has been found for the request "
            f"(contract {fields[at + 1]} {what})",
        )
        return None

    def _req_contract_details(self, fields: list[str]) -> None:
        req_id = int(fields[2])
        found = self.resolve(fields, 3)
        if not found:
            self.error(req_id, 200, "No security definition has been found for the request")
            return
        exchange = fields[10] or "SMART"
        today = self.sim.clock.now().date()
        for c in found:
            dates = self.sim.market.session_dates(c, today, today.replace(year=today.year + 1))
            hours = streams.hours(c, dates[:7])
            self.send(m.contract_details(req_id, c, exchange=exchange, **hours))
        self.send(m.contract_details_end(req_id))

    # ---- historical data --------------------------------------------------------------
    async def _req_historical(self, fields: list[str]) -> None:
        req_id = int(fields[1])
        c = self.resolve_one(req_id, fields, 2)
        if c is None:
            return
        names = ("end", "barSize", "duration", "useRTH", "whatToShow", "formatDate")
        raw = dict(zip(names, fields[15:21], strict=True))
        raw["keepUpToDate"] = fields[21] if len(fields) > 21 else "0"
        try:
            req = parse_request(c, fields=raw, now=self.sim.clock.now())
        except HistoryError as exc:
            self.error(req_id, exc.code, exc.text)
            return
        reason = self.sim.pacer.violation(
            identical_key=req.pacing_key,
            contract_key=(c.con_id, req.what),
            hard_paced=req.bar.hard_paced,
            weight=2 if req.what == "BID_ASK" else 1,
        )
        if reason:
            log.info("client %s req %s: pacing violation (%s)", self.client_id, req_id, reason)
            self.error(req_id, 162, PACING_TEXT)
            return
        if req.keep_up_to_date and not self.sim.open_requests.open((self, req_id)):
            self.error(req_id, 162, OPEN_LIMIT_TEXT)
            return
        start, end, bars = await asyncio.to_thread(fetch_bars, self.sim.market, req)
        if not bars and not req.keep_up_to_date:
            self.error(
                req_id,
                162,
                "Historical Market Data Service error message:HMDS query returned no data",
            )
            return
        self.send(m.historical_data(req_id, start, end, bars))
        if req.keep_up_to_date:
            self.start_task("hist", req_id, streams.keep_up_to_date(self, req_id, req))

    def start_task(self, kind: str, req_id: int, coro: Awaitable[None]) -> None:
        """Run a streaming subscription until cancelled or the session ends."""
        task = asyncio.ensure_future(coro)
        self.tasks[(kind, req_id)] = task

        def _done(t: asyncio.Task[None]) -> None:
            self.tasks.pop((kind, req_id), None)
            self.sim.open_requests.close((self, req_id))
            if not t.cancelled() and t.exception() is not None:
                log.error("stream %s/%s failed", kind, req_id, exc_info=t.exception())

        task.add_done_callback(_done)

    def _cancel_stream(self, kind: str, at: int) -> Handler:
        def cancel(fields: list[str]) -> None:
            task = self.tasks.pop((kind, int(fields[at])), None)
            if task is not None:
                task.cancel()
            self.sim.open_requests.close((self, int(fields[at])))

        return cancel

    # ---- market data ------------------------------------------------------------------
    def _req_mkt_data(self, fields: list[str]) -> None:
        req_id = int(fields[2])
        c = self.resolve_one(req_id, fields, 3)
        if c is None:
            return
        snapshot = fields[17] == "1" if len(fields) > 17 else False
        self.send(m.market_data_type(req_id, 1))
        if snapshot:
            streams.send_quote(self, req_id, c, previous=None)
            self.send(m.tick_snapshot_end(req_id))
        else:
            self.start_task("mkt", req_id, streams.ticks(self, req_id, c))

    def _req_realtime_bars(self, fields: list[str]) -> None:
        req_id = int(fields[2])
        c = self.resolve_one(req_id, fields, 3)
        if c is not None:
            rth = fields[17] == "1" if len(fields) > 17 else False
            self.start_task("rtb", req_id, streams.realtime_bars(self, req_id, c, rth=rth))

    # ---- orders -----------------------------------------------------------------------
    def _place_order(self, fields: list[str]) -> None:
        order_id = int(fields[1])
        c = self.resolve_one(order_id, fields, 2)
        if c is None:
            return
        try:
            qty = Decimal(fields[17] or "0")
        except InvalidOperation:
            self.error(order_id, 320, f"Error reading request: totalQuantity {fields[17]!r}")
            return
        self.sim.note_order_id(order_id)
        order = SimOrder(
            order_id=order_id,
            client_id=self.client_id,
            perm_id=self.sim.broker.next_perm_id(),
            contract=c,
            exchange=fields[9] or "SMART",
            action=fields[16].upper(),
            total_qty=qty,
            order_type=fields[18].upper(),
            lmt_price=float(fields[19]) if fields[19] else None,
            aux_price=float(fields[20]) if fields[20] else None,
            tif=fields[21] or "DAY",
            account=fields[23] or self.sim.account,
            order_ref=fields[26],
            parent_id=int(fields[28] or 0),
            outside_rth=fields[33] == "1" if len(fields) > 33 else False,
        )
        self.sim.submit(order)

    def _cancel_order(self, fields: list[str]) -> None:
        order_id = int(fields[2])
        order = self.sim.broker.cancel(self.client_id, order_id)
        if order is None:
            self.error(
                order_id,
                10148,
                f"OrderId {order_id} that needs to be cancelled "
                "cannot be cancelled, state: unknown or done.",
            )
            return
        self.error(order_id, 202, "Order Canceled - reason:")
        self.send(m.open_order(order))
        self.send(m.order_status(order))

    def _req_open_orders(self, fields: list[str]) -> None:
        scope = None if self.client_id == 0 or fields[0] == "16" else self.client_id
        for order in self.sim.broker.working(scope):
            self.send(m.open_order(order))
            self.send(m.order_status(order))
        self.send(m.open_order_end())

    def _req_executions(self, fields: list[str]) -> None:
        req_id, wanted = int(fields[2]), int(fields[3] or 0)
        for e in self.sim.broker.executions:
            if wanted in (0, e.client_id):
                self.send(m.exec_details(req_id, e))
                self.send(m.commission_report(e))
        self.send(m.exec_details_end(req_id))

    def _req_ids(self, fields: list[str]) -> None:
        self.send(m.next_valid_id(self.sim.next_order_id))

    # ---- account and positions ----------------------------------------------------------
    def _req_positions(self, fields: list[str]) -> None:
        self.wants_positions = True
        for pos_fields in self.sim.position_messages():
            self.send(pos_fields)
        self.send(m.position_end())

    def _cancel_positions(self, fields: list[str]) -> None:
        self.wants_positions = False

    def _req_account_updates(self, fields: list[str]) -> None:
        self.account_updates = fields[2] == "1"
        if self.account_updates:
            self.sim.send_account_updates(self)
            self.send(m.account_download_end(self.sim.account))

    def _req_account_updates_multi(self, fields: list[str]) -> None:
        req_id = int(fields[2])
        self.multi_req_ids.add(req_id)
        for key, value, cur in self.sim.account_rows():
            self.send(m.account_update_multi(req_id, self.sim.account, key, value, cur))
        self.send(m.account_update_multi_end(req_id))

    def _req_account_summary(self, fields: list[str]) -> None:
        req_id = int(fields[2])
        tags = {t for t in fields[4].split(",") if t} if len(fields) > 4 else set()
        for key, value, cur in self.sim.account_rows():
            if not tags or key in tags:
                self.send(m.account_summary(req_id, self.sim.account, key, value, cur))
        self.send(m.account_summary_end(req_id))
