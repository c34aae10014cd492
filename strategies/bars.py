"""Bar frames at the engine's boundary: validation, the canonical float64 frame, blocks.

"Corrupt data is worse than no data": every backtest entry point checks its bars here
first, and the error names the first bad bar, the column and the rule it breaks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from core.errors import DataError
from strategies import _bar_kernels as bk
from strategies.base import COLUMNS

COLUMN_INDEX = pd.Index(list(COLUMNS))
_COLUMN_PLACE = np.arange(len(COLUMNS), dtype=np.intp)


def validate_bars(bars: pd.DataFrame) -> pd.DataFrame:
    """Return the bars as a float64 frame of ``open high low close volume``, or raise DataError."""
    return bar_values(bars)[0]


def bar_values(bars: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """Validate ``bars``; return the canonical frame and its (n, 5) float64 values.

    The frame owns one fresh (5, n) float64 block (a single copy of the five columns), so
    the caller's later edits never reach a result and strategies may write to it.

    Raises:
        DataError: not a DataFrame, a column is missing or not numeric, the index is not
            a strictly increasing UTC DatetimeIndex, fewer than 2 bars, or a bar's prices
            are not finite and positive or lie outside its own high/low range.
    """
    if not isinstance(bars, pd.DataFrame):
        raise DataError(
            f"bars must be a pandas DataFrame with columns {list(COLUMNS)}, "
            f"got {type(bars).__name__}",
            field="bars",
        )
    canonical = bars.columns.equals(COLUMN_INDEX)
    missing = [] if canonical else [c for c in COLUMNS if c not in bars.columns]
    if missing:
        raise DataError(f"bars lack columns {missing}; need {list(COLUMNS)}", field=missing[0])
    index = bars.index
    if not isinstance(index, pd.DatetimeIndex) or index.tz is None:
        raise DataError("bars need a timezone-aware (UTC) DatetimeIndex", field="index")
    if not index.is_monotonic_increasing or index.has_duplicates:
        raise DataError("bar timestamps must be strictly increasing", field="index")
    if len(bars) < 2:
        raise DataError(f"need at least 2 bars to backtest, got {len(bars)}", field="bars")
    block = _block_of(bars) if canonical else _block_from_columns(bars)
    values = block.T
    if not bk.bars_ok(block):
        raise _bar_error(block, index)
    return frame_of(block, index), values


def _bar_error(block: np.ndarray, index: pd.DatetimeIndex) -> DataError:
    """Return the DataError naming the first bar that ``bk.bars_ok`` rejects, and its rule."""
    prices = block[:4]
    with np.errstate(invalid="ignore"):
        sane = np.isfinite(prices) & (prices > 0)
    if not sane.all():
        t = int((~sane.all(axis=0)).argmax())
        row = int((~sane[:, t]).argmax())
        return DataError(
            f"bar prices must be finite and positive; the bar at {index[t]} has "
            f"{COLUMNS[row]}={prices[row, t]!r} (fix or drop it)",
            field=COLUMNS[row],
        )
    o, h, lo, c = prices
    high_bad = h < np.maximum(o, c)
    t = int((high_bad | (lo > np.minimum(o, c))).argmax())
    name = "high" if high_bad[t] else "low"
    return DataError(
        f"every bar needs low <= min(open, close) and max(open, close) <= high (stops and "
        f"targets read high and low); the bar at {index[t]} has open={o[t]!r}, "
        f"high={h[t]!r}, low={lo[t]!r}, close={c[t]!r} (fix or drop it)",
        field=name,
    )


def _block_of(bars: pd.DataFrame) -> np.ndarray:
    """Return a fresh (5, n) float64 copy of a frame whose columns are exactly COLUMNS."""
    try:
        return np.array(bars.to_numpy(np.float64).T, dtype=np.float64, order="C")
    except (TypeError, ValueError):
        return _block_from_columns(bars)  # names the column that is not numeric


def _block_from_columns(bars: pd.DataFrame) -> np.ndarray:
    """Return a fresh (5, n) float64 block of COLUMNS, column by column (extra columns such
    as the bar store's ``wap`` and ``bar_count`` are never touched)."""
    block = np.empty((len(COLUMNS), len(bars)))
    for row, name in enumerate(COLUMNS):
        column = bars[name]
        try:
            block[row] = column.to_numpy(np.float64)
        except (TypeError, ValueError) as exc:
            raise DataError(
                f"bar column '{name}' must be numeric, got {column.dtype} ({exc})", field=name
            ) from exc
    return block


def frame_of(block: np.ndarray, index: pd.Index) -> pd.DataFrame:
    """Return the bar frame over ``block`` (5, n) without copying it."""
    frame = from_blocks([(block, _COLUMN_PLACE)], index, COLUMN_INDEX)
    if frame is None:
        return pd.DataFrame(block.T, index=index, columns=COLUMN_INDEX, copy=False)
    return frame


def from_blocks(
    blocks: list[tuple[Any, np.ndarray]], index: pd.Index, columns: pd.Index
) -> pd.DataFrame | None:
    """Return a DataFrame adopting ``blocks`` (values, column positions) as they are, or None
    on a pandas (before 3.0) without the block-level constructor.

    The generic constructors infer every column and consolidate (copy) blocks: most of the
    cost of building a small frame on one backtest.
    """
    build = getattr(getattr(pd.api, "internals", None), "create_dataframe_from_blocks", None)
    if build is None:
        return None
    frame: pd.DataFrame = build(blocks, index=index, columns=columns)
    return frame


def ohlc_columns(values: np.ndarray) -> tuple[np.ndarray, ...]:
    """Return open, high, low, close of (n, 5) bar values as contiguous (n, 1) arrays."""
    return tuple(np.ascontiguousarray(values[:, i : i + 1]) for i in range(4))
