"""Helpers to run ibsim from tests: in a background thread, or as a subprocess.

``running_ibsim(**kwargs)`` yields a started :class:`~ibsim.server.IBSim` whose event loop
runs in its own thread, so a test can drive an ``ib_async.IB`` in the main thread's loop and
call fault methods on the handle directly. ``ibsim_subprocess(...)`` starts
``python -m ibsim --port 0`` and yields a :class:`SimProcess` with the port it printed.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from ibsim.server import IBSim


@contextmanager
def running_ibsim(**kwargs: Any) -> Iterator[IBSim]:
    """Run an :class:`IBSim` (built with ``kwargs``) in a background thread.

    Yields:
        The started server; ``.port`` is the port to connect to.
    """
    sim = IBSim(**kwargs)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(sim.start())
        except BaseException as exc:  # reported to the caller below
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, name="ibsim", daemon=True)
    thread.start()
    started.wait(30)
    if failure:
        raise failure[0]
    try:
        yield sim
    finally:
        asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()


@dataclass
class SimProcess:
    """A running ``python -m ibsim`` subprocess."""

    process: subprocess.Popen[str]
    port: int
    control_port: int | None

    def control(self, cmd: str, **args: Any) -> dict[str, Any]:
        """Send one JSON command to the control port and return the reply."""
        if self.control_port is None:
            raise RuntimeError("start ibsim_subprocess(control=True) to use the control port")
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=10) as sock:
            sock.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            reply = sock.makefile("r").readline()
        result: dict[str, Any] = json.loads(reply)
        return result


@contextmanager
def ibsim_subprocess(*args: str, control: bool = True, timeout: float = 30) -> Iterator[SimProcess]:
    """Start ``python -m ibsim --port 0 [args]`` and yield it once it prints its port(s)."""
    cmd = [sys.executable, "-m", "ibsim", "--port", "0", *args]
    if control:
        cmd += ["--control-port", "0"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        port = _read_port(proc.stdout.readline, "ibsim listening on ", timeout)
        control_port = (
            _read_port(proc.stdout.readline, "ibsim control on ", timeout) if control else None
        )
        yield SimProcess(proc, port, control_port)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _read_port(readline: Callable[[], str], prefix: str, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = readline()
        if not line:
            raise RuntimeError("ibsim exited before printing its port")
        if line.startswith(prefix):
            return int(line.strip().rsplit(":", 1)[1])
    raise TimeoutError(f"ibsim did not print {prefix!r} within {timeout} s")


def eventually(check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02) -> Any:
    """Poll ``check`` until it returns a truthy value; raise AssertionError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {check}")
        time.sleep(interval)


async def eventually_async(
    check: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """Async twin of :func:`eventually` (yields to the event loop between polls)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s: {check}")
        await asyncio.sleep(interval)
