"""What every client connection of one ibsim shares: market, account, order book, pacing.

:class:`SimState` is the state and the order routing; :class:`Peer` is what it needs of a
client connection (``ibsim.session.Session`` is the one implementation). Connections, request
handlers and streams depend on this module and never on the server that listens for them, so
the package's imports run one way: server -> session -> handlers -> streams -> state.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from core.clock import Clock
from ibsim import messages as m
from ibsim import order_messages as om
from ibsim.contracts import ContractWorld
from ibsim.margin import margin_shortfall
from ibsim.market import Market
from ibsim.orders import Broker, Event, FillEvent, Quote, SimOrder
from ibsim.pacing import HistoricalPacer, OpenRequests
from ibsim.protocol import Field

log = logging.getLogger("ibsim")
Fields = list[Field]
LINK_LOST = 1100, "Connectivity between IB and Trader Workstation has been lost."
LINK_RESTORED = (
    1102,
    "Connectivity between IB and Trader Workstation has been restored - data maintained.",
)


class Peer(Protocol):
    """One client connection, as shared state and request handlers see it."""

    sim: SimState
    client_id: int
    version: int
    """The server version negotiated in the handshake: every message is encoded for it."""
    closed: bool
    wants_positions: bool
    account_updates: bool
    multi_req_ids: set[int]

    def send(self, fields: Fields) -> None:
        """Frame and queue one message."""

    def error(self, req_id: int, code: int, text: str) -> None:
        """Send a TWS error message."""

    def start_task(self, kind: str, req_id: int, coro: Coroutine[Any, Any, None]) -> None:
        """Run a streaming subscription until cancelled or the connection ends."""

    def cancel_task(self, kind: str, req_id: int) -> None:
        """Stop a streaming subscription (no-op when it is not running)."""

    def abort(self) -> None:
        """Drop the TCP connection at once (the client sees a reset)."""

    async def close(self) -> None:
        """Stop the connection's streams and close its socket."""


def _check_zone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # unknown, malformed, or a folder of zones
        raise ValueError(
            f"time_zone {name!r} is not an IANA zone name; use e.g. 'UTC' or 'America/New_York'"
        ) from None


class SimState:
    """Market, account and order book shared by every connection of one ibsim.

    Args:
        clock: Simulated time (bars, quotes, pacing windows).
        world: The contracts ibsim knows.
        market: The prices of every contract.
        account: The single managed account id.
        pacing_enabled: Enforce IBKR's pacing and message-rate rules.
        time_zone: The TWS login zone: how ``endDateTime`` without a zone is read and what
            the handshake reports.
        rate_clock: Monotonic wall-clock seconds for the message-rate limit (real seconds,
            whatever the simulation speed; tests inject a fake).
        cash: Starting cash of the account (USD).
        participation: The fraction of each one-minute bar's volume one order may take
            (None: fills are capped only by the broker's chunk size).
    """

    def __init__(
        self,
        *,
        clock: Clock,
        world: ContractWorld,
        market: Market,
        account: str,
        pacing_enabled: bool,
        time_zone: str = "UTC",
        rate_clock: Callable[[], float] = time.monotonic,
        cash: float = 1_000_000.0,
        participation: float | None = None,
    ) -> None:
        _check_zone(time_zone)
        self.clock = clock
        self.world = world
        self.market = market
        self.account = account
        self.pacing_enabled = pacing_enabled
        self.time_zone = time_zone
        self.rate_clock = rate_clock
        self.broker = Broker(account=account, cash=cash, participation=participation)
        self.pacer = HistoricalPacer(clock, enabled=pacing_enabled)
        self.open_requests = OpenRequests(enabled=pacing_enabled)
        self.next_order_id = 1
        self.sessions: dict[int, Peer] = {}
        self.anonymous: set[Peer] = set()
        """Connections still in the handshake (no client id yet)."""
        self.stalled_until = 0.0
        """Event-loop time until which nothing is answered (the stall fault)."""
        self.link_down = False
        """The gateway is not connected to IB (after a nightly restart, until it relinks):
        a client that connects now gets 1100, and 1102 once the link is back."""

    # ---- connections ----------------------------------------------------------------------
    def claim_client_id(self, client_id: int, peer: Peer) -> bool:
        """Register ``peer`` under ``client_id`` unless another live connection holds it."""
        holder = self.sessions.get(client_id)
        if holder is not None and not holder.closed:
            return False
        self.sessions[client_id] = peer
        self.anonymous.discard(peer)
        return True

    def forget(self, peer: Peer) -> None:
        """Drop a closed connection from the registry."""
        self.anonymous.discard(peer)
        if self.sessions.get(peer.client_id) is peer:
            del self.sessions[peer.client_id]

    def note_order_id(self, order_id: int) -> None:
        """Keep nextValidId above every order id a client has used."""
        self.next_order_id = max(self.next_order_id, order_id + 1)

    async def wait_unstalled(self) -> None:
        """Wait while a stall fault is active."""
        loop = asyncio.get_running_loop()
        while (left := self.stalled_until - loop.time()) > 0:
            await asyncio.sleep(left)

    # ---- account --------------------------------------------------------------------------
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

    def position_messages(self) -> list[Fields]:
        """One position message per holding (including closed-out ones, at zero)."""
        return [
            m.position(self.account, self.broker.contracts[k], p.qty, p.avg_cost)
            for k, p in self.broker.positions.items()
        ]

    def send_account_updates(self, peer: Peer) -> None:
        """Send account values and the portfolio to one reqAccountUpdates subscriber."""
        for key, value, cur in self.account_rows():
            peer.send(m.account_value(key, value, cur, self.account))
        prices = self.prices()
        for con_id, pos in self.broker.positions.items():
            c, price = self.broker.contracts[con_id], prices[con_id]
            peer.send(
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
        peer.send(m.account_time(self.clock.now().strftime("%H:%M")))

    # ---- orders ---------------------------------------------------------------------------
    def submit(self, order: SimOrder) -> None:
        """Place ``order`` on the shared book (or modify the order it re-sends) and report
        what happened."""
        now = self.clock.now()
        quote = self.market.quote(order.contract, now)
        peer = self.sessions.get(order.client_id)
        known = self.broker.orders.get((order.client_id, order.order_id))
        if known is not None:
            order.filled = known.filled  # the margin check counts what is still to fill
        shortfall = "" if known is not None and known.is_done else self._margin(order, quote)
        if shortfall:
            if known is None:
                self.broker.refuse(order, now, "insufficient margin")
                if peer is not None:
                    peer.send(om.order_status(order))
            if peer is not None:
                peer.error(order.order_id, 201, f"Order rejected - reason:{shortfall}")
            return
        if known is not None:
            events, code, text = self.broker.modify(order, quote, now)
        else:
            events, reason = self.broker.place(order, quote, now)
            code, text = (201, f"Order rejected - reason:{reason}") if reason else (0, "")
        if code and peer is not None:
            peer.error(order.order_id, code, text)
        self.route(events)

    def _margin(self, order: SimOrder, quote: Quote) -> str:
        prices = self.prices()
        return margin_shortfall(self.broker, order, quote=quote, prices=prices)

    def report_order(self, peer: Peer, order: SimOrder) -> None:
        """Send openOrder then orderStatus for ``order`` to ``peer``."""
        peer.send(om.open_order(order, version=peer.version))
        peer.send(om.order_status(order))

    def route(self, events: list[Event]) -> None:
        """Turn broker events into messages for the owning client and subscribers."""
        for event in events:
            peer = self.sessions.get(event.order.client_id)
            if isinstance(event, FillEvent):
                if peer is not None:
                    peer.send(om.exec_details(-1, event.execution, version=peer.version))
                    peer.send(om.commission_report(event.execution))
                self._broadcast_holdings()
            if peer is not None:
                self.report_order(peer, event.order)

    def match_once(self) -> None:
        """Run one matching pass over the working orders and report what filled."""
        now = self.clock.now()
        self.route(self.broker.match(partial(self.market.quote, now=now), now))

    def _broadcast_holdings(self) -> None:
        for peer in list(self.sessions.values()):
            if peer.wants_positions:
                for fields in self.position_messages():
                    peer.send(fields)
            if peer.account_updates:
                self.send_account_updates(peer)
            for req_id in peer.multi_req_ids:
                for key, value, cur in self.account_rows():
                    peer.send(m.account_update_multi(req_id, self.account, key, value, cur))
