"""Validate a batch of bars before anything of it is written.

Corrupt data is worse than no data: a batch that breaks any rule is rejected whole with a
:class:`core.errors.DataError` whose ``field`` names the column (or ``ts``) and whose message
names the first offending row's timestamp, the rule, and how many rows break it.

Conventions:

- Timestamps are timezone-aware and converted to UTC; naive ones are refused, never guessed.
- Daily bars (``1d``) are stamped at 00:00 UTC of the session date (the exchange's local
  trading date), whatever the exchange's time zone.
- Intraday bars are stamped at their start, on a multiple of the bar length since the Unix
  epoch (a ``5m`` bar at 14:35:00, never 14:36:00). Bars longer than 30 minutes may also start
  on a half hour: IBKR (and ibsim) stamp the first regular-hours ``1h`` bar at the session
  open, 09:30 New York, and the next ones on the hour.
- ``wap`` is optional and filled with NaN when absent: a volume-weighted price cannot be
  derived from OHLC, and a made-up ``(h+l+c)/3`` would be indistinguishable from a real one.
  ``bar_count`` is optional and filled with 0.
- Columns other than the seven bar columns are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.barsize import BarSize
from core.errors import DataError

PRICE_COLUMNS = ("open", "high", "low", "close")
FLOAT_COLUMNS = ("open", "high", "low", "close", "volume", "wap")
COLUMNS = (*FLOAT_COLUMNS, "bar_count")
_DAY_NS = 86_400 * 1_000_000_000
_HALF_HOUR = 1_800  # seconds; session opens such as 09:30 New York sit on this grid


@dataclass(frozen=True, slots=True, kw_only=True)
class BarArrays:
    """A validated batch as plain arrays: ``ts`` int64 UTC ns, strictly increasing.

    Attributes:
        ts: Bar timestamps, int64 nanoseconds since the epoch, UTC.
        columns: ``open high low close volume wap`` float64 and ``bar_count`` int64.
    """

    ts: np.ndarray
    columns: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.ts)

    def slice(self, start: int, stop: int) -> BarArrays:
        """Return rows ``[start, stop)`` as views."""
        return BarArrays(
            ts=self.ts[start:stop], columns={k: v[start:stop] for k, v in self.columns.items()}
        )


def validate_bars(frame: pd.DataFrame, size: BarSize) -> BarArrays:
    """Check a frame of bars and return it as arrays.

    Args:
        frame: Bars with a tz-aware DatetimeIndex or a ``ts`` column, and columns
            ``open high low close volume`` plus optional ``wap`` and ``bar_count``.
        size: The bar size, for the timestamp alignment rule.

    Returns:
        The batch as :class:`BarArrays`.

    Raises:
        DataError: naming the column or rule, the first bad row and the number of bad rows.
    """
    if len(frame) == 0:  # an empty batch is a no-op whatever its columns or index
        empty = np.empty(0, dtype=np.float64)
        columns = {name: empty for name in FLOAT_COLUMNS}
        return BarArrays(
            ts=np.empty(0, dtype=np.int64), columns={**columns, "bar_count": empty.astype(np.int64)}
        )
    ts = _timestamps(frame)
    n = len(ts)
    columns = {name: _float_column(frame, name, n) for name in FLOAT_COLUMNS}
    columns["bar_count"] = _count_column(frame, n)
    _check_time(ts, size)
    _check_values(ts, columns)
    return BarArrays(ts=ts, columns=columns)


def _timestamps(frame: pd.DataFrame) -> np.ndarray:
    if "ts" in frame.columns:
        values = _parse_ts(frame["ts"])
    elif isinstance(frame.index, pd.DatetimeIndex):
        values = frame.index
    else:
        raise DataError(
            "bars need a tz-aware DatetimeIndex or a 'ts' column of UTC timestamps; "
            f"got an index of type {type(frame.index).__name__}",
            field="ts",
        )
    if values.tz is None:
        raise DataError(
            "timestamps are naive (no time zone); localize them first, "
            "e.g. frame.index = frame.index.tz_localize('UTC') if they are UTC",
            field="ts",
        )
    if values.hasnans:
        raise DataError("timestamps contain NaT; drop or fix those rows", field="ts")
    utc = values.tz_convert("UTC").as_unit("ns")
    return np.asarray(utc.asi8, dtype=np.int64)


def _parse_ts(raw: pd.Series) -> pd.DatetimeIndex:
    """Return the ``ts`` column as a DatetimeIndex, or raise DataError naming the bad value."""
    if not len(raw):
        return pd.DatetimeIndex([], tz="UTC")
    try:
        return pd.DatetimeIndex(raw)
    except (TypeError, ValueError, OverflowError) as exc:  # pandas' DateParseError is a ValueError
        raise DataError(_ts_problem(raw, exc), field="ts") from exc


def _ts_problem(raw: pd.Series, exc: Exception) -> str:
    """Explain why ``raw`` is not a timestamp column (runs only once parsing has failed)."""
    for row, value in enumerate(raw):
        try:
            pd.Timestamp(value)
        except (TypeError, ValueError, OverflowError):
            return (
                f"'ts' value {value!r} (row {row}) is not a timestamp; use tz-aware datetimes "
                "or ISO 8601 strings with a zone, e.g. '2024-01-02T00:00:00Z'"
            )
    return (
        f"the 'ts' column cannot be read as timestamps ({exc}); if every value carries a zone, "
        "convert them first: frame['ts'] = pd.to_datetime(frame['ts'], utc=True)"
    )


def _float_column(frame: pd.DataFrame, name: str, n: int) -> np.ndarray:
    if name not in frame.columns:
        if name == "wap":
            return np.full(n, np.nan)
        raise DataError(
            f"bars lack the required column {name!r}; "
            "provide open, high, low, close and volume (wap and bar_count are optional)",
            field=name,
        )
    try:
        return np.array(frame[name].to_numpy(dtype=np.float64, na_value=np.nan), copy=True)
    except (TypeError, ValueError) as exc:
        raise DataError(f"column {name!r} is not numeric: {exc}", field=name) from exc


def _count_column(frame: pd.DataFrame, n: int) -> np.ndarray:
    if "bar_count" not in frame.columns:
        return np.zeros(n, dtype=np.int64)
    values = _float_column(frame, "bar_count", n)
    bad = np.isnan(values) | (values < 0) | (values != np.floor(values))
    if bad.any():
        raise DataError(
            "column 'bar_count' must hold whole numbers >= 0 (no NaN)", field="bar_count"
        )
    return values.astype(np.int64)


def _fail(ts: np.ndarray, bad: np.ndarray, *, field: str, rule: str) -> DataError:
    first = int(np.flatnonzero(bad)[0])
    when = pd.Timestamp(int(ts[first]), tz="UTC")
    count = int(bad.sum())
    return DataError(
        f"bar at {when.isoformat()} breaks rule '{rule}' ({count} bad row(s)); "
        "nothing of this batch was written",
        field=field,
    )


def _check_time(ts: np.ndarray, size: BarSize) -> None:
    if len(ts) > 1:
        step = np.diff(ts)
        bad = np.r_[False, step <= 0]
        if bad.any():
            rule = "timestamps strictly increasing (no duplicates, sorted)"
            raise _fail(ts, bad, field="ts", rule=rule)
    if size.is_daily:
        bad = ts % _DAY_NS != 0
        rule = "daily bars are stamped at 00:00 UTC of the session date"
    else:
        grid = min(size.seconds, _HALF_HOUR)
        bad = ts % (grid * 1_000_000_000) != 0
        rule = f"{size.name} bars start on a multiple of {grid}s since the epoch"
    if bad.any():
        raise _fail(ts, bad, field="ts", rule=rule)


def _check_values(ts: np.ndarray, columns: dict[str, np.ndarray]) -> None:
    for name in PRICE_COLUMNS:
        values = columns[name]
        bad = ~(values > 0)  # also catches NaN
        if bad.any():
            raise _fail(ts, bad, field=name, rule=f"{name} is a positive number (not NaN)")
    o, h, lo, c = (columns[k] for k in PRICE_COLUMNS)
    bad = h < np.maximum(o, c)
    if bad.any():
        raise _fail(ts, bad, field="high", rule="high >= max(open, close)")
    bad = lo > np.minimum(o, c)
    if bad.any():
        raise _fail(ts, bad, field="low", rule="low <= min(open, close)")
    volume = columns["volume"]
    bad = ~(volume >= 0)
    if bad.any():
        raise _fail(ts, bad, field="volume", rule="volume >= 0 (not NaN)")
    wap = columns["wap"]
    bad = wap <= 0  # NaN means unknown and is allowed
    if bad.any():
        raise _fail(ts, bad, field="wap", rule="wap is positive or NaN")
    inf = np.zeros(len(ts), dtype=bool)
    for name in FLOAT_COLUMNS:
        inf |= np.isinf(columns[name])
    if inf.any():
        raise _fail(ts, inf, field="values", rule="no infinite values")
