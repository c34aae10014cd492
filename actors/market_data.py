"""Market-data requests of the gateway: history chunks and quote snapshots, paced.

:meth:`actors.gateway_service.GatewayService.historical_bars` splits a range into chunks
(:mod:`actors.history_plan`) and fetches each with :func:`history_chunk`. A chunk IB answers
with "no data" (a night, a weekend, a holiday) is an empty frame; a chunk that gets no answer
in time is an error, never mistaken for "no data". :func:`quote` is one snapshot.
"""

from __future__ import annotations

import asyncio
from typing import Any

import ib_async
import pandas as pd

from actors import ib_convert as conv
from actors.history_plan import Chunk
from actors.ib_link import IBLink
from actors.pacing import Priority, RequestKey
from core.barsize import BarSize
from core.errors import BrokerError
from core.types import Instrument


async def history_chunk(
    link: IBLink,
    chunk: Chunk,
    *,
    contract: ib_async.Contract,
    bar: BarSize,
    what: str,
    rth: bool,
    priority: Priority,
) -> pd.DataFrame:
    """Fetch one planned chunk of history (paced as a historical request).

    Raises:
        PacingViolation: if IB still refuses after the retries (error 162).
        BrokerError: for another IB error or no answer in time.
    """
    key = RequestKey(
        contract=contract.conId or contract.symbol,
        exchange=contract.exchange,
        what_to_show=what,
        bar_size=bar.name,
        end=chunk.end.isoformat(),
        duration=str(chunk.duration),
        use_rth=rth,
    )

    async def fetch() -> list[ib_async.BarData]:
        return await _history(link, contract, chunk=chunk, key=key, bar=bar)

    bars = await link.paced_request("historical", fetch, key=key, priority=priority)
    return conv.bars_to_frame(bars)


async def _history(
    link: IBLink, contract: ib_async.Contract, *, chunk: Chunk, key: RequestKey, bar: BarSize
) -> list[ib_async.BarData]:
    """Send one history request (no pacing here) and tell "no data" from no answer."""
    started = asyncio.get_running_loop().time()
    try:
        bars = await link.ib.reqHistoricalDataAsync(
            contract,
            endDateTime=chunk.end,
            durationStr=str(chunk.duration),
            barSizeSetting=bar.ib,
            whatToShow=key.what_to_show,
            useRTH=key.use_rth,
            formatDate=1 if bar.is_daily else 2,
            timeout=link.request_timeout,
        )
    except ib_async.RequestError as exc:
        if exc.code == 162 and "returned no data" in exc.message:
            return []  # a chunk with no sessions in it (night, weekend, holiday)
        raise
    # ib_async answers a timeout with an empty list; never mistake it for "no data"
    if not bars and asyncio.get_running_loop().time() - started >= link.request_timeout:
        raise BrokerError(0, f"historical request for {key} timed out; retry later")
    return list(bars)


async def quote(link: IBLink, instrument: Instrument) -> dict[str, Any]:
    """Return the qualified listing's current quote: bid, ask, last and their sizes.

    Absent values (IB's NaN, -1 or unset) are None.

    Raises:
        BrokerError: if IB does not answer in time.
    """
    contract = conv.to_contract(instrument)

    async def fetch() -> ib_async.Ticker:
        tickers = await asyncio.wait_for(link.ib.reqTickersAsync(contract), link.request_timeout)
        return tickers[0]

    t = await link.paced_request("snapshot", fetch, priority=Priority.LIVE)
    p = conv.price_or_none
    return {
        "instrument": instrument.id,
        "con_id": instrument.con_id,
        "bid": p(t.bid),
        "ask": p(t.ask),
        "last": p(t.last),
        "bid_size": p(t.bidSize),
        "ask_size": p(t.askSize),
        "last_size": p(t.lastSize),
        "time": t.time,
    }
