"""The IBSim server: listener, shared state, order routing and fault injection.

``IBSim`` owns one simulated account, one market and one matching engine shared by every
client connection. Fault-injection methods are safe to call from any thread: when the server
runs in another thread's event loop (see :mod:`ibsim.testing`) they hop onto that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

from core.clock import ScaledClock
from ibsim import messages as m
from ibsim.contracts import ContractWorld, default_world
from ibsim.control import ControlServer
from ibsim.market import Market
from ibsim.orders import Broker, Event, FillEvent, SimOrder
from ibsim.pacing import HistoricalPacer, OpenRequests
from ibsim.session import Session

log = logging.getLogger("ibsim")
T = TypeVar("T")
MATCH_PERIOD_S = 0.02
"""Real seconds between matching passes over working orders."""


class IBSim:
    """A loopback IB Gateway: ``await IBSim(port=0).start()`` then connect ib_async to ``.port``.

    Args:
        host: Interface to listen on.
        port: TCP port; 0 picks a free one (read it from ``.port`` after ``start()``).
        seed: Seed of the synthetic market (same seed, same bars).
        pacing: ``"strict"`` enforces IBKR's pacing and message-rate rules, ``"off"`` not.
        speed: Simulated seconds per real second.
        data_dir: Directory of ``<SYMBOL>.parquet|.csv`` bars to replay instead of synthetic.
        account: The single managed account id.
        start: Simulated time at start (default: now); pick a session time for streaming.
        control_port: Also listen for newline-delimited JSON fault commands (0 = free port).
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        seed: int = 0,
        pacing: str = "strict",
        speed: float = 1.0,
        data_dir: str | Path | None = None,
        account: str = "DU1234567",
        start: datetime | None = None,
        control_port: int | None = None,
        world: ContractWorld | None = None,
    ) -> None:
        if pacing not in ("strict", "off"):
            raise ValueError(f"pacing must be 'strict' or 'off'; got {pacing!r}")
        self.host = host
        self.port = port
        self.account = account
        self.clock = ScaledClock(start=start, speed=speed)
        self.world = world or default_world()
        self.market = Market(seed=seed, data_dir=Path(data_dir) if data_dir else None)
        self.broker = Broker(account=account)
        self.pacing_enabled = pacing == "strict"
        self.pacer = HistoricalPacer(self.clock, enabled=self.pacing_enabled)
        self.open_requests = OpenRequests(enabled=self.pacing_enabled)
        self.next_order_id = 1
        self.control = ControlServer(self, host=host, port=control_port)
        self.sessions: dict[int, Session] = {}
        self._anonymous: set[Session] = set()
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._matcher: asyncio.Task[None] | None = None
        self._stalled_until = 0.0
        self._refuse_until = 0.0

    # ---- lifecycle ----------------------------------------------------------------------
    async def start(self) -> None:
        """Start listening (and the control port, if asked for)."""
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        await self.control.start()
        self._matcher = asyncio.ensure_future(self._match_forever())
        log.info("ibsim listening on %s:%s", self.host, self.port)

    async def stop(self) -> None:
        """Close every connection and stop listening."""
        if self._matcher is not None:
            self._matcher.cancel()
        await self.control.stop()
        if self._server is not None:
            self._server.close()
        await self.drop_connections()
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if asyncio.get_running_loop().time() < self._refuse_until:
            writer.close()
            return
        session = Session(self, reader, writer)
        self._anonymous.add(session)
        await session.run()

    # ---- shared state used by sessions ---------------------------------------------------
    def claim_client_id(self, client_id: int, session: Session) -> bool:
        """Register ``session`` under ``client_id`` unless another live session holds it."""
        holder = self.sessions.get(client_id)
        if holder is not None and not holder.closed:
            return False
        self.sessions[client_id] = session
        self._anonymous.discard(session)
        return True

    def forget(self, session: Session) -> None:
        """Drop a closed session from the registry."""
        self._anonymous.discard(session)
        if self.sessions.get(session.client_id) is session:
            del self.sessions[session.client_id]

    def note_order_id(self, order_id: int) -> None:
        """Keep nextValidId above every order id a client has used."""
        self.next_order_id = max(self.next_order_id, order_id + 1)

    async def wait_unstalled(self) -> None:
        """Wait while a stall fault is active."""
        loop = asyncio.get_running_loop()
        while (left := self._stalled_until - loop.time()) > 0:
            await asyncio.sleep(left)

    def prices(self) -> dict[int, float]:
        """Last prices of every contract the account holds."""
        now = self.clock.now()
        return {
            con_id: self.market.quote(self.broker.contracts[con_id], now).last
            for con_id in self.broker.positions
        }

    def account_rows(self) -> list[tuple[str, str, str]]:
        """Account values as (tag, value, currency) rows."""
        rows = [
            (k, f"{v:.2f}", cur)
            for k, (v, cur) in self.broker.account_values(self.prices()).items()
        ]
        for cur, value in self.broker.cash.items():
            rows.append(("CashBalance", f"{value:.2f}", cur))
        rows += [("AccountCode", self.account, ""), ("Currency", "USD", "USD")]
        return [*rows, ("AccountType", "INDIVIDUAL", "")]

    def position_messages(self) -> list[list[Any]]:
        """One position message per holding (including closed-out ones, at zero)."""
        return [
            m.position(self.account, self.broker.contracts[k], p.qty, p.avg_cost)
            for k, p in self.broker.positions.items()
        ]

    def send_account_updates(self, session: Session) -> None:
        """Send account values and the portfolio to one reqAccountUpdates subscriber."""
        for key, value, cur in self.account_rows():
            session.send(m.account_value(key, value, cur, self.account))
        prices = self.prices()
        for con_id, pos in self.broker.positions.items():
            c, price = self.broker.contracts[con_id], prices[con_id]
            session.send(
                m.portfolio_value(
                    c,
                    qty=pos.qty,
                    market_price=price,
                    avg_cost=pos.avg_cost,
                    unrealized=self.broker.unrealized(con_id, price),
                    realized=pos.realized,
                    account=self.account,
                )
            )
        session.send(m.account_time(self.clock.now().strftime("%H:%M")))

    # ---- orders ---------------------------------------------------------------------------
    def submit(self, order: SimOrder) -> None:
        """Place ``order`` on the shared book and report what happened."""
        quote = self.market.quote(order.contract, self.clock.now())
        events, reason = self.broker.place(order, quote, self.clock.now())
        session = self.sessions.get(order.client_id)
        if reason:
            if session is not None:
                session.error(order.order_id, 201, f"Order rejected - reason:{reason}")
            return
        self.route(events)

    def route(self, events: list[Event]) -> None:
        """Turn broker events into messages for the owning client and subscribers."""
        for event in events:
            session = self.sessions.get(event.order.client_id)
            if isinstance(event, FillEvent):
                if session is not None:
                    session.send(m.exec_details(-1, event.execution))
                    session.send(m.commission_report(event.execution))
                self._broadcast_holdings()
            if session is not None:
                session.send(m.open_order(event.order))
                session.send(m.order_status(event.order))

    def _broadcast_holdings(self) -> None:
        for session in list(self.sessions.values()):
            if session.wants_positions:
                for fields in self.position_messages():
                    session.send(fields)
            if session.account_updates:
                self.send_account_updates(session)
            for req_id in session.multi_req_ids:
                for key, value, cur in self.account_rows():
                    session.send(m.account_update_multi(req_id, self.account, key, value, cur))

    async def _match_forever(self) -> None:
        while True:
            await asyncio.sleep(MATCH_PERIOD_S)
            await self.wait_unstalled()
            try:
                now = self.clock.now()
                events = self.broker.match(partial(self.market.quote, now=now), now)
                self.route(events)
            except Exception:  # keep matching for everyone else; the failure is logged
                log.exception("matching pass failed")

    # ---- fault injection (thread-safe) ----------------------------------------------------
    def _call(self, fn: Callable[[], Any]) -> Any:
        loop = self._loop
        if loop is None:
            raise RuntimeError("IBSim is not running; call start() first")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            result = fn()
            return asyncio.ensure_future(result) if asyncio.iscoroutine(result) else result

        async def invoke() -> Any:
            result = fn()
            return (await result) if asyncio.iscoroutine(result) else result

        return asyncio.run_coroutine_threadsafe(invoke(), loop).result(timeout=10)

    def drop_all(self) -> None:
        """Close every client connection abruptly (clients see a disconnect)."""
        self._call(self.drop_connections)

    async def drop_connections(self) -> None:
        """Abort every connection (call on the server's loop)."""
        for session in [*self.sessions.values(), *self._anonymous]:
            session.writer.transport.abort()
            await session.close()

    def connectivity_flap(self) -> None:
        """Send 1100 (connectivity lost) then 1102 (restored, data maintained) to everyone."""
        self._call(self.send_flap)

    def send_flap(self) -> None:
        """Send 1100 then 1102 to every client (call on the server's loop)."""
        for session in list(self.sessions.values()):
            session.error(-1, 1100, "Connectivity between IB and Trader Workstation has been lost.")
            session.error(
                -1,
                1102,
                "Connectivity between IB and Trader Workstation has been "
                "restored - data maintained.",
            )

    def stall(self, seconds: float) -> None:
        """Stop answering anything for ``seconds`` real seconds."""
        self._call(lambda: self.set_stall(seconds))

    def set_stall(self, seconds: float) -> None:
        """Start a stall of ``seconds`` (call on the server's loop)."""
        assert self._loop is not None
        self._stalled_until = self._loop.time() + seconds

    def reject_next_order(self, reason: str = "Simulated rejection") -> None:
        """Make the next placed order end Cancelled with error 201 carrying ``reason``."""
        self._call(lambda: self.broker.reject_next(reason))

    def restart(self, seconds: float) -> None:
        """Simulate the nightly restart: drop everyone and refuse connections for a while."""
        self._call(lambda: self.restart_now(seconds))

    async def restart_now(self, seconds: float) -> None:
        """Drop everyone and refuse connections for ``seconds`` (on the server's loop)."""
        assert self._loop is not None
        self._refuse_until = self._loop.time() + seconds
        await self.drop_connections()
