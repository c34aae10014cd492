"""One ib_async connection that stays up: client-id retry, reconnect with backoff, 1100/1102.

:class:`IBConnection` owns the ``ib_async.IB`` object of the gateway. It connects with a
timeout, moves to the next client id when the gateway answers 326 (client id in use),
reconnects with capped, jittered exponential backoff when the socket drops or connectivity
stays lost (1100) too long, and calls the registered restore callbacks (which re-subscribe
live streams) after a reconnect or 1101/1102. It never blocks the event loop: only ib_async's
``*Async`` methods are awaited.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import ib_async

from core.clock import Clock, RealClock
from core.errors import NotConnected
from core.settings import IBSettings

log = logging.getLogger(__name__)

CLIENT_ID_IN_USE = 326
CONNECTIVITY_LOST = 1100
RESTORED_DATA_LOST = 1101
RESTORED_DATA_KEPT = 1102
_INFO_CODES = range(2100, 2200)


@dataclass(frozen=True, slots=True, kw_only=True)
class Backoff:
    """Exponential backoff: ``initial * factor**attempt``, capped, then jittered by ±``jitter``."""

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    jitter: float = 0.2

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Return the wait before retry number ``attempt`` (0-based)."""
        base = min(self.cap, self.initial * self.factor ** max(0, attempt))
        return max(0.0, base * (1.0 + rng.uniform(-self.jitter, self.jitter)))


@dataclass(slots=True, kw_only=True)
class ConnectionState:
    """What the connection knows about itself (copied into the gateway's health record)."""

    connected: bool = False
    broker_connectivity: bool = True
    server_version: int | None = None
    client_id: int | None = None
    client_ids_tried: list[int] = field(default_factory=list)
    reconnects: int = 0
    last_error_code: int | None = None
    last_error_message: str = ""
    last_error_time: datetime | None = None
    errors_by_code: dict[int, int] = field(default_factory=dict)
    pacing_violations: int = 0
    no_data_answers: int = 0
    restore_failures: int = 0


class IBConnection:
    """Keep one ``ib_async.IB`` connected to a gateway.

    Args:
        host: Gateway host.
        port: Gateway API port.
        client_id: First client id to try; on error 326 the next ones are tried.
        timeout: Seconds allowed for one connect (handshake plus initial sync).
        account: Account to sync, or "" for the gateway's only account.
        client_id_attempts: How many consecutive client ids to try.
        backoff: Reconnect delays.
        lost_grace_s: How long a 1100 (connectivity lost) may last before reconnecting.
        clock: Time source for backoff sleeps.
        seed: Seed of the jitter, for reproducible tests.
        on_error: Called with ``(code, message)`` for every error the gateway reports.
        on_connected: Called with True after each connect and False after each disconnect.
    """

    def __init__(
        self,
        *,
        host: str,
        port: int,
        client_id: int,
        timeout: float = 10.0,
        account: str = "",
        client_id_attempts: int = 5,
        backoff: Backoff | None = None,
        lost_grace_s: float = 10.0,
        clock: Clock | None = None,
        seed: int | None = None,
        on_error: Callable[[int, str], None] | None = None,
        on_connected: Callable[[bool], None] | None = None,
    ) -> None:
        self.host, self.port, self.timeout, self.account = host, port, timeout, account
        self.base_client_id = client_id
        self.client_id_attempts = max(1, client_id_attempts)
        self.backoff = backoff or Backoff()
        self.lost_grace_s = lost_grace_s
        self.state = ConnectionState()
        self.ib = ib_async.IB()
        self.ib.RaiseRequestErrors = True  # failed requests raise instead of returning []
        self.ib.errorEvent += self._on_error
        self.ib.disconnectedEvent += self._on_disconnected
        self._clock = clock or RealClock()
        self._rng = random.Random(seed)
        self._on_error_cb = on_error
        self._on_connected_cb = on_connected
        self._restore: list[Callable[[], Awaitable[None]]] = []
        self._ready = asyncio.Event()
        self._closing = True
        self._connecting = False
        self._codes_this_attempt: set[int] = set()
        self._in_use = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._lost_watch: asyncio.Task[None] | None = None

    @classmethod
    def from_settings(
        cls,
        ib: IBSettings,
        *,
        clock: Clock,
        backoff: Backoff | None,
        seed: int | None,
        on_error: Callable[[int, str], None],
        on_connected: Callable[[bool], None],
    ) -> IBConnection:
        """Return a connection to the endpoint ``ib`` names (unset host: 127.0.0.1)."""
        return cls(
            host=ib.host or "127.0.0.1",
            port=ib.port,
            client_id=ib.client_id,
            timeout=ib.timeout,
            account=ib.account or "",
            backoff=backoff,
            clock=clock,
            seed=seed,
            on_error=on_error,
            on_connected=on_connected,
        )

    # --- public -----------------------------------------------------------------------------

    def on_restore(self, callback: Callable[[], Awaitable[None]]) -> None:
        """Register ``callback`` to run after a reconnect or a 1101/1102 restore."""
        self._restore.append(callback)

    async def connect(self) -> None:
        """Connect now (no backoff), trying further client ids on error 326.

        Raises:
            NotConnected: naming the address, the client ids tried and the fix.
        """
        self._closing = False
        await self._connect_once()

    async def disconnect(self) -> None:
        """Disconnect and stop reconnecting."""
        self._closing = True
        for task in list(self._tasks):
            task.cancel()
        self.ib.disconnect()
        self._mark_down()

    async def ensure_connected(self, timeout: float) -> None:
        """Return when connected, waiting up to ``timeout`` s for a reconnect in progress.

        Raises:
            NotConnected: if not connected (and not reconnecting) or the wait timed out.
        """
        if self._ready.is_set() and self.ib.isConnected():
            return
        if self._closing:
            raise NotConnected("the gateway is not connected; call connect() first")
        try:
            await asyncio.wait_for(self._ready.wait(), timeout)
        except TimeoutError:
            raise NotConnected(
                f"no connection to IB at {self.host}:{self.port} after waiting {timeout:g}s; "
                "reconnecting in the background, check that the gateway is up"
            ) from None

    def force_reconnect(self) -> None:
        """Drop the socket; the disconnect handler reconnects with backoff."""
        if self.ib.isConnected():
            self.ib.disconnect()
        else:
            self._on_disconnected()

    # --- connecting ---------------------------------------------------------------------------

    async def _connect_once(self) -> None:
        first = self.state.client_id or self.base_client_id
        ids = [first] + [
            self.base_client_id + i
            for i in range(self.client_id_attempts)
            if self.base_client_id + i != first
        ]
        self._connecting = True
        try:
            for cid in ids[: self.client_id_attempts]:
                if await self._try_client_id(cid):
                    return
            raise NotConnected(
                f"client ids {ids[: self.client_id_attempts]} are all in use at "
                f"{self.host}:{self.port} (error 326); set SCIZOR_IB_CLIENT_ID to a free id"
            )
        finally:
            self._connecting = False

    async def _try_client_id(self, cid: int) -> bool:
        """Connect with ``cid``; False when it is in use (326), raise on other failures."""
        self._codes_this_attempt = set()
        self._in_use = asyncio.Event()
        self.state.client_ids_tried.append(cid)
        connecting = asyncio.ensure_future(
            self.ib.connectAsync(
                self.host, self.port, clientId=cid, timeout=self.timeout, account=self.account
            )
        )
        in_use = asyncio.ensure_future(self._in_use.wait())
        # ib_async waits for its whole timeout after a 326; stop at the error instead
        await asyncio.wait({connecting, in_use}, return_when=asyncio.FIRST_COMPLETED)
        in_use.cancel()
        if not connecting.done():
            connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await connecting
            self.ib.disconnect()
        try:
            if self._in_use.is_set():
                raise ConnectionError(f"client id {cid} already in use")
            connecting.result()
        except (OSError, TimeoutError, ConnectionError) as exc:
            if CLIENT_ID_IN_USE in self._codes_this_attempt or _looks_in_use(exc):
                log.warning("IB client id %s in use; trying the next one", cid)
                return False
            raise NotConnected(
                f"cannot connect to IB at {self.host}:{self.port} with client id {cid}: "
                f"{exc!r}; check SCIZOR_IB_HOST/SCIZOR_IB_PORT and that the gateway is up"
            ) from exc
        self.state.connected = True
        self.state.broker_connectivity = True
        self.state.client_id = cid
        self.state.server_version = self.ib.client.serverVersion()
        self._ready.set()
        if self._on_connected_cb is not None:
            self._on_connected_cb(True)
        return True

    def _mark_down(self) -> None:
        self._ready.clear()
        if self.state.connected and self._on_connected_cb is not None:
            self._on_connected_cb(False)
        self.state.connected = False

    def _on_disconnected(self) -> None:
        self._mark_down()
        if self._closing or self._connecting:
            return
        if any(t.get_name() == "ib-reconnect" and not t.done() for t in self._tasks):
            return
        self._spawn(self._reconnect_loop(), name="ib-reconnect")

    async def _reconnect_loop(self) -> None:
        attempt = 0
        while not self._closing:
            await self._clock.sleep(self.backoff.delay(attempt, self._rng))
            try:
                await self._connect_once()
            except NotConnected as exc:
                log.warning("reconnect attempt %d failed: %s", attempt + 1, exc)
                attempt += 1
                continue
            self.state.reconnects += 1
            log.info("reconnected to IB after %d attempt(s)", attempt + 1)
            await self._run_restore()
            return

    async def _run_restore(self) -> None:
        for callback in list(self._restore):
            try:
                await callback()
            except Exception:  # top-level loop: one failed restore must not stop the others
                self.state.restore_failures += 1
                log.exception("restoring a subscription after reconnect failed")

    # --- errors and connectivity ----------------------------------------------------------------

    def _on_error(self, req_id: int, code: int, message: str, contract: object = None) -> None:
        self._codes_this_attempt.add(code)
        if code == CLIENT_ID_IN_USE:
            self._in_use.set()
        st = self.state
        if code in _INFO_CODES:
            return
        if code == 162 and "returned no data" in message:
            st.no_data_answers += 1  # an empty answer, not a failure
            return
        st.last_error_code, st.last_error_message = code, message
        st.last_error_time = datetime.now(UTC)
        st.errors_by_code[code] = st.errors_by_code.get(code, 0) + 1
        if code == 162 and "pacing violation" in message.lower():
            st.pacing_violations += 1
        if self._on_error_cb is not None:
            self._on_error_cb(code, message)
        if code == CONNECTIVITY_LOST:
            st.broker_connectivity = False
            if self._lost_watch is None or self._lost_watch.done():
                self._lost_watch = self._spawn(self._watch_lost(), name="ib-1100")
        elif code in (RESTORED_DATA_LOST, RESTORED_DATA_KEPT):
            st.broker_connectivity = True
            if self._lost_watch is not None:
                self._lost_watch.cancel()
            self._spawn(self._run_restore(), name="ib-restore")

    async def _watch_lost(self) -> None:
        await self._clock.sleep(self.lost_grace_s)
        if not self.state.broker_connectivity and not self._closing:
            log.warning("IB connectivity lost for %.1fs (1100); reconnecting", self.lost_grace_s)
            self.force_reconnect()

    def _spawn(self, coro: Awaitable[None], *, name: str) -> asyncio.Task[None]:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task


def _looks_in_use(exc: BaseException) -> bool:
    return "already in use" in str(exc).lower()
