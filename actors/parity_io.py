"""What the parity replay's strategy runner reads and is fed: stored bars, released one
session at a time by the replay (see :mod:`actors.parity`).

:class:`ReplayHistory` is the runner's throwaway bar history, in memory;
:class:`ReplayFeed` is its market feed: the bars the replay releases, and the accounts the
replay's gateway reports.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from actors.runner_io import MarketFeed
from actors.stream_status import StreamBatch, StreamState, StreamStatus
from core.errors import ValidationError
from strategies.base import COLUMNS


class ReplayHistory:
    """A :class:`actors.runner_io.HistorySource` in memory: the replay's throwaway bar store.

    The runner writes every streamed bar to its history (so a restart reloads it); a
    throwaway store need not be on disk, and a Parquet merge per bar would be most of the
    replay's time.

    Args:
        bars: per instrument, the bars it holds at first (the warm-up).
    """

    def __init__(self, bars: Mapping[str, pd.DataFrame]) -> None:
        self._bars = {k: v.sort_index() for k, v in bars.items()}

    def read(
        self, instrument: str, bar_size: str, start: Any = None, end: Any = None
    ) -> pd.DataFrame:
        """The bars with ``start <= ts < end`` (an empty frame when none)."""
        frame = self._bars.get(instrument)
        if frame is None:
            return pd.DataFrame(
                columns=list(COLUMNS), index=pd.DatetimeIndex([], tz="UTC"), dtype="float64"
            )
        keep = np.ones(len(frame), dtype=bool)
        if start is not None:
            keep &= frame.index >= _utc(start)
        if end is not None:
            keep &= frame.index < _utc(end)
        return frame[keep]

    def write(self, instrument: str, bar_size: str, frame: pd.DataFrame) -> int:
        """Merge bars in (newer ones win on equal times); return how many were given."""
        old = self._bars.get(instrument)
        new = frame[list(COLUMNS)]
        merged = new if old is None else pd.concat([old[~old.index.isin(new.index)], new])
        self._bars[instrument] = merged.sort_index()
        return len(frame)


class ReplayFeed:
    """A :class:`actors.runner_io.MarketFeed` that hands out stored bars when released.

    Args:
        bars: per instrument, the bars to replay (UTC index).
        accounts: the feed that answers the broker's accounts (the gateway's).
    """

    def __init__(self, bars: Mapping[str, pd.DataFrame], *, accounts: MarketFeed) -> None:
        self._bars = dict(bars)
        self._accounts = accounts
        self._ready: dict[str, list[pd.DataFrame]] = {k: [] for k in bars}
        self._last: dict[str, datetime | None] = dict.fromkeys(bars)

    def release(self, when: pd.Timestamp) -> None:
        """Make every instrument's bar at ``when`` (if it has one) the next poll's."""
        for instrument, frame in self._bars.items():
            rows = frame[frame.index == when]
            if len(rows):
                self._ready[instrument].append(rows)
                self._last[instrument] = when.to_pydatetime()

    async def open_stream(self, instrument: str, bar_size: str) -> str:
        """The stream of ``instrument`` (its id is the instrument)."""
        if instrument not in self._bars:
            raise ValidationError(f"no bars to replay for {instrument}", field="instruments")
        return instrument

    async def poll_stream(self, stream_id: str) -> StreamBatch:
        """The bars released since the last poll."""
        ready, self._ready[stream_id] = self._ready[stream_id], []
        frame = pd.concat(ready) if ready else self._bars[stream_id].iloc[0:0]
        status = StreamStatus(
            stream_id=stream_id, instrument=stream_id, con_id=None, bar_size="1d",
            state=StreamState.LIVE, last_bar_at=self._last[stream_id],
            updated_at=self._last[stream_id], subscriptions=1, failures=0, error="",
            next_retry_at=None,
        )  # fmt: skip
        return StreamBatch(bars=frame, status=status)

    async def close_stream(self, stream_id: str) -> None:
        """Nothing to cancel."""

    async def accounts(self) -> list[str]:
        """The broker's accounts (asked of the gateway)."""
        return await self._accounts.accounts()


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
