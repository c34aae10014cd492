"""ibsim's deterministic market: daily and intraday bars, quotes, and replay of real bars.

Every symbol gets a seeded random walk (drift and volatility derived from the seed and the
symbol name) on its exchange's calendar (exchange_calendars XNYS/XNAS/XASX). Intraday prices
are a per-second Brownian bridge from each session's open to its close, so intraday bars
agree with the daily bar, and the same request always returns the same bars. With a data
directory, ``<SYMBOL>.parquet|.csv`` files replace the synthetic daily series (or frames
given directly as ``replay``, e.g. bars read from a bar store).

Bar quotes (``bar_quotes=True``, for replaying daily bars into a paper deployment, see
``actors.parity``): during a session the quote is that session's daily open with no spread
(bid = ask = last = open) until its close, and outside sessions the last close. A market
order placed while the market is closed therefore fills at the next session's open exactly:
the backtester's ``fill="next_open"`` convention.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from functools import lru_cache
from pathlib import Path

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from ibsim.contracts import ContractInfo
from ibsim.orders import Quote

FIRST_DAY = "2010-01-01"
"""History starts here (more than ten years back)."""
_SECOND_COLUMNS = ("epoch", "open", "high", "low", "close", "volume")


@dataclass(frozen=True, slots=True)
class Seconds:
    """Per-second OHLCV arrays for one session (``epoch`` is each second's start)."""

    epoch: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def where(self, keep: np.ndarray) -> Seconds:
        """Return the seconds selected by the boolean mask ``keep``."""
        return Seconds(*(getattr(self, k)[keep] for k in _SECOND_COLUMNS))

    def upto(self, end_epoch: float) -> Seconds:
        """Return only the seconds that have finished by ``end_epoch``."""
        n = int(np.searchsorted(self.epoch, end_epoch - 1, side="right"))
        return Seconds(*(getattr(self, k)[:n] for k in _SECOND_COLUMNS))


@lru_cache(maxsize=4)
def calendar_schedule(name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (session dates as datetime64[D], open epochs, close epochs) for a calendar."""
    cal = xcals.get_calendar(name, start=FIRST_DAY)
    sched = cal.schedule
    days = sched.index.values.astype("datetime64[D]")
    opens = sched["open"].astype("int64").to_numpy() // 10**9
    closes = sched["close"].astype("int64").to_numpy() // 10**9
    return days, opens, closes


def _params(seed: int, symbol: str) -> tuple[float, float, float, float]:
    """Start price, annual drift, annual volatility and mean daily volume for a symbol."""
    rng = np.random.default_rng([seed, zlib.crc32(symbol.encode())])
    price = float(np.exp(rng.uniform(np.log(10), np.log(400))))
    drift = float(rng.uniform(-0.03, 0.15))
    vol = float(rng.uniform(0.15, 0.5))
    volume = float(np.exp(rng.uniform(np.log(3e5), np.log(3e7))))
    return price, drift, vol, volume


class Market:
    """Deterministic prices for every contract in the world.

    Args:
        seed: Seed of the synthetic series.
        data_dir: Directory of ``<SYMBOL>.parquet|.csv`` daily bars to replay.
        replay: Daily bars to replay by symbol (a UTC-indexed frame, or one with a ``ts`` or
            ``date`` column, as a replay file holds); they win over ``data_dir``'s files.
        bar_quotes: Quote each session at its daily open, with no spread (see the module
            docstring), instead of the per-second path between open and close.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        data_dir: Path | None = None,
        replay: Mapping[str, pd.DataFrame] | None = None,
        bar_quotes: bool = False,
    ) -> None:
        self.seed = seed
        self.data_dir = data_dir
        self.replay = dict(replay or {})
        self.bar_quotes = bar_quotes
        self._daily: dict[int, pd.DataFrame] = {}
        self._seconds = lru_cache(maxsize=64)(self._make_seconds)

    # ---- daily ------------------------------------------------------------------------
    def daily(self, c: ContractInfo) -> pd.DataFrame:
        """Daily bars (index: session date; columns open high low close volume)."""
        frame = self._daily.get(c.con_id)
        if frame is None:
            frame = self._load_replay(c)
            if frame is None:
                frame = self._synthetic_daily(c)
            self._daily[c.con_id] = frame
        return frame

    def _synthetic_daily(self, c: ContractInfo) -> pd.DataFrame:
        days, _, _ = calendar_schedule(c.calendar_name)
        price, drift, vol, volume = _params(self.seed, c.symbol)
        rng = np.random.default_rng([self.seed, c.con_id, 1])
        n = len(days)
        dvol = vol / np.sqrt(252)
        rets = rng.normal(drift / 252 - dvol**2 / 2, dvol, n)
        gaps = rng.normal(0.0, dvol * 0.3, n)
        close = price * np.exp(np.cumsum(rets))
        prev = np.concatenate([[price], close[:-1]])
        opn = prev * np.exp(gaps)
        spread_hi = np.abs(rng.normal(0, dvol * 0.6, n))
        spread_lo = np.abs(rng.normal(0, dvol * 0.6, n))
        high = np.maximum(opn, close) * np.exp(spread_hi)
        low = np.minimum(opn, close) * np.exp(-spread_lo)
        vols = np.round(volume * rng.lognormal(0.0, 0.35, n))
        frame = pd.DataFrame(
            {"open": opn, "high": high, "low": low, "close": close, "volume": vols},
            index=pd.DatetimeIndex(days, name="date"),
        )
        return frame.round({"open": 2, "high": 2, "low": 2, "close": 2})

    def _load_replay(self, c: ContractInfo) -> pd.DataFrame | None:
        given = self.replay.get(c.symbol)
        if given is not None:
            raw = given.rename_axis("ts").reset_index() if _dated(given) else given
            return _normalise_replay(raw, Path(f"<replay {c.symbol}>"))
        if self.data_dir is None:
            return None
        for suffix in (".parquet", ".csv"):
            path = self.data_dir / f"{c.symbol}{suffix}"
            if path.exists():
                raw = pd.read_parquet(path) if suffix == ".parquet" else pd.read_csv(path)
                return _normalise_replay(raw, path)
        return None

    # ---- intraday ---------------------------------------------------------------------
    def session_index(self, c: ContractInfo, epoch: float) -> int:
        """Index of the last session that opened at or before ``epoch`` (-1 if none)."""
        _, opens, _ = calendar_schedule(c.calendar_name)
        return int(np.searchsorted(opens, epoch, side="right")) - 1

    def seconds(self, c: ContractInfo, session: int, *, rth: bool = True) -> Seconds:
        """Per-second bars of one session (regular hours; plus US pre/post market if not rth)."""
        result: Seconds = self._seconds(c, session, rth)
        return result

    def _make_seconds(self, c: ContractInfo, session: int, rth: bool) -> Seconds:
        days, opens, closes = calendar_schedule(c.calendar_name)
        day = pd.Timestamp(days[session])
        daily = self.daily(c)
        row_at = int(daily.index.get_indexer(pd.DatetimeIndex([day]))[0])
        if row_at < 0:  # replay data may not cover this session: fall back to a flat day
            last = float(daily["close"].iloc[daily.index.searchsorted(day) - 1])
            o = cl = last
            vol_day = 1e5
        else:
            row = daily.iloc[row_at]
            o, cl, vol_day = float(row["open"]), float(row["close"]), float(row["volume"])
        _, _, vol, _ = _params(self.seed, c.symbol)
        n = int(closes[session] - opens[session])
        parts = [_bridge(self._rng(c, session, 0), o, cl, n, vol / np.sqrt(252), vol_day)]
        epochs = [opens[session] + np.arange(n)]
        if not rth and not c.is_asx:
            pre_n, post_n = 5 * 3600 + 1800, 4 * 3600
            prev_close = float(daily["close"].iloc[max(row_at - 1, 0)])
            pre = _bridge(self._rng(c, session, 1), prev_close, o, pre_n, vol / 60, vol_day / 50)
            post = _bridge(self._rng(c, session, 2), cl, cl, post_n, vol / 60, vol_day / 50)
            parts = [pre, parts[0], post]
            epochs = [opens[session] - pre_n + np.arange(pre_n), epochs[0]]
            epochs.append(closes[session] + np.arange(post_n))
        cols = [np.concatenate([p[i] for p in parts]) for i in range(5)]
        return Seconds(np.concatenate(epochs), *cols)

    def _rng(self, c: ContractInfo, session: int, part: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, c.con_id, session, part, 7])

    # ---- quotes -----------------------------------------------------------------------
    def quote(self, c: ContractInfo, now: datetime) -> Quote:
        """Bid/ask/last at ``now`` (the last close, marked closed, outside the session)."""
        epoch = now.timestamp()
        if self.bar_quotes:
            return self._bar_quote(c, epoch)
        i = self.session_index(c, epoch)
        _, opens, closes = calendar_schedule(c.calendar_name)
        is_open = i >= 0 and epoch < closes[i]
        if is_open:
            secs = self.seconds(c, i)
            k = max(0, min(len(secs.close) - 1, int(epoch - opens[i])))
            last, volume = float(secs.close[k]), float(secs.volume[: k + 1].sum())
            minute = k - k % 60
            bar_volume = float(secs.volume[minute : minute + 60].sum())
            bar_epoch = int(opens[i]) + minute
            session_close = closes[i]
        else:
            last = float(self.daily_close_before(c, epoch))
            volume = bar_volume = 0.0
            bar_epoch = 0
            session_close = closes[min(i + 1, len(closes) - 1)]
        tick = c.min_tick
        half = max(tick, round(last * 0.0001 / tick) * tick)
        bid = round(round((last - half) / tick) * tick, 4)
        ask = round(round((last + half) / tick) * tick, 4)
        return Quote(
            bid=bid,
            ask=ask,
            last=round(last, 4),
            volume=volume,
            bar_volume=bar_volume,
            bar_epoch=bar_epoch,
            is_open=bool(is_open),
            session_close=datetime.fromtimestamp(int(session_close), UTC),
        )

    def _bar_quote(self, c: ContractInfo, epoch: float) -> Quote:
        """The quote of ``bar_quotes`` mode: the session's open, else the last close."""
        i = self.session_index(c, epoch)
        days, opens, closes = calendar_schedule(c.calendar_name)
        is_open = i >= 0 and epoch < closes[i]
        price, volume, bar_epoch = self.daily_close_before(c, epoch), 0.0, 0
        if is_open:
            daily = self.daily(c)
            row_at = int(daily.index.get_indexer(pd.DatetimeIndex([pd.Timestamp(days[i])]))[0])
            if row_at >= 0:  # a session the bars do not cover quotes the last close
                price = float(daily["open"].iloc[row_at])
                volume = float(daily["volume"].iloc[row_at])
            bar_epoch = int(opens[i])
        session_close = closes[i] if is_open else closes[min(i + 1, len(closes) - 1)]
        return Quote(
            bid=price,
            ask=price,
            last=price,
            volume=volume,
            bar_volume=volume,
            bar_epoch=bar_epoch,
            is_open=bool(is_open),
            session_close=datetime.fromtimestamp(int(session_close), UTC),
        )

    def daily_close_before(self, c: ContractInfo, epoch: float) -> float:
        """Close of the last session that ended at or before ``epoch``."""
        days, _, closes = calendar_schedule(c.calendar_name)
        j = int(np.searchsorted(closes, epoch, side="right")) - 1
        daily = self.daily(c)
        pos = int(daily.index.searchsorted(pd.Timestamp(days[max(j, 0)]), side="right")) - 1
        return float(daily["close"].iloc[max(pos, 0)])

    def session_dates(self, c: ContractInfo, start: date, end: date) -> list[str]:
        """YYYYMMDD strings of sessions between ``start`` and ``end`` inclusive."""
        days, _, _ = calendar_schedule(c.calendar_name)
        lo = int(np.searchsorted(days, np.datetime64(start)))
        hi = int(np.searchsorted(days, np.datetime64(end), side="right"))
        return [str(d).replace("-", "") for d in days[lo:hi]]


def _bridge(
    rng: np.random.Generator, start: float, end: float, n: int, dvol: float, volume: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-second OHLCV of a Brownian bridge from ``start`` to ``end`` over ``n`` seconds."""
    sigma = dvol / np.sqrt(max(n, 1))
    walk = np.cumsum(rng.normal(0.0, sigma, n))
    t = np.arange(1, n + 1) / n
    logp = np.log(start) + t * (np.log(end) - np.log(start)) + walk - t * walk[-1]
    close = np.round(np.exp(logp), 4)
    opn = np.concatenate([[start], close[:-1]])
    wiggle = np.abs(rng.normal(0.0, sigma * 0.5, (2, n)))
    high = np.maximum(opn, close) * (1 + wiggle[0])
    low = np.minimum(opn, close) * (1 - wiggle[1])
    profile = 1.0 + 3.0 * (2 * t - 1) ** 2
    vols = np.floor(volume * profile / profile.sum() * rng.lognormal(0.0, 0.5, n))
    return opn, np.round(high, 4), np.round(low, 4), close, vols


def _dated(frame: pd.DataFrame) -> bool:
    """True when the bars' times are the frame's index (a bar store's frame)."""
    return isinstance(frame.index, pd.DatetimeIndex)


def _normalise_replay(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    """Turn a replay file into daily bars indexed by session date."""
    cols = {c.lower(): c for c in raw.columns}
    key = cols.get("ts") or cols.get("date") or cols.get("time")
    missing = [k for k in ("open", "high", "low", "close", "volume") if k not in cols]
    if key is None or missing:
        raise ValueError(
            f"{path}: needs a ts or date column and open, high, low, close, volume; "
            f"missing {missing or ['ts/date']}"
        )
    stamps = pd.to_datetime(raw[cols[key]], utc=True)
    frame = pd.DataFrame(
        {k: raw[cols[k]].astype("float64").to_numpy() for k in ("open", "high", "low", "close")}
        | {"volume": raw[cols["volume"]].astype("float64").to_numpy()},
        index=pd.DatetimeIndex(stamps.dt.tz_localize(None).dt.normalize(), name="date"),
    )
    if frame.index.has_duplicates:  # intraday file: roll it up to daily bars
        grouped = frame.groupby(level=0)
        frame = pd.DataFrame(
            {
                "open": grouped["open"].first(),
                "high": grouped["high"].max(),
                "low": grouped["low"].min(),
                "close": grouped["close"].last(),
                "volume": grouped["volume"].sum(),
            }
        )
    return frame.sort_index()
