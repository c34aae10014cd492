"""Handlers of the data requests: contract details, historical data, market data, bars.

Each handler takes the connection (:class:`~ibsim.state.Peer`) and the request's fields as
the client sent them, and answers through ``peer.send`` in the layout of ``peer.version``.
The requests' own layouts do not change inside ibsim's version range (157..178) in the
fields ibsim reads; newer fields at the end (issuerId, manualOrderCancelTime) are ignored.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from ibsim import messages as m
from ibsim import streams
from ibsim.contracts import ContractInfo, trading_hours
from ibsim.history import HistoryError, fetch_bars, parse_request
from ibsim.pacing import OPEN_LIMIT_TEXT, PACING_TEXT
from ibsim.state import Peer

log = logging.getLogger("ibsim.session")
Handler = Callable[[Peer, list[str]], Awaitable[None] | None]
NO_DATA_TEXT = "Historical Market Data Service error message:HMDS query returned no data"


def resolve(peer: Peer, fields: list[str], at: int) -> list[ContractInfo]:
    """Match the C12 contract group starting at ``fields[at]`` against the world."""
    con_id, symbol, sec_type = fields[at], fields[at + 1], fields[at + 2]
    exchange, primary, currency = fields[at + 7], fields[at + 8], fields[at + 9]
    return peer.sim.world.match(
        con_id=int(con_id or 0),
        symbol=symbol,
        sec_type=sec_type,
        exchange=exchange,
        primary_exchange=primary,
        currency=currency,
    )


def resolve_one(peer: Peer, req_id: int, fields: list[str], at: int) -> ContractInfo | None:
    """Resolve a contract for a data or order request, or send error 200 and return None."""
    found = resolve(peer, fields, at)
    if len(found) == 1:
        return found[0]
    what = "is ambiguous" if found else "could not be found"
    peer.error(
        req_id,
        200,
        f"No security definition has been found for the request (contract {fields[at + 1]} {what})",
    )
    return None


def req_contract_details(peer: Peer, fields: list[str]) -> None:
    """``9,8,reqId,C12,...`` -> contractDetails per match, then contractDetailsEnd."""
    req_id = int(fields[2])
    found = resolve(peer, fields, 3)
    if not found:
        peer.error(req_id, 200, "No security definition has been found for the request")
        return
    exchange = fields[10] or "SMART"
    today = peer.sim.clock.now().date()
    for c in found:
        dates = peer.sim.market.session_dates(c, today, today.replace(year=today.year + 1))
        week = dates[:7]
        peer.send(
            m.contract_details(
                req_id,
                c,
                exchange=exchange,
                trading=trading_hours(c, dates=week, liquid=False),
                liquid=trading_hours(c, dates=week, liquid=True),
                version=peer.version,
            )
        )
    peer.send(m.contract_details_end(req_id))


async def req_historical(peer: Peer, fields: list[str]) -> None:
    """``20,reqId,C12,includeExpired,end,barSize,duration,useRTH,whatToShow,formatDate,...``."""
    req_id = int(fields[1])
    c = resolve_one(peer, req_id, fields, 2)
    if c is None:
        return
    names = ("end", "barSize", "duration", "useRTH", "whatToShow", "formatDate")
    raw = dict(zip(names, fields[15:21], strict=True))
    raw["keepUpToDate"] = fields[21] if len(fields) > 21 else "0"
    sim = peer.sim
    try:
        req = parse_request(c, fields=raw, now=sim.clock.now(), login_zone=sim.time_zone)
    except HistoryError as exc:
        peer.error(req_id, exc.code, exc.text)
        return
    reason = sim.pacer.violation(
        identical_key=req.pacing_key,
        contract_key=(c.con_id, req.what),
        hard_paced=req.bar.hard_paced,
        weight=2 if req.what == "BID_ASK" else 1,
    )
    if reason:
        log.info("client %s req %s: pacing violation (%s)", peer.client_id, req_id, reason)
        peer.error(req_id, 162, PACING_TEXT)
        return
    if req.keep_up_to_date and not sim.open_requests.open((peer, req_id)):
        peer.error(req_id, 162, OPEN_LIMIT_TEXT)
        return
    start, end, bars = await asyncio.to_thread(fetch_bars, sim.market, req)
    if not bars and not req.keep_up_to_date:
        peer.error(req_id, 162, NO_DATA_TEXT)
        return
    peer.send(m.historical_data(req_id, start, end, bars))
    if req.keep_up_to_date:
        peer.start_task("hist", req_id, streams.keep_up_to_date(peer, req_id, req))


def req_mkt_data(peer: Peer, fields: list[str]) -> None:
    """``1,11,reqId,C12,dnc,genericTicks,snapshot,...``: a tick stream or one snapshot."""
    req_id = int(fields[2])
    c = resolve_one(peer, req_id, fields, 3)
    if c is None:
        return
    snapshot = fields[17] == "1" if len(fields) > 17 else False
    peer.send(m.market_data_type(req_id, 1))
    if snapshot:
        streams.send_quote(peer, req_id, c, previous=None)
        peer.send(m.tick_snapshot_end(req_id))
    else:
        peer.start_task("mkt", req_id, streams.ticks(peer, req_id, c))


def req_realtime_bars(peer: Peer, fields: list[str]) -> None:
    """``50,3,reqId,C12,barSize,whatToShow,useRTH,...``: five-second bars until cancelled."""
    req_id = int(fields[2])
    c = resolve_one(peer, req_id, fields, 3)
    if c is not None:
        rth = fields[17] == "1" if len(fields) > 17 else False
        peer.start_task("rtb", req_id, streams.realtime_bars(peer, req_id, c, rth=rth))


def cancel_stream(kind: str, at: int) -> Handler:
    """A handler cancelling the ``kind`` stream whose reqId is ``fields[at]``."""

    def cancel(peer: Peer, fields: list[str]) -> None:
        peer.cancel_task(kind, int(fields[at]))
        peer.sim.open_requests.close((peer, int(fields[at])))

    return cancel


DATA_HANDLERS: dict[int, Handler] = {
    1: req_mkt_data,
    2: cancel_stream("mkt", 2),
    9: req_contract_details,
    20: req_historical,
    25: cancel_stream("hist", 2),
    50: req_realtime_bars,
    51: cancel_stream("rtb", 2),
}
"""Data requests by inbound message id."""
