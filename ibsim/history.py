"""Historical bars as IBKR serves them: validation, time ranges, aggregation and formats."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from core.barsize import BarSize, from_ib
from core.errors import ValidationError
from core.ibrules import Duration, duration_allowed, parse_duration
from ibsim.contracts import ContractInfo
from ibsim.market import Market, Seconds, calendar_schedule
from ibsim.messages import HistBar

WHAT_TO_SHOW = frozenset({"TRADES", "MIDPOINT", "BID", "ASK", "ADJUSTED_LAST", "BID_ASK"})
_QUOTE_OFFSET = {"BID": -1.0, "ASK": 1.0}


class HistoryError(Exception):
    """A historical request IBKR would refuse; carries the TWS error code and text."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code}: {text}")
        self.code = code
        self.text = text


@dataclass(frozen=True, slots=True, kw_only=True)
class HistoryRequest:
    """A parsed, validated reqHistoricalData."""

    contract: ContractInfo
    end: datetime
    end_text: str
    """endDateTime as sent (blank for "now"): identical requests compare this, not ``end``."""
    duration: Duration
    bar: BarSize
    what: str
    rth: bool
    format_date: int
    keep_up_to_date: bool

    @property
    def pacing_key(self) -> tuple[object, ...]:
        """What makes two requests 'identical' under IBKR's 15-second rule."""
        key = (self.contract.con_id, self.end_text, str(self.duration), self.bar.name)
        return (*key, self.what, self.rth)


def parse_request(
    c: ContractInfo,
    *,
    fields: dict[str, str],
    now: datetime,
    login_zone: str = "UTC",
) -> HistoryRequest:
    """Validate the raw request fields (end, barSize, duration, useRTH, whatToShow, ...).

    ``login_zone`` is the TWS login zone an ``endDateTime`` without a zone is read in.

    Raises:
        HistoryError: 321 for invalid combinations, as IBKR answers them.
    """
    bar, duration = _sizes(fields)
    what = fields["whatToShow"].upper()
    if what not in WHAT_TO_SHOW:
        raise HistoryError(321, f"Error validating request.-'bP' : cause - whatToShow {what}")
    keep = fields.get("keepUpToDate", "0") == "1"
    if keep and fields["end"].strip():
        raise HistoryError(
            321, "Error validating request.-'bP' : cause - keepUpToDate needs an empty endDateTime"
        )
    return HistoryRequest(
        contract=c,
        end=parse_end(fields["end"], now, login_zone=login_zone),
        end_text=fields["end"].strip(),
        duration=duration,
        bar=bar,
        what=what,
        rth=fields.get("useRTH", "0") == "1",
        format_date=int(fields.get("formatDate") or 1),
        keep_up_to_date=keep,
    )


def _sizes(fields: dict[str, str]) -> tuple[BarSize, Duration]:
    """The bar size and duration of a request, if IBKR's step table allows the pair."""
    try:
        bar = from_ib(fields["barSize"])
        duration = parse_duration(fields["duration"])
    except ValidationError as exc:
        raise HistoryError(321, f"Error validating request.-'bP' : cause - {exc}") from None
    if not duration_allowed(duration, bar):
        raise HistoryError(
            321,
            "Error validating request.-'bP' : cause - Historical data bar size setting is "
            f"invalid for duration {duration}: {bar.ib} bars; see IBKR's step table",
        )
    return bar, duration


def parse_end(text: str, now: datetime, *, login_zone: str = "UTC") -> datetime:
    """Parse IBKR's ``endDateTime`` into an aware UTC datetime.

    Accepted as IBKR accepts them: ``""`` (now), ``yyyymmdd hh:mm:ss TZ`` (any IANA zone name
    such as ``US/Eastern`` or ``Australia/Sydney``), ``yyyymmdd-hh:mm:ss`` (UTC) and
    ``yyyymmdd hh:mm:ss`` (the TWS login zone, ``login_zone``). A bare ``yyyymmdd`` means the
    end of that day in the login zone.

    Raises:
        HistoryError: 321 for any other shape, or a zone name that is not a known time zone.
    """
    text = text.strip()
    if not text:
        return now
    match = _END.fullmatch(text)
    if match is None:
        raise _end_error(text, "use 'yyyymmdd hh:mm:ss TZ', 'yyyymmdd-hh:mm:ss' (UTC) or ''")
    day, sep, clock, zone_name = match.group("day", "sep", "time", "zone")
    if sep == "-" and zone_name:
        raise _end_error(text, "'yyyymmdd-hh:mm:ss' is UTC already; drop the zone or the dash")
    zone = UTC if sep == "-" else _zone(zone_name or login_zone, text)
    try:
        if clock is None:
            midnight = datetime.strptime(day, "%Y%m%d").replace(tzinfo=zone)
            return (midnight + timedelta(days=1)).astimezone(UTC)
        moment = datetime.strptime(f"{day} {clock}", "%Y%m%d %H:%M:%S")
    except ValueError as exc:
        raise _end_error(text, str(exc)) from None
    return moment.replace(tzinfo=zone).astimezone(UTC)


_END = re.compile(
    r"(?P<day>\d{8})(?:(?P<sep>[ -])(?P<time>\d{2}:\d{2}:\d{2})(?: +(?P<zone>\S+))?)?"
)


def _zone(name: str, text: str) -> tzinfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # unknown, malformed, or a folder of zones
        raise _end_error(text, f"unknown time zone {name!r}") from None


def _end_error(text: str, why: str) -> HistoryError:
    return HistoryError(
        321, f"Error validating request.-'bP' : cause - endDateTime {text!r}: {why}"
    )


def fetch_bars(market: Market, req: HistoryRequest) -> tuple[str, str, list[HistBar]]:
    """Return (start, end, bars) for a validated request."""
    start = req.end - timedelta(seconds=req.duration.seconds)
    if req.bar.is_daily:
        bars = _daily_bars(market, req, start)
    else:
        bars = _intraday_bars(market, req, start)
    fmt = "%Y%m%d %H:%M:%S"
    return start.strftime(fmt) + " UTC", req.end.strftime(fmt) + " UTC", bars


def _daily_bars(market: Market, req: HistoryRequest, start: datetime) -> list[HistBar]:
    c = req.contract
    days, _, closes = calendar_schedule(c.calendar_name)
    daily = market.daily(c)
    finished = days[closes <= req.end.timestamp()]
    if len(finished) == 0:
        return []
    lo = pd.Timestamp(start.date()) + pd.Timedelta(days=1)
    frame = daily[(daily.index >= lo) & (daily.index <= pd.Timestamp(finished[-1]))]
    arrays = {k: frame[k].to_numpy() for k in ("open", "high", "low", "close", "volume")}
    labels = [d.strftime("%Y%m%d") for d in frame.index]
    return _rows(labels, arrays, req.what)


def _intraday_bars(market: Market, req: HistoryRequest, start: datetime) -> list[HistBar]:
    c = req.contract
    end_epoch = req.end.timestamp()
    last = market.session_index(c, end_epoch + (0 if req.rth or c.is_asx else 5.5 * 3600))
    if req.duration.unit == "D":
        first = max(0, last - req.duration.count + 1)
        lo_epoch = 0.0
    else:
        first, lo_epoch = max(0, market.session_index(c, start.timestamp())), start.timestamp()
    rows: list[HistBar] = []
    for session in range(max(first, 0), last + 1):
        secs = market.seconds(c, session, rth=req.rth).upto(end_epoch)
        keep = secs.epoch >= lo_epoch
        if keep.any():
            rows += aggregate(secs.where(keep), req=req)
    return rows


def aggregate(secs: Seconds, *, req: HistoryRequest) -> list[HistBar]:
    """Roll per-second data of one session into ``req.bar`` bars, formatted for the wire."""
    if len(secs.epoch) == 0:
        return []
    size = req.bar.seconds
    labels = np.maximum((secs.epoch // size) * size, secs.epoch[0])
    uniq, starts = np.unique(labels, return_index=True)
    arrays = {
        "open": secs.open[starts],
        "high": np.maximum.reduceat(secs.high, starts),
        "low": np.minimum.reduceat(secs.low, starts),
        "close": secs.close[np.append(starts[1:] - 1, len(secs.close) - 1)],
        "volume": np.add.reduceat(secs.volume, starts),
    }
    zone = ZoneInfo(req.contract.time_zone)
    if req.format_date == 2:
        texts = [str(int(t)) for t in uniq]
    else:
        texts = [
            datetime.fromtimestamp(int(t), zone).strftime("%Y%m%d %H:%M:%S ")
            + req.contract.time_zone
            for t in uniq
        ]
    return _rows(texts, arrays, req.what)


def _rows(labels: list[str], a: dict[str, np.ndarray], what: str) -> list[HistBar]:
    o, h, low, c, v = (a[k] for k in ("open", "high", "low", "close", "volume"))
    if what in _QUOTE_OFFSET:
        shift = _QUOTE_OFFSET[what] * np.maximum(0.01, c * 0.0001)
        o, h, low, c = o + shift, h + shift, low + shift, c + shift
    quote_like = what not in ("TRADES", "ADJUSTED_LAST")
    wap = np.round((o + h + low + c) / 4, 4)
    counts = np.maximum(1, v // 100).astype(np.int64)
    out: list[HistBar] = []
    for i, label in enumerate(labels):
        if quote_like:
            out.append((label, _p(o[i]), _p(h[i]), _p(low[i]), _p(c[i]), -1.0, -1.0, -1))
        else:
            bar = (_p(o[i]), _p(h[i]), _p(low[i]), _p(c[i]), float(v[i]), float(wap[i]))
            out.append((label, *bar, int(counts[i])))
    return out


def _p(x: float) -> float:
    return round(float(x), 4)
