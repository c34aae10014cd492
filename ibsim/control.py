"""The control port: newline-delimited JSON fault commands for a subprocess ibsim.

Send one JSON object per line, e.g. ``{"cmd": "stall", "seconds": 2}``; each gets one JSON
line back: ``{"ok": true}`` or ``{"ok": false, "error": "..."}``. Commands: ``ping``,
``drop_all``, ``flap`` (1100 then 1102), ``stall`` (seconds), ``reject_next_order``
(reason), ``restart`` (seconds), ``nightly_restart`` (seconds, relink_seconds: drop
everyone, refuse connections, then 1100 at connect until 1102), ``status``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from typing import Any, Protocol

log = logging.getLogger("ibsim.control")


class FaultTarget(Protocol):
    """What the control port drives (:class:`ibsim.server.IBSim` is one)."""

    port: int
    link_down: bool

    @property
    def sessions(self) -> Mapping[int, object]:
        """Live connections by client id."""

    async def drop_connections(self) -> None:
        """Abort every connection."""

    def send_flap(self) -> None:
        """Send 1100 then 1102 to every client."""

    def set_stall(self, seconds: float) -> None:
        """Answer nothing for ``seconds``."""

    def set_reject_next(self, reason: str) -> None:
        """Reject the next placed order with ``reason``."""

    async def restart_now(self, seconds: float) -> None:
        """Drop everyone and refuse connections for ``seconds``."""

    async def nightly_restart_now(self, seconds: float, relink_seconds: float) -> None:
        """Drop everyone, refuse connections, then 1100 at connect until 1102."""


class ControlServer:
    """Serve fault-injection commands for one :class:`FaultTarget` (an ``IBSim``)."""

    def __init__(self, sim: FaultTarget, *, host: str, port: int | None) -> None:
        self.sim = sim
        self.host = host
        self.port = port
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        """Listen when a control port was requested (0 picks a free port)."""
        if self.port is None:
            return
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening."""
        if self._server is not None:
            self._server.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                reply = await self.execute(line)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def execute(self, line: bytes) -> dict[str, Any]:
        """Run one command line and return the JSON reply."""
        try:
            command = json.loads(line)
            if not isinstance(command, dict):
                raise ValueError("a command must be a JSON object")
            return await self._run(command)
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("bad control command %r: %s", line[:200], exc)
            return {"ok": False, "error": str(exc)}

    async def _run(self, command: dict[str, Any]) -> dict[str, Any]:
        sim, cmd = self.sim, command.get("cmd")
        if cmd == "ping":
            return {"ok": True}
        if cmd == "status":
            clients = sorted(sim.sessions)
            return {"ok": True, "clients": clients, "port": sim.port, "link_down": sim.link_down}
        if cmd == "drop_all":
            await sim.drop_connections()
        elif cmd == "flap":
            sim.send_flap()
        elif cmd == "stall":
            sim.set_stall(float(command["seconds"]))
        elif cmd == "reject_next_order":
            sim.set_reject_next(str(command.get("reason", "Simulated rejection")))
        elif cmd == "restart":
            await sim.restart_now(float(command["seconds"]))
        elif cmd == "nightly_restart":
            relink = float(command.get("relink_seconds", 1.0))
            await sim.nightly_restart_now(float(command["seconds"]), relink)
        else:
            raise ValueError(
                f"unknown cmd {cmd!r}; use ping, status, drop_all, flap, stall, "
                "reject_next_order, restart or nightly_restart"
            )
        return {"ok": True}
