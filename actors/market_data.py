"""One historical-data request of the gateway: a planned chunk, paced, as a bar frame.

:meth:`actors.gateway_service.GatewayService.historical_bars` splits a range into chunks
(:mod:`actors.history_plan`) and fetches each with :func:`history_chunk`. A chunk IB answers
with "no data" (a night, a weekend, a holiday) is an empty frame; a chunk that gets no answer
in time is an error, never mistaken for "no data".
"""

from __future__ import annotations

import asyncio

import ib_async
import pandas as pd

from actors import ib_convert as conv
from actors.history_plan import Chunk
from actors.ib_link import IBLink
from actors.pacing import Priority, RequestKey
from core.barsize import BarSize
from core.errors import BrokerError


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
        started = asyncio.get_running_loop().time()
        try:
            bars = await link.ib.reqHistoricalDataAsync(
                contract,
                endDateTime=chunk.end,
                durationStr=str(chunk.duration),
                barSizeSetting=bar.ib,
                whatToShow=what,
                useRTH=rth,
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

    bars = await link.paced_request("historical", fetch, key=key, priority=priority)
    return conv.bars_to_frame(bars)
