"""Live bar streams of the gateway: keep-up-to-date history subscriptions that survive
reconnects.

A stream is a ``reqHistoricalData(keepUpToDate=True)`` subscription. Its completed bars (all
but the one still forming) are handed out once each by :meth:`BarStreams.poll`. After a
reconnect or a 1101/1102 restore the gateway calls :meth:`BarStreams.resubscribe`, which
re-issues every subscription; bars are keyed by time, so nothing is handed out twice.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from dataclasses import dataclass, field
from typing import Any

import ib_async
import pandas as pd

from actors import ib_convert as conv
from actors.history_plan import largest_duration
from actors.ib_link import IBLink
from actors.pacing import Priority, RequestKey
from core.barsize import BarSize, bar_size
from core.errors import NotFound
from core.ibrules import Duration
from core.types import Instrument

log = logging.getLogger(__name__)


def stream_duration(bar: BarSize) -> Duration:
    """Return the history a new stream starts with (the last session, or what IB allows)."""
    if bar.is_daily:
        return Duration(count=30, unit="D")
    if bar.seconds >= 60:
        return Duration(count=1, unit="D")
    return largest_duration(bar)


@dataclass(slots=True, kw_only=True)
class _Stream:
    instrument: Instrument
    bar: BarSize
    what_to_show: str
    use_rth: bool
    bars: ib_async.BarDataList | None = None
    last_ts: pd.Timestamp | None = None
    subscriptions: int = 0
    pending: list[pd.DataFrame] = field(default_factory=list)


class BarStreams:
    """The live bar streams of one gateway connection."""

    def __init__(self, link: IBLink) -> None:
        self._link = link
        self._streams: dict[str, _Stream] = {}

    def __len__(self) -> int:
        return len(self._streams)

    async def open(
        self,
        instrument: Instrument,
        bar: str | BarSize,
        *,
        what_to_show: str = "TRADES",
        use_rth: bool = False,
    ) -> str:
        """Subscribe to ``bar`` bars of ``instrument``; return the stream id."""
        stream = _Stream(
            instrument=instrument, bar=bar_size(bar), what_to_show=what_to_show, use_rth=use_rth
        )
        stream_id = uuid.uuid4().hex[:12]
        await self._subscribe(stream)
        self._streams[stream_id] = stream
        return stream_id

    def poll(self, stream_id: str) -> pd.DataFrame:
        """Return completed bars of the stream not returned before.

        Raises:
            NotFound: for an unknown stream id.
        """
        stream = self._get(stream_id)
        frames = stream.pending
        stream.pending = []
        if stream.bars is not None and len(stream.bars) > 1:
            frames.append(conv.bars_to_frame(list(stream.bars)[:-1]))
        merged = conv.merge_bars(frames)
        if stream.last_ts is not None:
            merged = merged[merged.index > stream.last_ts]
        if len(merged):
            stream.last_ts = merged.index[-1]
        return merged

    def close(self, stream_id: str) -> None:
        """Cancel the stream's subscription and forget it.

        Raises:
            NotFound: for an unknown stream id.
        """
        stream = self._get(stream_id)
        self._cancel(stream)
        del self._streams[stream_id]

    def info(self, stream_id: str) -> dict[str, Any]:
        """Return what the stream is and how often it has been (re)subscribed."""
        s = self._get(stream_id)
        return {
            "instrument": s.instrument.id,
            "bar_size": s.bar.name,
            "subscriptions": s.subscriptions,
            "last_ts": s.last_ts,
        }

    async def resubscribe(self) -> None:
        """Re-issue every subscription (after a reconnect or a 1101/1102 restore)."""
        for stream_id, stream in list(self._streams.items()):
            if stream.bars is not None and len(stream.bars) > 1:
                # keep the bars already completed so a poll after the restore sees them
                stream.pending.append(conv.bars_to_frame(list(stream.bars)[:-1]))
            self._cancel(stream)
            try:
                await self._subscribe(stream)
            except Exception:  # keep restoring the others; this one is retried next restore
                log.exception("re-subscribing stream %s failed", stream_id)

    async def _subscribe(self, stream: _Stream) -> None:
        link = self._link
        contract = conv.to_contract(stream.instrument)
        duration = stream_duration(stream.bar)
        key = RequestKey(
            contract=contract.conId or contract.symbol,
            exchange=contract.exchange,
            what_to_show=stream.what_to_show,
            bar_size=stream.bar.name,
            duration=str(duration),
            use_rth=stream.use_rth,
        )

        async def send() -> ib_async.BarDataList:
            return await link.ib.reqHistoricalDataAsync(
                contract,
                endDateTime="",
                durationStr=str(duration),
                barSizeSetting=stream.bar.ib,
                whatToShow=stream.what_to_show,
                useRTH=stream.use_rth,
                formatDate=1 if stream.bar.is_daily else 2,
                keepUpToDate=True,
            )

        stream.bars = await link.paced_request("stream", send, key=key, priority=Priority.LIVE)
        stream.subscriptions += 1

    def _cancel(self, stream: _Stream) -> None:
        bars, stream.bars = stream.bars, None
        if bars is None or not self._link.ib.isConnected():
            return
        # the subscription may have died with the old socket
        with contextlib.suppress(ConnectionError, KeyError):
            self._link.ib.cancelHistoricalData(bars)

    def _get(self, stream_id: str) -> _Stream:
        try:
            return self._streams[stream_id]
        except KeyError:
            raise NotFound(f"no bar stream {stream_id!r}; open one with stream_bars()") from None
