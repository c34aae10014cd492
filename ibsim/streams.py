"""Streaming subscriptions: market-data ticks, keepUpToDate bars and real-time bars.

Each runs as a task owned by a connection (a :class:`~ibsim.state.Peer`), paced by the
simulated clock (so at ``--speed 60`` a five-second bar arrives every 83 ms of real time).
"""

from __future__ import annotations

import asyncio

from ibsim import messages as m
from ibsim.contracts import ContractInfo
from ibsim.history import HistoryRequest, aggregate
from ibsim.orders import Quote
from ibsim.state import Peer

TICK_PERIOD_S = 1.0
"""Simulated seconds between market-data tick batches."""
BAR_UPDATE_PERIOD_S = 5.0
"""Simulated seconds between keepUpToDate updates (IBKR sends about every 5 s)."""
MIN_REAL_PERIOD_S = 0.02
"""Never loop faster than this in real time, whatever the speed."""


async def _pause(peer: Peer, sim_seconds: float) -> None:
    clock = peer.sim.clock
    speed = float(getattr(clock, "speed", 1.0))
    await asyncio.sleep(max(MIN_REAL_PERIOD_S, sim_seconds / speed))
    await peer.sim.wait_unstalled()


def send_quote(peer: Peer, req_id: int, c: ContractInfo, *, previous: Quote | None) -> Quote:
    """Send bid/ask/last ticks (and sizes) that changed since ``previous``."""
    q = peer.sim.market.quote(c, peer.sim.clock.now())
    for tick_type, price, size_type, size in (
        (1, q.bid, 0, q.bid_size),
        (2, q.ask, 3, q.ask_size),
        (4, q.last, 5, 100.0),
    ):
        old = None if previous is None else (previous.bid, previous.ask, previous.last)
        if old is None or price != old[(1, 2, 4).index(tick_type)]:
            peer.send(m.tick_price(req_id, tick_type, price, size))
            peer.send(m.tick_size(req_id, size_type, size))
    if previous is None or q.volume != previous.volume:
        peer.send(m.tick_size(req_id, 8, q.volume // 100))
    if previous is None:
        peer.send(
            m.tick_price(
                req_id,
                9,
                peer.sim.market.daily_close_before(c, peer.sim.clock.now().timestamp()),
                0.0,
            )
        )
    return q


async def ticks(peer: Peer, req_id: int, c: ContractInfo) -> None:
    """Stream quote changes every simulated second until cancelled."""
    previous = send_quote(peer, req_id, c, previous=None)
    while True:
        await _pause(peer, TICK_PERIOD_S)
        previous = send_quote(peer, req_id, c, previous=previous)


async def keep_up_to_date(peer: Peer, req_id: int, req: HistoryRequest) -> None:
    """Send the forming bar (``90`` messages) every few simulated seconds until cancelled."""
    market, c = peer.sim.market, req.contract
    while True:
        await _pause(peer, min(BAR_UPDATE_PERIOD_S, req.bar.seconds))
        now = peer.sim.clock.now().timestamp()
        session_no = market.session_index(c, now)
        if session_no < 0:
            continue
        secs = market.seconds(c, session_no, rth=req.rth).upto(now)
        if len(secs.epoch) == 0 or now - secs.epoch[-1] > 2:
            continue  # market closed: IBKR sends nothing until it reopens
        bar_start = (int(now) // req.bar.seconds) * req.bar.seconds
        keep = secs.epoch >= bar_start
        if not keep.any():
            continue
        forming = aggregate(secs.where(keep), req=req)
        if forming:
            peer.send(m.historical_data_update(req_id, forming[-1]))


async def realtime_bars(peer: Peer, req_id: int, c: ContractInfo, *, rth: bool) -> None:
    """Send each finished five-second bar until cancelled."""
    market = peer.sim.market
    last_sent = int(peer.sim.clock.now().timestamp()) // 5 * 5
    while True:
        await _pause(peer, 5.0)
        now = peer.sim.clock.now().timestamp()
        session_no = market.session_index(c, now)
        if session_no < 0:
            continue
        secs = market.seconds(c, session_no, rth=rth).upto(now)
        current = int(now) // 5 * 5
        for start in range(max(last_sent, current - 60), current, 5):
            keep = (secs.epoch >= start) & (secs.epoch < start + 5)
            if keep.any():
                o, h = float(secs.open[keep][0]), float(secs.high[keep].max())
                low, cl = float(secs.low[keep].min()), float(secs.close[keep][-1])
                vol = float(secs.volume[keep].sum())
                bar = m.realtime_bar(req_id, start, (o, h, low, cl), volume=vol, wap=cl)
                peer.send(bar)
        last_sent = current
