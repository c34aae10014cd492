"""GatewayService: SCIZOR's one owner of the IBKR connection (a plain async class, no Ray).

Everything SCIZOR asks of Interactive Brokers goes through here: contract lookups, history,
snapshots, live bar streams, orders, positions, executions and account values. Every request
is paced (:class:`actors.pacing.Pacer`), answered in SCIZOR's types (:mod:`actors.ib_convert`)
and fails with a :mod:`core.errors` exception. Listings are named by canonical id
(``VEA.ASX``, ``VEA.ARCA``) and IB's conId, never by a bare ticker that could mean either
(:mod:`actors.contract_resolver`). The connection reconnects by itself
(:class:`actors.ib_connection.IBConnection`); read-only requests interrupted by a disconnect
are retried once it is back, orders never are.

The Ray actor in :mod:`actors.gateway` wraps one instance; tests drive it directly.

Example:
    >>> svc = GatewayService(settings.ib)                                  # doctest: +SKIP
    >>> await svc.connect()
    >>> bars = await svc.historical_bars("VEA.ASX", bar_size="1d",
    ...     start=datetime(2020, 1, 1, tzinfo=UTC), end=datetime(2025, 1, 1, tzinfo=UTC))
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

import ib_async
import pandas as pd

from actors import ib_convert as conv
from actors.bar_streams import RETRY_BACKOFF, BarStreams
from actors.contract_resolver import ContractResolver
from actors.contracts import ContractBook
from actors.fill_feed import FillFeed
from actors.gateway_health import GatewayHealth, GatewayObserver, NoObserver
from actors.gateway_orders import OrderDesk
from actors.history_plan import check_range, plan_chunks
from actors.ib_connection import CONNECTIVITY_LOST, Backoff, IBConnection
from actors.ib_link import IBLink
from actors.market_data import history_chunk, quote
from actors.order_acks import OrderAck
from actors.order_finder import OrderFinder, OrderKey, OrderLookup
from actors.pacing import GrantEvent, Pacer, PacingRules, Priority
from actors.stream_status import StreamBatch, StreamStatus
from core.barsize import BarSize, bar_size
from core.clock import Clock, RealClock
from core.errors import NotConnected
from core.settings import IBSettings, Settings
from core.types import Fill, Instrument, Order, Position

log = logging.getLogger(__name__)


DEFAULT_MARGIN_S = 0.25
"""Real seconds added to every pacing window. Historical windows already start at each
request's completion (so no lag can make them early); the margin covers the message-rate
window, whose messages have no answer to time from, and the server's clock granularity."""


class GatewayListener(Protocol):
    """Receives what the gateway pushes (:meth:`GatewayService.add_listener`); must not block."""

    def on_fill(self, fill: Fill) -> None: ...
    def on_order_status(self, ack: OrderAck) -> None: ...
    def on_connected(self) -> None: ...


class GatewayService:
    """Own one IB connection; expose paced, typed, async requests.

    Args:
        settings: SCIZOR settings or their ``ib`` part (host, port, client id, account,
            timeout). An unset host means the embedded ibsim on 127.0.0.1.
        clock: Time source of the pacer and of backoff sleeps.
        rules: Pacing limits (IBKR's by default, with a small jitter margin).
        time_scale: Divide pacing windows by this factor (an ibsim running ``speed`` N).
        backoff: Reconnect delays.
        request_timeout: Seconds one request (or a wait for reconnection) may take.
        retries: Retries after a pacing violation (162) or a dropped connection.
        violation_backoff_s: First wait after a pacing violation (doubles per retry).
        observer: Receives counts for metrics.
        seed: Seed of the reconnect and stream-retry jitter.
        stream_backoff: Waits between re-subscription attempts of a stale bar stream.
        order_lookup: SCIZOR's records of the orders it sent, ``order_lookup(order_ref) ->
            Order | None`` (sync or async), for :meth:`order_status` of orders IB forgot.
    """

    def __init__(
        self,
        settings: Settings | IBSettings,
        *,
        clock: Clock | None = None,
        rules: PacingRules | None = None,
        time_scale: float = 1.0,
        backoff: Backoff | None = None,
        request_timeout: float = 60.0,
        retries: int = 4,
        violation_backoff_s: float = 15.0,
        observer: GatewayObserver | None = None,
        seed: int | None = None,
        stream_backoff: Backoff | None = None,
        order_lookup: OrderLookup | None = None,
    ) -> None:
        ib = settings.ib if isinstance(settings, Settings) else settings
        self._clock = clock or RealClock()
        self.observer: GatewayObserver = observer or NoObserver()
        self.pacer = Pacer(
            self._clock,
            rules=rules or PacingRules.ibkr(margin_s=DEFAULT_MARGIN_S),
            time_scale=time_scale,
            on_grant=self._on_grant,
        )
        self.conn = IBConnection.from_settings(
            ib,
            clock=self._clock,
            backoff=backoff,
            seed=seed,
            on_error=self._on_ib_error,
            on_connected=self._on_connected,
        )
        self.ib = self.conn.ib
        self.link = IBLink(
            conn=self.conn,
            pacer=self.pacer,
            observer=self.observer,
            clock=self._clock,
            account=ib.account or "",
            request_timeout=request_timeout,
            retries=retries,
            violation_backoff_s=violation_backoff_s,
            time_scale=time_scale,
        )
        self.contracts = ContractResolver(self.link, ContractBook())
        self.orders = OrderDesk(self.link, self.contracts)
        self.fills = FillFeed(self.link, self.contracts)
        self.finder = OrderFinder(self.link, self.contracts, fills=self.fills, lookup=order_lookup)
        backoff = stream_backoff or RETRY_BACKOFF
        self.streams = BarStreams(self.link, observer=self.observer, backoff=backoff, seed=seed)
        self.conn.on_restore(self.streams.resubscribe)
        self._listeners: list[GatewayListener] = []
        self._pushes: set[asyncio.Task[None]] = set()
        self.fills.on_fill(self._push_fill)
        self.ib.orderStatusEvent += self._on_order_status
        self.conn.on_restore(self._restored)

    @property
    def request_timeout(self) -> float:
        """Seconds one request (or a wait for reconnection) may take."""
        return self.link.request_timeout

    # --- connection ---------------------------------------------------------------------------

    async def connect(self) -> GatewayHealth:
        """Connect to the gateway (trying further client ids on 326) and return health.

        Streams opened before an earlier :meth:`disconnect` are re-subscribed.

        Raises:
            NotConnected: naming the address and the fix.
        """
        await self.conn.connect()
        if len(self.streams):
            await self.streams.resubscribe()
        return self.health()

    async def disconnect(self) -> None:
        """Close the connection and stop reconnecting."""
        await self.conn.disconnect()

    def health(self) -> GatewayHealth:
        """Return the current health record."""
        st, ps, statuses = self.conn.state, self.pacer.stats(), self.streams.statuses()
        return GatewayHealth(
            connected=st.connected and self.ib.isConnected(),
            broker_connectivity=st.broker_connectivity,
            server_version=st.server_version,
            client_id=st.client_id,
            client_ids_tried=list(st.client_ids_tried),
            reconnects=st.reconnects,
            last_error_code=st.last_error_code,
            last_error_message=st.last_error_message,
            last_error_time=st.last_error_time,
            errors_by_code=dict(st.errors_by_code),
            pacing_violations=st.pacing_violations,
            queue_depth=ps.queue_depth,
            open_requests=ps.open_requests,
            pacing_waits=ps.waits,
            pacing_wait_seconds=ps.wait_seconds,
            streams=len(self.streams),
            streams_stale=sum(s.stale for s in statuses),
            stream_states=tuple(statuses),
            fills_awaiting_commission=self.fills.book.awaiting_commission,
            fill_conflicts=self.fills.conflicts,
        )

    # --- contracts ----------------------------------------------------------------------------

    async def qualify(self, items: Iterable[str | Instrument]) -> dict[str, Instrument | None]:
        """Look each item up at IB; unknown or ambiguous items map to None.

        Items are canonical ids (``VEA.ASX``), bare symbols, or instruments; the result is
        keyed by the string as given or the instrument's id (its symbol when it names no
        venue). Unknown symbols are recorded in the health record (error 200).
        """
        return await self.contracts.qualify(items)

    async def resolve(self, instrument: Instrument | str) -> Instrument:
        """Return the one listing ``instrument`` names, with its conId (asking IB once).

        Raises:
            NotFound: if IB has no such listing.
            AmbiguousInstrument: if a bare symbol names several listings.
            Conflict: if a given conId is another listing's.
        """
        return await self.contracts.resolve(instrument)

    async def contract_details(self, instrument: Instrument | str) -> dict[str, Any]:
        """Return IB's contract details of ``instrument`` as a plain record.

        The record carries the canonical ``instrument`` id and IB's ``con_id``.

        Raises:
            NotFound: if IB has no such contract (error 200).
            AmbiguousInstrument: if a bare symbol names several listings.
        """
        return await self.contracts.contract_details(instrument)

    # --- history -------------------------------------------------------------------------------

    async def historical_bars(
        self,
        instrument: Instrument | str,
        *,
        bar_size: str | BarSize,
        start: datetime,
        end: datetime,
        what_to_show: str = "TRADES",
        use_rth: bool = True,
        priority: Priority = Priority.BACKFILL,
    ) -> pd.DataFrame:
        """Return bars in ``[start, end)`` in SCIZOR's bar format (UTC ``ts`` index).

        Long ranges are split into the largest requests IBKR allows for the bar size; each
        is paced, and the results are merged without duplicates. Daily bars are stamped
        00:00 UTC of their session date.

        Raises:
            ValidationError: for a bad bar size or range.
            NotFound: for an unknown contract (error 200).
            AmbiguousInstrument: if a bare symbol names several listings.
            PacingViolation: if IB still refuses after the retries (error 162).
            BrokerError: for any other IB error.
        """
        bar = _bar_size(bar_size)
        check_range(start, end)
        contract = conv.to_contract(await self.resolve(instrument))
        chunks = plan_chunks(bar, start, end)
        fetch = functools.partial(
            history_chunk, self.link, contract=contract, bar=bar, what=what_to_show, rth=use_rth
        )
        frames = await asyncio.gather(*(fetch(c, priority=priority) for c in chunks))
        merged = conv.merge_bars(list(frames))
        return merged[(merged.index >= start) & (merged.index < end)]

    # --- market data ---------------------------------------------------------------------------

    async def snapshot(self, instrument: Instrument | str) -> dict[str, Any]:
        """Return the current quote: bid, ask, last and their sizes (None when absent).

        Raises:
            NotFound: for an unknown contract.
        """
        return await quote(self.link, await self.resolve(instrument))

    async def stream_bars(
        self, instrument: Instrument | str, bar_size: str | BarSize = "5s", **kw: Any
    ) -> str:
        """Start a live bar stream; return its id for :meth:`poll_stream`.

        The stream turns stale when its subscription is lost (disconnect, 1100) and is
        re-subscribed after a reconnect or a 1101/1102 restore; a failed re-subscription is
        retried with backoff until the stream is live again.

        Raises:
            NotFound: for an unknown listing.
            BrokerError: if IB refuses or does not answer the subscription.
        """
        return await self.streams.open(await self.resolve(instrument), bar_size, **kw)

    async def poll_stream(self, stream_id: str) -> StreamBatch:
        """Return the completed bars of a stream not returned before, and its status.

        The bars may be empty; ``status.stale`` says whether that means nothing traded or
        the subscription is not delivering (it is being re-established).

        Raises:
            NotFound: for an unknown stream id.
        """
        return self.streams.poll(stream_id)

    async def stream_status(self, stream_id: str) -> StreamStatus:
        """Return a stream's status (``live``/``stale``, last bar, failures, error).

        Raises:
            NotFound: for an unknown stream id.
        """
        return self.streams.status(stream_id)

    async def cancel_stream(self, stream_id: str) -> None:
        """Stop a live bar stream."""
        self.streams.close(stream_id)

    # --- orders and account ----------------------------------------------------------------------

    async def place_order(self, order: Order, *, wait: float = 5.0) -> OrderAck:
        """Send ``order`` to the listing its id and conId name; return IB's first answer.

        Never retried after sending (an order must not be sent twice).

        Raises:
            OrderRejected: if IB rejects the order.
            NotConnected: if there is no connection.
            NotFound: if IB has no such listing.
            Conflict: if the order's conId is another listing's.
        """
        return await self.orders.place(order, wait=wait)

    async def order_status(self, order: OrderKey) -> OrderAck:
        """Return where an order stands, also one placed before a restart.

        ``order`` is its ``order_ref`` (str), or an IB orderId of this connection or a
        permId (int). See :mod:`actors.order_finder` for where the gateway looks; the
        answer's ``source`` says where it found the order.

        Raises:
            NotFound: if neither IB nor the order lookup knows the order.
            Conflict: if several IB orders carry the same ``order_ref``.
        """
        return await self.finder.status(order)

    async def cancel_order(self, order_id: int) -> OrderAck:
        """Ask IB to cancel order ``order_id`` and return its state.

        Raises:
            NotFound: if this session knows no such order.
        """
        return await self.orders.cancel(order_id)

    async def positions(self) -> list[Position]:
        """Return current positions of every account, each named by canonical id."""
        found = await self.link.paced_request("positions", self.ib.reqPositionsAsync)
        return [
            conv.to_position(p, instrument=await self.contracts.instrument_id(p.contract))
            for p in found
        ]

    async def executions(self) -> list[Fill]:
        """Return today's fills whose commission report is in (see :mod:`actors.fills`).

        An execution whose report has not arrived is left out (and counted in the health
        record's ``fills_awaiting_commission``); a later call returns it complete. A fill
        returned again always has the same values.
        """
        return await self.fills.executions()

    async def poll_fills(self) -> list[Fill]:
        """Return the complete fills not returned before: each fill once per session.

        A fill is complete once IB's commission report is in, so its commission is final.
        """
        return self.fills.poll()

    async def account_summary(self) -> dict[str, dict[str, str]]:
        """Return account values as ``{account: {tag: value}}``."""
        values = await self.link.paced_request("account_summary", self.ib.accountSummaryAsync)
        out: dict[str, dict[str, str]] = {}
        for v in values:
            out.setdefault(v.account, {})[v.tag] = v.value
        return out

    async def net_liquidation(self) -> Decimal | None:
        """Return the account's NetLiquidation (summed over the accounts), or None if IB
        reports none.

        Read from the account values IB streams to the connection (``reqAccountUpdates``,
        subscribed at connect, which IB sends again when they change and ibsim after every
        fill), else from the account summary. The summary alone is not enough: ib_async
        subscribes it once and keeps its first answer until IB sends an update.

        Raises:
            NotConnected: while the gateway has no connection (the values would be stale).
        """
        if not self.ib.isConnected():  # the streamed values would be stale
            raise NotConnected("no connection to IB: NetLiquidation unknown")
        found = _net_liquidation(self.ib.accountValues())
        if found is None:
            summary = await self.link.paced_request("account_summary", self.ib.accountSummaryAsync)
            found = _net_liquidation(summary)
        return found

    # --- pushed events ---------------------------------------------------------------------------

    def add_listener(self, listener: GatewayListener) -> None:
        """Push to ``listener`` every complete fill (once each), every order status change
        and every reconnect or 1101/1102 restore, from now on (listeners outlive reconnects)."""
        self._listeners.append(listener)

    def _push_fill(self, fill: Fill) -> None:
        for listener in list(self._listeners):
            listener.on_fill(fill)

    def _on_order_status(self, trade: ib_async.Trade) -> None:
        if self._listeners:
            task = asyncio.ensure_future(self._push_status(trade))
            self._pushes.add(task)
            task.add_done_callback(self._pushes.discard)

    async def _push_status(self, trade: ib_async.Trade) -> None:
        try:
            ack = await self.orders.ack(trade)
        except Exception:  # top of a pushed event: logged; reconcile recovers the status
            log.exception("order status of %s not pushed", trade.order.orderRef)
            return
        for listener in list(self._listeners):
            listener.on_order_status(ack)

    async def _restored(self) -> None:
        for listener in list(self._listeners):
            listener.on_connected()

    def _on_ib_error(self, code: int, message: str) -> None:
        self.observer.error(code)
        if code == CONNECTIVITY_LOST:
            self.streams.lost(f"IB connectivity lost (1100): {message}")

    def _on_connected(self, up: bool) -> None:
        self.observer.connected(up)
        if not up:
            self.streams.lost("the connection to IB dropped")

    def _on_grant(self, event: GrantEvent) -> None:
        if event.waited > 0:
            self.observer.pacing_wait(event.waited)


def _net_liquidation(values: Iterable[Any]) -> Decimal | None:
    """Sum ``NetLiquidation`` over the accounts of ib_async's ``AccountValue`` rows."""
    per_account: dict[str, Decimal] = {}
    for v in values:
        if v.tag == "NetLiquidation" and not getattr(v, "modelCode", "") and v.account != "All":
            try:
                per_account[v.account] = Decimal(v.value)
            except ArithmeticError:  # IB sends '' for an account it has not valued yet
                continue
    return sum(per_account.values(), Decimal(0)) if per_account else None


def _bar_size(value: str | BarSize) -> BarSize:
    return bar_size(value)
