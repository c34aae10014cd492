"""barfiles: the partition file encoding, old files, and the frames built from tables."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from core.barsize import bar_size
from storage import barfiles
from storage.bars import BarStore
from storage.validation import validate_bars


def minute_bars(start: str, periods: int, *, seed: int = 0) -> pd.DataFrame:
    """Return valid 1-minute bars starting at ``start`` (UTC)."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=periods, freq="1min", tz="UTC", name="ts")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, periods)))
    return pd.DataFrame(
        {
            "open": close,
            "high": close * 1.001,
            "low": close * 0.999,
            "close": close,
            "volume": rng.integers(0, 10_000, periods).astype(float),
            "wap": close,
            "bar_count": rng.integers(1, 500, periods),
        },
        index=index.as_unit("ns"),
    )


def write_like_the_lz4_writer(path, frame: pd.DataFrame) -> None:
    """Write a partition file exactly as the store did before it dropped compression."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        barfiles.to_table(validate_bars(frame, bar_size("1m"))),
        path,
        row_group_size=barfiles.ROW_GROUP_ROWS,
        compression="lz4",
        use_dictionary=False,
        sorting_columns=[pq.SortingColumn(0)],
    )


def test_partition_file_delta_packs_integers_and_leaves_floats_plain_uncompressed(tmp_path):
    store = BarStore(tmp_path / "bars")
    store.write("AAPL.NASDAQ", "1m", minute_bars("2024-03-01 14:30", 100))

    meta = pq.ParquetFile(next((tmp_path / "bars").rglob("data.parquet"))).metadata
    chunks = {meta.schema.column(i).name: meta.row_group(0).column(i) for i in range(8)}

    assert {c.compression for c in chunks.values()} == {"UNCOMPRESSED"}
    assert all(meta.schema.column(i).max_definition_level == 0 for i in range(8))  # REQUIRED
    assert "DELTA_BINARY_PACKED" in chunks["ts"].encodings
    assert "DELTA_BINARY_PACKED" in chunks["bar_count"].encodings
    for name in barfiles.FLOAT_COLUMNS:
        assert "PLAIN" in chunks[name].encodings
        assert not {"PLAIN_DICTIONARY", "RLE_DICTIONARY", "BYTE_STREAM_SPLIT"} & set(
            chunks[name].encodings
        )
    assert meta.row_group(0).sorting_columns == (pq.SortingColumn(0),)


def test_lz4_file_of_the_previous_writer_reads_slices_and_merges(tmp_path):
    old = minute_bars("2024-01-02 14:30", 40_000, seed=1)  # several row groups
    data = (
        tmp_path / "bars" / "bar_size=1m" / "instrument=AAPL.NASDAQ" / "year=2024" / "data.parquet"
    )
    write_like_the_lz4_writer(data, old)
    store = BarStore(tmp_path / "bars")
    start, end = old.index[20_000], old.index[20_100]

    whole = store.read("AAPL.NASDAQ", "1m")
    window = store.read("AAPL.NASDAQ", "1m", start, end)
    newer = minute_bars(str(old.index[-10]), 20, seed=2)
    result = store.write("AAPL.NASDAQ", "1m", newer)

    pd.testing.assert_frame_equal(whole, old, check_freq=False)
    pd.testing.assert_frame_equal(window, old.iloc[20_000:20_100], check_freq=False)
    assert (result.rows_new, result.rows_replaced) == (10, 10)
    expected = pd.concat([old.iloc[:-10], newer])
    pd.testing.assert_frame_equal(store.read("AAPL.NASDAQ", "1m"), expected, check_freq=False)
    assert pq.ParquetFile(data).metadata.row_group(0).column(1).compression == "UNCOMPRESSED"


def test_old_and_new_partitions_of_one_symbol_read_together(tmp_path):
    old = minute_bars("2023-12-31 20:00", 240, seed=3)  # 2023 partition, previous writer
    old_data = (
        tmp_path / "bars" / "bar_size=1m" / "instrument=AAPL.NASDAQ" / "year=2023" / "data.parquet"
    )
    write_like_the_lz4_writer(old_data, old)
    store = BarStore(tmp_path / "bars")
    new = minute_bars("2024-01-01 00:00", 300, seed=4)  # 2024 partition, current writer

    store.write("AAPL.NASDAQ", "1m", new)
    both = pd.concat([old, new])

    pd.testing.assert_frame_equal(store.read("AAPL.NASDAQ", "1m"), both, check_freq=False)
    pd.testing.assert_frame_equal(
        store.read_many(["AAPL.NASDAQ"], "1m")["AAPL.NASDAQ"], both, check_freq=False
    )
    window = store.read("AAPL.NASDAQ", "1m", old.index[-5], new.index[5])
    pd.testing.assert_frame_equal(window, both.iloc[235:245], check_freq=False)


def test_read_across_large_year_partitions_keeps_every_row_in_order(tmp_path):
    # Two files of > 8,192 rows each: the frame is filled chunk by chunk, not combined.
    bars = minute_bars("2023-12-25", 20 * 1440)
    store = BarStore(tmp_path / "bars")
    store.write("SPY.ARCA", "1m", bars)

    got = store.read("SPY.ARCA", "1m")

    pd.testing.assert_frame_equal(got, bars, check_freq=False)
    assert got._mgr.nblocks == 2  # one float block, one int block: nothing left to consolidate


def test_frame_without_pandas_block_constructor_is_the_same_frame(tmp_path, monkeypatch):
    store = BarStore(tmp_path / "bars")
    bars = minute_bars("2024-03-01 14:30", 500)
    store.write("AAPL.NASDAQ", "1m", bars)
    with_blocks = store.read("AAPL.NASDAQ", "1m")

    monkeypatch.delattr(pd.api.internals, "create_dataframe_from_blocks")
    without = store.read("AAPL.NASDAQ", "1m")
    without.iloc[0, 0] = -1.0

    pd.testing.assert_frame_equal(with_blocks, bars, check_freq=False)
    pd.testing.assert_frame_equal(without.iloc[1:], bars.iloc[1:], check_freq=False)
    assert without.iloc[0, 0] == -1.0


@pytest.mark.parametrize("rows", [0, 1, 3])
def test_frame_from_arrays_copies_its_inputs(rows):
    ts = np.arange(rows, dtype=np.int64)
    columns = {name: np.ones(rows) for name in barfiles.FLOAT_COLUMNS}
    columns["bar_count"] = np.ones(rows, dtype=np.int64)

    frame = barfiles.frame_from_arrays(ts, columns)
    frame.loc[:, "bar_count"] = 5
    frame.loc[:, "close"] = 2.0

    assert list(frame.dtypes.astype(str)) == ["float64"] * 6 + ["int64"]
    assert str(frame.index.dtype) == "datetime64[ns, UTC]" and frame.index.name == "ts"
    assert (columns["bar_count"] == 1).all() and (columns["close"] == 1.0).all()
