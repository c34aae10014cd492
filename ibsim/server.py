"""The IBSim server: listener, matching loop and fault injection over the shared state.

``IBSim`` is a :class:`~ibsim.state.SimState` (one simulated account, one market and one
matching engine shared by every client connection) that also listens for connections.
Fault-injection methods are safe to call from any thread: when the server runs in another
thread's event loop (see :mod:`ibsim.testing`) they hop onto that loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from core.clock import Clock, ScaledClock
from ibsim.contracts import ContractWorld, default_world
from ibsim.control import ControlServer
from ibsim.market import Market
from ibsim.session import FARM_NOTICES, Session
from ibsim.state import LINK_LOST, LINK_RESTORED, SimState

log = logging.getLogger("ibsim")
MATCH_PERIOD_S = 0.02
"""Real seconds between matching passes over working orders."""


class IBSim(SimState):
    """A loopback IB Gateway: ``await IBSim(port=0).start()`` then connect ib_async to ``.port``.

    Args:
        host: Interface to listen on.
        port: TCP port; 0 picks a free one (read it from ``.port`` after ``start()``).
        seed: Seed of the synthetic market (same seed, same bars).
        pacing: ``"strict"`` enforces IBKR's pacing and message-rate rules, ``"off"`` not.
        speed: Simulated seconds per real second.
        data_dir: Directory of ``<SYMBOL>.parquet|.csv`` bars to replay instead of synthetic.
        replay: Daily bars to replay by symbol, given directly (see :class:`ibsim.market.Market`).
        bar_quotes: Quote each session at its daily open with no spread, so a market order
            placed while the market is closed fills at the next open exactly (the parity
            check's replay; see :mod:`ibsim.market`).
        account: The single managed account id.
        start: Simulated time at start (default: now); pick a session time for streaming.
        control_port: Also listen for newline-delimited JSON fault commands (0 = free port).
        world: The contracts to know (default: the bundled universe).
        clock: Drive simulated time with this clock instead of ``start``/``speed`` (tests pass
            a :class:`core.clock.ManualClock` to make pacing windows deterministic).
        time_zone: The TWS login zone (IANA name, default ``UTC``): an ``endDateTime``
            written without a zone is read in it, and the handshake reports it.
        rate_clock: Real monotonic seconds for the 50 messages/s limit (default
            ``time.monotonic``).
        cash: Starting cash of the account (USD); orders needing more initial margin than
            the equity covers are refused with error 201.
        participation: Fraction of each one-minute bar's volume one order may take, so a
            large order fills in several executions over time (None: no volume cap).
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
        clock: Clock | None = None,
        time_zone: str = "UTC",
        rate_clock: Callable[[], float] = time.monotonic,
        cash: float = 1_000_000.0,
        participation: float | None = None,
        replay: Mapping[str, pd.DataFrame] | None = None,
        bar_quotes: bool = False,
    ) -> None:
        if pacing not in ("strict", "off"):
            raise ValueError(f"pacing must be 'strict' or 'off'; got {pacing!r}")
        if clock is not None and (start is not None or speed != 1.0):
            raise ValueError("pass either clock or start/speed, not both")
        super().__init__(
            clock=clock or ScaledClock(start=start, speed=speed),
            world=world or default_world(),
            market=Market(
                seed=seed,
                data_dir=Path(data_dir) if data_dir else None,
                replay=replay,
                bar_quotes=bar_quotes,
            ),
            account=account,
            pacing_enabled=pacing == "strict",
            time_zone=time_zone,
            rate_clock=rate_clock,
            cash=cash,
            participation=participation,
        )
        self.host = host
        self.port = port
        self.control = ControlServer(self, host=host, port=control_port)
        self._server: asyncio.base_events.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._matcher: asyncio.Task[None] | None = None
        self._refuse_until = 0.0
        self.match_failures = 0
        """Matching passes that raised (each is logged with its traceback)."""

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
            with contextlib.suppress(OSError, RuntimeError):
                await self._server.wait_closed()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if asyncio.get_running_loop().time() < self._refuse_until:
            writer.transport.abort()  # a reset at once, as from a port nobody listens on
            return
        session = Session(self, reader, writer)
        self.anonymous.add(session)
        await session.run()

    async def _match_forever(self) -> None:
        while True:
            await asyncio.sleep(MATCH_PERIOD_S)
            await self.wait_unstalled()
            try:
                self.match_once()
            except Exception:  # top-level loop: keep matching for everyone; logged and counted
                self.match_failures += 1
                log.exception("matching pass failed")

    # ---- fault injection (thread-safe) ----------------------------------------------------
    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's event loop and return its result (awaited if async)."""
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

    _call = call  # the name tests outside ibsim still use

    def drop_all(self) -> None:
        """Close every client connection abruptly (clients see a disconnect)."""
        self.call(self.drop_connections)

    async def drop_connections(self) -> None:
        """Abort every connection (call on the server's loop)."""
        for session in [*self.sessions.values(), *self.anonymous]:
            session.abort()
            await session.close()

    def connectivity_flap(self) -> None:
        """Send 1100 (connectivity lost) then 1102 (restored, data maintained) to everyone."""
        self.call(self.send_flap)

    def send_flap(self) -> None:
        """Send 1100 then 1102 to every client (call on the server's loop)."""
        for session in list(self.sessions.values()):
            session.error(-1, *LINK_LOST)
            session.error(-1, *LINK_RESTORED)

    def stall(self, seconds: float) -> None:
        """Stop answering anything for ``seconds`` real seconds."""
        self.call(lambda: self.set_stall(seconds))

    def set_stall(self, seconds: float) -> None:
        """Start a stall of ``seconds`` (call on the server's loop)."""
        assert self._loop is not None
        self.stalled_until = self._loop.time() + seconds

    def reject_next_order(self, reason: str = "Simulated rejection") -> None:
        """Make the next placed order end Cancelled with error 201 carrying ``reason``."""
        self.call(lambda: self.set_reject_next(reason))

    def set_reject_next(self, reason: str) -> None:
        """Reject the next placed order with ``reason`` (call on the server's loop)."""
        self.broker.reject_next(reason)

    def restart(self, seconds: float) -> None:
        """Simulate the nightly restart: drop everyone and refuse connections for a while."""
        self.call(lambda: self.restart_now(seconds))

    async def restart_now(self, seconds: float) -> None:
        """Drop everyone and refuse connections for ``seconds`` (on the server's loop)."""
        assert self._loop is not None
        self._refuse_until = self._loop.time() + seconds
        await self.drop_connections()

    def nightly_restart(self, seconds: float, relink_seconds: float) -> None:
        """Simulate the nightly restart as clients live it: every connection drops, none is
        accepted for ``seconds``, then clients connect to a gateway not yet linked to IB
        (1100 at connect) until ``relink_seconds`` later every client gets 1102 (restored,
        data maintained). Orders, fills and positions survive."""
        self.call(lambda: self.nightly_restart_now(seconds, relink_seconds))

    async def nightly_restart_now(self, seconds: float, relink_seconds: float) -> None:
        """Start the nightly restart (call on the server's loop)."""
        assert self._loop is not None
        self.link_down = True
        self._refuse_until = self._loop.time() + seconds
        await self.drop_connections()
        self._loop.call_later(seconds + relink_seconds, self.restore_link)

    def restore_link(self) -> None:
        """The gateway is linked to IB again: send 1102, then the farm notices a client that
        connected meanwhile has not had, to every client (on the loop)."""
        self.link_down = False
        for session in list(self.sessions.values()):
            session.error(-1, *LINK_RESTORED)
            for code, text in FARM_NOTICES:
                session.error(-1, code, text)
