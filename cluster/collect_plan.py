"""Collection planning and per-instrument work, free of Ray so unit tests drive it directly.

A collection run is a list of :class:`Target` (one instrument, one bar size, one time window);
instruments are keyed by their canonical id (``VEA.ASX``), never by bare ticker.
:func:`collect_one` brings one target up to date: it asks the bar store which sessions are
missing, fetches exactly those ranges, and merges them into the store, retrying transient
failures with backoff. Because the store's coverage manifest is the only memory of what was
fetched, a rerun after a crash asks for the remaining gaps only: no gaps, no duplicates.
:mod:`cluster.collect` fans targets out over Ray.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import pandas as pd

from core.barsize import bar_size as parse_bar_size
from core.errors import BrokerError, NotConnected, PacingViolation, ScizorError
from core.instruments import parse
from core.types import Instrument

DONE = "done"
FAILED = "failed"
UP_TO_DATE = "up_to_date"

Fetch = Callable[..., pd.DataFrame]
"""``fetch(instrument, *, bar_size, start, end) -> DataFrame`` in SCIZOR's bar format."""

Span = tuple[datetime, datetime]


class BarSink(Protocol):
    """The part of :class:`storage.bars.BarStore` collection needs."""

    def missing(
        self, instrument: str, bar_size: str, start: Any, end: Any, *, calendar: str = ...
    ) -> list[Any]: ...

    def write(
        self, instrument: str, bar_size: str, frame: pd.DataFrame, *, covered: Any = ...
    ) -> Any: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Bring ``instrument``'s ``bar_size`` bars in ``[start, end)`` up to date."""

    instrument: Instrument
    bar_size: str
    start: datetime
    end: datetime

    @property
    def key(self) -> str:
        """The instrument's canonical id (``VEA.ASX``): the bar store's and catalog's key."""
        return self.instrument.id

    @property
    def calendar(self) -> str:
        """The venue whose sessions decide what is missing (IBKR spelling)."""
        return parse(self.key).venue


@dataclass(frozen=True, slots=True, kw_only=True)
class ItemResult:
    """The outcome of one target: ``done``, ``up_to_date`` or ``failed``."""

    instrument: str
    bar_size: str
    status: str
    bars_written: int = 0
    ranges: int = 0
    attempts: int = 1
    error: str | None = None
    worker_pid: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryPolicy:
    """Bounded attempts with exponential backoff between them."""

    attempts: int = 3
    backoff: float = 1.0
    max_backoff: float = 10.0

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return float(min(self.max_backoff, self.backoff * 2 ** (attempt - 1)))


def floor_day(now: datetime) -> datetime:
    """Return midnight UTC of ``now``'s UTC date (the end of every default window).

    Sessions of today are still trading, so default windows stop before today: a partial
    daily bar recorded as covered would never be fetched again.
    """
    if now.utcoffset() is None:
        raise ValueError("now must be timezone-aware (UTC)")
    day = now.astimezone(UTC)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def years_before(moment: datetime, years: int) -> datetime:
    """Return ``moment`` shifted back ``years`` calendar years (29 Feb becomes 28 Feb)."""
    try:
        return moment.replace(year=moment.year - years)
    except ValueError:
        return moment.replace(year=moment.year - years, day=28)


def window(
    *,
    now: datetime,
    years: int,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Span:
    """Return the ``[start, end)`` window a collection covers.

    Args:
        now: The current time (tz-aware).
        years: Look-back when ``start`` is not given.
        start: Inclusive start; default ``years`` before ``end``.
        end: Exclusive end; default midnight UTC today.

    Raises:
        ParameterError: if the window is empty or a bound is naive.
    """
    from core.errors import ParameterError

    if years <= 0 and start is None:
        raise ParameterError(f"years must be positive; got {years}")
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.utcoffset() is None:
            raise ParameterError(f"{name} must be timezone-aware; got {value!r}")
    stop = end or floor_day(now)
    begin = start or years_before(stop, years)
    if begin >= stop:
        raise ParameterError(f"start {begin:%Y-%m-%d} must be before end {stop:%Y-%m-%d}")
    return begin, stop


def targets(
    instruments: Iterable[Instrument], *, bar_size: str, start: datetime, end: datetime
) -> list[Target]:
    """Return one :class:`Target` per instrument (bar size checked once)."""
    size = parse_bar_size(bar_size).name
    return [Target(instrument=i, bar_size=size, start=start, end=end) for i in instruments]


def batches(items: Sequence[Any], *, workers: int, lo: int = 8, hi: int = 20) -> list[list[Any]]:
    """Split ``items`` into batches of about ``lo``..``hi`` items.

    Aims for a few batches per worker so the last stragglers are short, but never below
    ``lo`` items per batch (task overhead) nor above ``hi`` (progress granularity).
    """
    if not items:
        return []
    per = math.ceil(len(items) / max(1, 3 * workers))
    size = max(1, min(hi, max(lo, per)))
    count = max(math.ceil(len(items) / hi), len(items) // size, 1)
    # Spread evenly: sizes differ by at most one.
    return [list(items[i::count]) for i in range(count)]


PERMANENT_CODES = frozenset({200, 321, 354})
"""IBKR error codes another attempt cannot fix: unknown contract, bad request, no permission."""


def is_transient(exc: BaseException) -> bool:
    """True for failures worth another attempt (disconnects, pacing, timeouts)."""
    if isinstance(exc, NotConnected | PacingViolation | TimeoutError | ConnectionError):
        return True
    return isinstance(exc, BrokerError) and exc.code not in PERMANENT_CODES


def collect_one(
    target: Target,
    *,
    store: BarSink,
    fetch: Fetch,
    retry: RetryPolicy | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> ItemResult:
    """Fetch the ranges of ``target`` the store lacks and merge them in.

    Every range is written as soon as it arrives, with ``covered=`` the range asked for, so
    an interrupted item resumes from its first unfetched range. Transient failures are
    retried per :class:`RetryPolicy`; the item then fails with the last error. Nothing
    raises: the outcome, including the error text, is in the returned :class:`ItemResult`.
    """
    policy = retry or RetryPolicy()
    written, ranges = 0, 0
    for attempt in range(1, policy.attempts + 1):
        try:
            gaps = store.missing(
                target.key, target.bar_size, target.start, target.end, calendar=target.calendar
            )
            for lo, hi in per_session(gaps, bar_size=target.bar_size, calendar=target.calendar):
                frame = fetch(target.instrument, bar_size=target.bar_size, start=lo, end=hi)
                frame = clip(frame, lo, hi)
                result = store.write(target.key, target.bar_size, frame, covered=(lo, hi))
                written += int(getattr(result, "rows_new", 0))
                ranges += 1
            status = DONE if ranges else UP_TO_DATE
            return _result(target, status, written=written, ranges=ranges, attempts=attempt)
        except (ScizorError, TimeoutError, ConnectionError) as exc:
            if attempt == policy.attempts or not is_transient(exc):
                return _failed(target, exc, written=written, ranges=ranges, attempts=attempt)
            sleep(policy.delay(attempt))
    raise AssertionError("unreachable")  # pragma: no cover


def per_session(gaps: Iterable[Any], *, bar_size: str, calendar: str) -> list[Span]:
    """Split intraday gaps into one range per trading session (open to close).

    A gap of consecutive missing sessions spans the nights between them; asking IB for
    those hours returns nothing but still counts against pacing, so each session is
    requested on its own. Daily gaps are returned as they are.
    """
    spans = [
        (pd.Timestamp(lo).to_pydatetime(), pd.Timestamp(hi).to_pydatetime()) for lo, hi in gaps
    ]
    if parse_bar_size(bar_size).is_daily or not spans:
        return spans
    from storage.calendars import sessions

    out: list[Span] = []
    for lo, hi in spans:
        days = sessions(calendar, pd.Timestamp(lo), pd.Timestamp(hi) + pd.Timedelta(days=1))
        for open_ns, close_ns in zip(days.opens.tolist(), days.closes.tolist(), strict=True):
            a = max(lo, pd.Timestamp(open_ns, tz="UTC").to_pydatetime())
            b = min(hi, pd.Timestamp(close_ns, tz="UTC").to_pydatetime())
            if a < b:
                out.append((a, b))
    return out


def clip(frame: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Drop bars outside ``[start, end)`` (a gateway may round a request outwards)."""
    if frame.empty:
        return frame
    index = (
        frame.index if isinstance(frame.index, pd.DatetimeIndex) else pd.DatetimeIndex(frame["ts"])
    )
    keep = (index >= pd.Timestamp(start)) & (index < pd.Timestamp(end))
    return frame if keep.all() else frame[keep]


def _result(target: Target, status: str, *, written: int, ranges: int, attempts: int) -> ItemResult:
    return ItemResult(
        instrument=target.key,
        bar_size=target.bar_size,
        status=status,
        bars_written=written,
        ranges=ranges,
        attempts=attempts,
    )


def _failed(
    target: Target, exc: BaseException, *, written: int, ranges: int, attempts: int
) -> ItemResult:
    return ItemResult(
        instrument=target.key,
        bar_size=target.bar_size,
        status=FAILED,
        bars_written=written,
        ranges=ranges,
        attempts=attempts,
        error=f"{type(exc).__name__}: {exc}",
    )


@dataclass(slots=True)
class Tally:
    """Running totals of a collection (what the progress bar and the summary show)."""

    total: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    bars_written: int = 0
    failures: dict[str, str] = field(default_factory=dict)
    requeued: int = 0
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    def add(self, result: ItemResult) -> None:
        """Count one finished item."""
        self.counts[result.status] = self.counts.get(result.status, 0) + 1
        self.bars_written += result.bars_written
        if result.status == FAILED:
            self.failures[f"{result.instrument} {result.bar_size}"] = (
                result.error or "unknown error"
            )

    @property
    def finished_items(self) -> int:
        """Items that reached a final status."""
        return sum(self.counts.values())

    @property
    def failed(self) -> int:
        """Items that failed."""
        return self.counts.get(FAILED, 0)

    def duration(self) -> timedelta:
        """Time from start to finish (or to now while running)."""
        end = self.finished if self.finished is not None else time.monotonic()
        return timedelta(seconds=end - self.started)

    def rows(self) -> list[tuple[str, str]]:
        """The summary as ``(label, value)`` rows: per-status counts, bars, duration."""
        rows = [(status, str(self.counts.get(status, 0))) for status in (DONE, UP_TO_DATE, FAILED)]
        rows += [("total", str(self.total)), ("bars written", f"{self.bars_written:,}")]
        rows.append(("duration", f"{self.duration().total_seconds():.1f} s"))
        return rows
