"""Read several instruments of one bar size in a single pyarrow dataset scan."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds

from storage import barfiles
from storage.barpaths import KEY, BarPaths
from storage.validation import COLUMNS


def scan_many(
    paths: BarPaths, size: str, symbols: list[str], lo: int | None, hi: int | None
) -> dict[str, pd.DataFrame]:
    """Return ``{instrument id: frame}`` for ``lo <= ts < hi``, reading all files in one scan.

    The file list is built from the partition directories (no dataset discovery), the
    instrument id comes from the Hive path, and Arrow reads the files on its thread pool with
    the ``ts`` bounds pushed down to row-group statistics.
    """
    files = [f for sym in symbols for f in paths.files(size, sym, lo, hi)]
    result = {sym: barfiles.empty_frame() for sym in symbols}
    if not files:
        return result
    dataset = ds.dataset(
        files,
        schema=barfiles.SCHEMA.append(pa.field(KEY, pa.string())),
        format="parquet",
        filesystem=paths.fs,
        partitioning=ds.partitioning(pa.schema([(KEY, pa.string())]), flavor="hive"),
        partition_base_dir=paths.size_dir(size),
    )
    table = dataset.to_table(columns=[KEY, *_COLUMNS_WITH_TS], filter=_bounds(lo, hi))
    if table.num_rows == 0:
        return result
    encoded = pc.dictionary_encode(table.column(KEY)).combine_chunks()
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    ts = barfiles.from_ts_column(table)
    # Fragment order is not guaranteed across threads: sort by (instrument, ts) once.
    order = np.lexsort((ts, codes))
    codes, ts = codes[order], ts[order]
    stored = barfiles.from_table(table)
    columns = {name: values[order] for name, values in stored.columns.items()}
    cuts = np.flatnonzero(np.diff(codes)) + 1
    bounds = [0, *cuts.tolist(), len(codes)]
    names = encoded.dictionary.to_pylist()
    for a, b in itertools.pairwise(bounds):
        sym = names[int(codes[a])]
        result[sym] = barfiles.frame_from_arrays(
            ts[a:b], {name: col[a:b] for name, col in columns.items()}
        )
    return result


_COLUMNS_WITH_TS = ["ts", *COLUMNS]


def _bounds(lo: int | None, hi: int | None) -> ds.Expression | None:
    ts = ds.field("ts")
    kind = barfiles.SCHEMA.field("ts").type
    conditions = []
    if lo is not None:
        conditions.append(ts >= pa.scalar(lo, type=pa.int64()).cast(kind))
    if hi is not None:
        conditions.append(ts < pa.scalar(hi, type=pa.int64()).cast(kind))
    if not conditions:
        return None
    expr = conditions[0]
    for extra in conditions[1:]:
        expr = expr & extra
    return expr
