"""Parquet encoding of bar partitions: schema, one-file read/write, arrays <-> frames.

Each partition (``bar_size=1m/symbol=AAPL/year=2024``) holds one file, ``data.parquet``,
sorted by ``ts`` with unique timestamps, written in row groups of :data:`ROW_GROUP_ROWS` so a
time-range read decodes only the row groups it needs (their ``ts`` min/max statistics are
checked before any data page is read).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from storage.validation import COLUMNS, FLOAT_COLUMNS, BarArrays

DATA_FILE = "data.parquet"
# ~16k rows = ~1 MB of decoded bars: a month of 1-minute RTH bars per row group.
ROW_GROUP_ROWS = 16_384

SCHEMA = pa.schema(
    [
        pa.field("ts", pa.timestamp("ns", tz="UTC"), nullable=False),
        *(pa.field(name, pa.float64()) for name in FLOAT_COLUMNS),
        pa.field("bar_count", pa.int64()),
    ]
)
_TS_TYPE = SCHEMA.field("ts").type
# On disk every column is REQUIRED: bars hold no nulls (a missing ``wap`` is NaN, a value),
# and an optional column makes every read decode its definition levels, which cost more
# than the values (a 1-minute symbol-year decodes in 0.52 ms all required, 0.87 ms with
# optional floats). Older files with optional floats read the same.
_FILE_SCHEMA = pa.schema([field.with_nullable(False) for field in SCHEMA])


def to_table(bars: BarArrays) -> pa.Table:
    """Return validated bars as an Arrow table of :data:`SCHEMA` (zero-copy where possible)."""
    arrays = [pa.Array.from_buffers(_TS_TYPE, len(bars), [None, pa.py_buffer(bars.ts)])]
    arrays += [pa.array(bars.columns[name]) for name in COLUMNS]
    return pa.Table.from_arrays(arrays, schema=SCHEMA)


def from_table(table: pa.Table) -> BarArrays:
    """Return an Arrow table of :data:`SCHEMA` as plain numpy arrays."""
    ts = _numpy(table.column("ts").cast(pa.int64()))
    return BarArrays(ts=ts, columns={name: _numpy(table.column(name)) for name in COLUMNS})


def from_ts_column(table: pa.Table) -> np.ndarray:
    """Return a table's ``ts`` column as int64 UTC nanoseconds."""
    return _numpy(table.column("ts").cast(pa.int64()))


def _numpy(column: pa.ChunkedArray) -> np.ndarray:
    values: np.ndarray
    if column.num_chunks == 1:
        values = column.chunk(0).to_numpy(zero_copy_only=False)
    else:
        values = column.to_numpy()
    return values


def write_file(fs: pafs.FileSystem, path: str, bars: BarArrays) -> None:
    """Write one partition file (sorted, statistics on, ``ts`` declared as the sort key)."""
    pq.write_table(
        pa.Table.from_arrays(to_table(bars).columns, schema=_FILE_SCHEMA),
        path,
        filesystem=fs,
        row_group_size=ROW_GROUP_ROWS,
        compression="none",
        use_dictionary=False,
        column_encoding=_ENCODINGS,
        sorting_columns=[pq.SortingColumn(0)],
    )


# Reads decide: a symbol-year is read far more often than written, so no column is
# compressed; only the two integer columns are delta-packed (sorted ``ts`` shrinks to almost
# nothing, ``bar_count`` to a few bits per value) and the floats stay PLAIN, which decodes as
# a copy. One year of 1-minute bars (97,740 rows), REQUIRED columns, pyarrow 26, one core,
# decode of the whole file (best / median of 200); "ticked" rounds prices to cents:
#                                                  benchmark data       ticked prices
#   before: LZ4, optional floats, no dictionary    5.50 MB  1.17 ms     3.45 MB  1.93 ms
#   LZ4, no dictionary                             5.50 MB  0.83 ms     3.45 MB  1.53 ms
#   no compression                                 6.26 MB  0.41 ms     6.26 MB  0.39 ms
#   ts delta, the rest plain                       5.58 MB  0.44 ms     5.58 MB  0.43 ms
#   ts + bar_count delta, floats plain  (chosen)   4.93 MB  0.51 ms     4.93 MB  0.51 ms
#   ts + bar_count delta, floats LZ4               4.64 MB  0.73 ms     2.59 MB  1.52 ms
#   ... floats BYTE_STREAM_SPLIT + LZ4             3.51 MB  0.91 ms     3.51 MB  0.95 ms
#   ... floats BYTE_STREAM_SPLIT + ZSTD level 1    3.36 MB  1.71 ms     2.78 MB  3.42 ms
# So reads of real (ticked) prices are ~4x faster than with the LZ4 files before, for files
# ~40% larger (~5 MB per symbol-year of 1-minute bars); delta-packing ``bar_count`` buys 12%
# of the size for 0.07 ms. Old files stay readable: Parquet files describe themselves.
_ENCODINGS = {"ts": "DELTA_BINARY_PACKED", "bar_count": "DELTA_BINARY_PACKED"}


def read_file(
    fs: pafs.FileSystem, path: str, lo: int | None, hi: int | None, *, ts_only: bool = False
) -> pa.Table:
    """Read the rows of one partition file with ``lo <= ts < hi`` (None = unbounded).

    Row groups whose ``ts`` statistics fall outside the range are skipped unread, and the
    rows kept are cut from the sorted ``ts`` column with a binary search.
    """
    columns = ["ts"] if ts_only else None
    local = isinstance(fs, pafs.LocalFileSystem)
    with fs.open_input_file(path) as source:
        # pre_buffer coalesces reads for high-latency stores; on local files it only adds
        # work. Arrow's decode threads lose on a local disk too (2 cores, benchmarks/bars_io.py
        # medians: a 1-minute symbol-year 1.26-1.64 ms threaded vs 0.98-1.14 ms not, one week
        # 0.82-0.85 vs 0.51-0.55 ms): decoding these columns is little more than a copy.
        parquet = pq.ParquetFile(source, pre_buffer=not local)
        meta = parquet.metadata
        groups = _row_groups(meta, lo, hi)
        threads = not local and meta.num_rows > 2 * ROW_GROUP_ROWS
        if groups is None:
            table = parquet.read(columns=columns, use_threads=threads)
        else:
            table = parquet.read_row_groups(groups, columns=columns, use_threads=threads)
    if (lo is None and hi is None) or table.num_rows == 0:
        return table
    ts = _numpy(table.column("ts").cast(pa.int64()))
    first = 0 if lo is None else int(np.searchsorted(ts, lo, side="left"))
    last = len(ts) if hi is None else int(np.searchsorted(ts, hi, side="left"))
    return table.slice(first, max(last - first, 0))


def _row_groups(meta: pq.FileMetaData, lo: int | None, hi: int | None) -> list[int] | None:
    """Return the row groups overlapping ``[lo, hi)``, or None when all of them do."""
    if lo is None and hi is None:
        return None
    keep: list[int] = []
    for i in range(meta.num_row_groups):
        stats = meta.row_group(i).column(0).statistics
        if stats is None or not stats.has_min_max:
            keep.append(i)
            continue
        # ``ts`` is stored as int64 nanoseconds (SCHEMA), so the raw statistics are the
        # bounds themselves; no Timestamp objects needed.
        first, last = stats.min_raw, stats.max_raw
        if (hi is None or first < hi) and (lo is None or last >= lo):
            keep.append(i)
    return None if len(keep) == meta.num_row_groups else keep


def empty_frame() -> pd.DataFrame:
    """Return a bar frame with no rows but the right index, columns and dtypes."""
    return frame_from_arrays(
        np.empty(0, dtype=np.int64),
        {name: np.empty(0, dtype=SCHEMA.field(name).type.to_pandas_dtype()) for name in COLUMNS},
    )


def frame_from_table(table: pa.Table) -> pd.DataFrame:
    """Build the public bar frame from an Arrow table without ``Table.to_pandas`` overhead.

    Each column is copied once, chunk by chunk, straight into the frame's blocks (no
    intermediate concatenation of the table's row-group chunks).
    """
    n = table.num_rows
    chunks = table.column(0).num_chunks
    if chunks > 1 and n < _SMALL_CHUNK_ROWS * chunks:
        # Many small chunks (one per year file of daily bars): one concatenation inside
        # Arrow costs less than a Python round trip per chunk and column.
        table = table.combine_chunks()
    block = np.empty((len(FLOAT_COLUMNS), n), dtype=np.float64)
    for row, name in enumerate(FLOAT_COLUMNS):
        _fill(block[row], table.column(name).chunks)
    counts = np.empty((1, n), dtype=np.int64)
    _fill(counts[0], table.column("bar_count").chunks)
    ts = np.empty(n, dtype=np.int64)
    _fill(ts, [chunk.view(pa.int64()) for chunk in table.column("ts").chunks])
    return _frame(ts, block, counts)


def _fill(target: np.ndarray, chunks: list[pa.Array]) -> None:
    """Copy the chunks of a null-free fixed-width column into ``target``, one after another."""
    start = 0
    for chunk in chunks:
        target[start : start + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
        start += len(chunk)


def frame_from_arrays(ts: np.ndarray, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Build the public bar frame: UTC DatetimeIndex ``ts`` and the seven bar columns."""
    block = np.empty((len(FLOAT_COLUMNS), len(ts)), dtype=np.float64)
    for row, name in enumerate(FLOAT_COLUMNS):
        block[row] = columns[name]
    counts = np.array(columns["bar_count"], dtype=np.int64).reshape(1, len(ts))
    return _frame(np.asarray(ts, dtype=np.int64), block, counts)


def _frame(ts: np.ndarray, block: np.ndarray, counts: np.ndarray) -> pd.DataFrame:
    """Wrap a (6, n) float block and a (1, n) int64 block, both owned and writable.

    The blocks are adopted as they are (no per-column inference, no consolidation copy):
    pandas' block-level constructor when this pandas has it, a dict of columns otherwise.
    """
    index = pd.DatetimeIndex(ts.view("datetime64[ns]"), dtype=_UTC_NS, name="ts", copy=False)
    build = getattr(getattr(pd.api, "internals", None), "create_dataframe_from_blocks", None)
    if build is not None:  # pandas >= 3.0
        # Fresh column index and placements per frame: callers may rename the axis in place.
        frame: pd.DataFrame = build(
            [(block, _FLOAT_PLACE.copy()), (counts, _COUNT_PLACE.copy())],
            index=index,
            columns=_COLUMN_INDEX.copy(),
        )
        return frame
    data = {name: block[row] for row, name in enumerate(FLOAT_COLUMNS)}
    data["bar_count"] = counts[0]
    return pd.DataFrame({name: data[name] for name in COLUMNS}, index=index, copy=False)


_SMALL_CHUNK_ROWS = 8_192
_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")
_COLUMN_INDEX = pd.Index(COLUMNS)
_FLOAT_PLACE = np.array([COLUMNS.index(name) for name in FLOAT_COLUMNS], dtype=np.intp)
_COUNT_PLACE = np.array([COLUMNS.index("bar_count")], dtype=np.intp)
