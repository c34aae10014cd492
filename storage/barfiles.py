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
        to_table(bars),
        path,
        filesystem=fs,
        row_group_size=ROW_GROUP_ROWS,
        # LZ4 without dictionaries decodes ~2-4x faster than the snappy+dictionary default
        # (measured in benchmarks/bars_io.py); price floats rarely repeat enough to pay off.
        compression="lz4",
        use_dictionary=False,
        sorting_columns=[pq.SortingColumn(0)],
    )


def read_file(
    fs: pafs.FileSystem, path: str, lo: int | None, hi: int | None, *, ts_only: bool = False
) -> pa.Table:
    """Read the rows of one partition file with ``lo <= ts < hi`` (None = unbounded).

    Row groups whose ``ts`` statistics fall outside the range are skipped unread, and the
    rows kept are cut from the sorted ``ts`` column with a binary search.
    """
    columns = ["ts"] if ts_only else None
    with fs.open_input_file(path) as source:
        # pre_buffer coalesces reads for high-latency stores; on small local files it only
        # adds work, and threads pay off only once a file holds several row groups.
        parquet = pq.ParquetFile(source, pre_buffer=not isinstance(fs, pafs.LocalFileSystem))
        groups = _row_groups(parquet.metadata, lo, hi)
        threads = parquet.metadata.num_rows > 2 * ROW_GROUP_ROWS
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
        first, last = pd.Timestamp(stats.min).value, pd.Timestamp(stats.max).value
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

    Each float column is copied once, chunk by chunk, straight into the frame's 2-D block
    (no intermediate concatenation of the table's row-group chunks).
    """
    n = table.num_rows
    block = np.empty((len(FLOAT_COLUMNS), n), dtype=np.float64)
    for row, name in enumerate(FLOAT_COLUMNS):
        start = 0
        for chunk in table.column(name).chunks:
            block[row, start : start + len(chunk)] = chunk.to_numpy(zero_copy_only=False)
            start += len(chunk)
    ts = from_ts_column(table)
    extra = {name: _numpy(table.column(name)) for name in COLUMNS if name not in FLOAT_COLUMNS}
    return _frame(ts, block, extra)


def frame_from_arrays(ts: np.ndarray, columns: dict[str, np.ndarray]) -> pd.DataFrame:
    """Build the public bar frame: UTC DatetimeIndex ``ts`` and the seven bar columns."""
    block = np.empty((len(FLOAT_COLUMNS), len(ts)), dtype=np.float64)
    for row, name in enumerate(FLOAT_COLUMNS):
        block[row] = columns[name]
    extra = {name: columns[name] for name in COLUMNS if name not in FLOAT_COLUMNS}
    return _frame(ts, block, extra)


def _frame(ts: np.ndarray, block: np.ndarray, extra: dict[str, np.ndarray]) -> pd.DataFrame:
    # The float columns are rows of ``block``, adopted without another copy (a dict of
    # arrays is not consolidated). Arrow's zero-copy buffers are read-only, and callers
    # expect a frame they can edit, so ``extra`` columns are copied.
    index = pd.DatetimeIndex(ts.view("datetime64[ns]"), dtype=_UTC_NS, name="ts", copy=False)
    data = {name: block[row] for row, name in enumerate(FLOAT_COLUMNS)}
    data.update({name: np.array(values, copy=True) for name, values in extra.items()})
    return pd.DataFrame({name: data[name] for name in COLUMNS}, index=index, copy=False)


_UTC_NS = pd.DatetimeTZDtype("ns", "UTC")
