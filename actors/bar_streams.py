"""Live bar streams of the gateway: keep-up-to-date history subscriptions that survive
reconnects, and say so when they do not.

A stream is a ``reqHistoricalData(keepUpToDate=True)`` subscription. Its completed bars (all
but the one still forming) are handed out once each by :meth:`BarStreams.poll`, beside the
stream's :class:`actors.stream_status.StreamStatus`. A stream turns ``stale`` when its
subscription is lost (disconnect, 1100); after a reconnect or a 1101/1102 restore the gateway
calls :meth:`BarStreams.resubscribe`, and a stream whose re-subscription fails stays stale
and is retried with capped exponential backoff until it is live again. Bars are keyed by
time, so nothing is handed out twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import ib_async
import pandas as pd

from actors import ib_convert as conv
from actors.gateway_health import GatewayObserver
from actors.history_plan import largest_duration
from actors.ib_connection import Backoff
from actors.ib_link import IBLink
from actors.pacing import Priority, RequestKey
from actors.stream_status import StreamBatch, StreamState, StreamStatus
from core.barsize import BarSize, bar_size
from core.errors import BrokerError, NotFound, ScizorError
from core.ibrules import Duration
from core.types import Instrument

log = logging.getLogger(__name__)

RETRY_BACKOFF = Backoff(initial=1.0, factor=2.0, cap=60.0, jitter=0.2)
"""Waits between re-subscription attempts of a stale stream."""


def stream_duration(bar: BarSize) -> Duration:
    """Return the history a new stream starts with (the last session, or what IB allows)."""
    if bar.is_daily:
        return Duration(count=30, unit="D")
    if bar.seconds >= 60:
        return Duration(count=1, unit="D")
    return largest_duration(bar)


@dataclass(slots=True, kw_only=True)
class _Stream:
    stream_id: str
    instrument: Instrument
    bar: BarSize
    what_to_show: str
    use_rth: bool
    bars: ib_async.BarDataList | None = None
    last_ts: pd.Timestamp | None = None
    subscriptions: int = 0
    pending: list[pd.DataFrame] = field(default_factory=list)
    state: StreamState = StreamState.LIVE
    error: str = ""
    failures: int = 0
    updated_at: datetime | None = None
    next_retry_at: datetime | None = None
    retry: asyncio.Task[None] | None = None
    on_update: Callable[..., None] | None = None


class BarStreams:
    """The live bar streams of one gateway connection.

    Args:
        link: The paced request path.
        observer: Receives the count of streams per state and each failed attempt.
        backoff: Waits between re-subscription attempts of a stale stream.
        seed: Seed of the backoff jitter.
    """

    def __init__(
        self,
        link: IBLink,
        *,
        observer: GatewayObserver,
        backoff: Backoff = RETRY_BACKOFF,
        seed: int | None = None,
    ) -> None:
        self._link = link
        self._observer = observer
        self._backoff = backoff
        self._rng = random.Random(seed)
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
        """Subscribe to ``bar`` bars of the qualified listing ``instrument``; return its id.

        Raises:
            BrokerError: if IB refuses or does not answer (nothing is opened).
        """
        stream = _Stream(
            stream_id=uuid.uuid4().hex[:12],
            instrument=instrument,
            bar=bar_size(bar),
            what_to_show=what_to_show,
            use_rth=use_rth,
        )
        await self._subscribe(stream)
        self._streams[stream.stream_id] = stream
        self._report()
        return stream.stream_id

    def poll(self, stream_id: str) -> StreamBatch:
        """Return completed bars of the stream not returned before, and its status.

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
        return StreamBatch(bars=merged, status=_status(stream))

    def close(self, stream_id: str) -> None:
        """Cancel the stream's subscription (and retries) and forget it.

        Raises:
            NotFound: for an unknown stream id.
        """
        stream = self._get(stream_id)
        if stream.retry is not None:
            stream.retry.cancel()
        self._cancel(stream)
        del self._streams[stream_id]
        self._report()

    def status(self, stream_id: str) -> StreamStatus:
        """Return the stream's status.

        Raises:
            NotFound: for an unknown stream id.
        """
        return _status(self._get(stream_id))

    def statuses(self) -> list[StreamStatus]:
        """Return the status of every stream."""
        return [_status(s) for s in self._streams.values()]

    def lost(self, reason: str) -> None:
        """Mark every stream stale: the subscriptions stopped delivering (``reason``)."""
        for stream in self._streams.values():
            if stream.state == StreamState.LIVE:
                stream.state, stream.error = StreamState.STALE, reason
        self._report()

    async def resubscribe(self) -> None:
        """Re-issue every subscription (after a reconnect or a 1101/1102 restore).

        A stream whose re-subscription fails stays stale and is retried with backoff.
        """
        for stream in list(self._streams.values()):
            if stream.retry is not None:
                stream.retry.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await stream.retry
            if not await self._attempt(stream):
                self._retry_later(stream)
        self._report()

    async def _attempt(self, stream: _Stream) -> bool:
        """Re-subscribe once; True when the stream is live again."""
        if stream.bars is not None and len(stream.bars) > 1:
            # keep the bars already completed so a poll after the restore sees them
            stream.pending.append(conv.bars_to_frame(list(stream.bars)[:-1]))
        self._cancel(stream)
        try:
            await self._subscribe(stream)
        except ScizorError as exc:
            stream.state, stream.error = StreamState.STALE, f"re-subscribing failed: {exc}"
            stream.failures += 1
            self._observer.stream_failure()
            log.warning("stream %s (%s): %s", stream.stream_id, stream.instrument.id, exc)
            return False
        stream.state, stream.error, stream.next_retry_at = StreamState.LIVE, "", None
        return True

    def _retry_later(self, stream: _Stream) -> None:
        task = asyncio.ensure_future(self._retry_loop(stream))
        stream.retry = task
        task.add_done_callback(lambda t: self._retry_done(stream, t))

    async def _retry_loop(self, stream: _Stream) -> None:
        attempt = 0
        while stream.stream_id in self._streams:
            delay = self._backoff.delay(attempt, self._rng)
            stream.next_retry_at = self._link.clock.now() + timedelta(seconds=delay)
            await self._link.clock.sleep(delay)
            if await self._attempt(stream):
                log.info("stream %s is live again", stream.stream_id)
                break
            attempt += 1
            self._report()
        self._report()

    def _retry_done(self, stream: _Stream, task: asyncio.Task[None]) -> None:
        if stream.retry is task:
            stream.retry = None
        if not task.cancelled() and task.exception() is not None:
            stream.error = f"re-subscription stopped: {task.exception()!r}"
            stream.next_retry_at = None
            log.error("retrying stream %s stopped", stream.stream_id, exc_info=task.exception())

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
            started = asyncio.get_running_loop().time()
            bars = await link.ib.reqHistoricalDataAsync(
                contract,
                endDateTime="",
                durationStr=str(duration),
                barSizeSetting=stream.bar.ib,
                whatToShow=stream.what_to_show,
                useRTH=stream.use_rth,
                formatDate=1 if stream.bar.is_daily else 2,
                keepUpToDate=True,
                timeout=link.request_timeout,
            )
            # on a timeout ib_async cancels the subscription and answers an empty list
            if not bars and asyncio.get_running_loop().time() - started >= link.request_timeout:
                raise BrokerError(0, f"stream of {stream.instrument.id} got no answer in time")
            return bars

        bars = await link.paced_request("stream", send, key=key, priority=Priority.LIVE)

        def on_update(*_: object) -> None:
            stream.updated_at = link.clock.now()

        bars.updateEvent += on_update
        stream.bars, stream.on_update = bars, on_update
        stream.subscriptions += 1
        stream.updated_at = link.clock.now()

    def _cancel(self, stream: _Stream) -> None:
        bars, stream.bars = stream.bars, None
        if bars is None:
            return
        if stream.on_update is not None:
            bars.updateEvent -= stream.on_update
        if not self._link.ib.isConnected():
            return
        # the subscription may have died with the old socket
        with contextlib.suppress(ConnectionError, KeyError):
            self._link.ib.cancelHistoricalData(bars)

    def _report(self) -> None:
        states = [s.state for s in self._streams.values()]
        self._observer.streams(
            live=states.count(StreamState.LIVE), stale=states.count(StreamState.STALE)
        )

    def _get(self, stream_id: str) -> _Stream:
        try:
            return self._streams[stream_id]
        except KeyError:
            raise NotFound(f"no bar stream {stream_id!r}; open one with stream_bars()") from None


def _status(stream: _Stream) -> StreamStatus:
    last = stream.last_ts
    completed = list(stream.bars)[:-1] if stream.bars is not None else []
    newest = [conv.bars_to_frame(completed[-1:]).index[-1]] if completed else []
    newest += [f.index[-1] for f in stream.pending if len(f)]
    if newest:
        last = max([last, *newest]) if last is not None else max(newest)
    return StreamStatus(
        stream_id=stream.stream_id,
        instrument=stream.instrument.id,
        con_id=stream.instrument.con_id,
        bar_size=stream.bar.name,
        state=stream.state,
        last_bar_at=last.to_pydatetime() if last is not None else None,
        updated_at=stream.updated_at,
        subscriptions=stream.subscriptions,
        failures=stream.failures,
        error=stream.error,
        next_retry_at=stream.next_retry_at,
    )
