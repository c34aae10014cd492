"""BarStore: round trips, merging, partitions, bounds, URIs, symbols and deletes."""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pandas as pd
import pytest

from core.errors import DataError, ValidationError
from storage.bars import BarStore, WriteResult

UTC = "UTC"


def make_bars(start: str, periods: int, *, freq: str = "1D", seed: int = 0) -> pd.DataFrame:
    """Return valid bars starting at ``start`` (UTC), one every ``freq``."""
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=periods, freq=freq, tz=UTC, name="ts").as_unit("ns")
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.002, periods)))
    open_ = close * (1 + rng.normal(0, 0.001, periods))
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, periods)),
            "low": np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, periods)),
            "close": close,
            "volume": rng.integers(0, 10_000, periods).astype(float),
            "wap": close,
            "bar_count": rng.integers(1, 500, periods),
        },
        index=index,
    )


@pytest.fixture
def bar_store(tmp_path) -> BarStore:
    return BarStore(tmp_path / "bars")


def test_write_then_read_round_trips_values_and_dtypes(bar_store):
    bars = make_bars("2024-01-02", 30)

    result = bar_store.write("AAPL.NASDAQ", "1d", bars)
    got = bar_store.read("AAPL.NASDAQ", "1d")

    assert result == WriteResult(rows_received=30, rows_new=30, rows_replaced=0, partitions=1)
    pd.testing.assert_frame_equal(got, bars, check_freq=False)
    assert str(got.index.dtype) == "datetime64[ns, UTC]"
    assert got.index.name == "ts"
    assert got["bar_count"].dtype == np.int64


def test_write_lays_out_hive_partitions_readable_by_pyarrow_dataset(bar_store, tmp_path):
    import pyarrow.dataset as ds

    bar_store.write("AAPL.NASDAQ", "1d", make_bars("2024-12-30", 5))

    files = sorted(p.relative_to(tmp_path / "bars").as_posix() for p in tmp_path.rglob("*.parquet"))
    table = ds.dataset(tmp_path / "bars", partitioning="hive").to_table()
    assert files == [
        "bar_size=1d/instrument=AAPL.NASDAQ/year=2024/data.parquet",
        "bar_size=1d/instrument=AAPL.NASDAQ/year=2025/data.parquet",
    ]
    assert table.num_rows == 5
    assert str(table.schema.field("ts").type) == "timestamp[ns, tz=UTC]"


def test_write_spanning_years_reads_back_across_partitions(bar_store):
    bars = make_bars("2022-12-01", 800)

    result = bar_store.write("MSFT.NASDAQ", "1d", bars)

    assert result.partitions == 4  # 2022, 2023, 2024, 2025
    pd.testing.assert_frame_equal(bar_store.read("MSFT.NASDAQ", "1d"), bars, check_freq=False)
    window = bar_store.read(
        "MSFT.NASDAQ", "1d", pd.Timestamp("2023-12-30", tz=UTC), pd.Timestamp("2024-01-03", tz=UTC)
    )
    assert list(window.index.strftime("%Y-%m-%d")) == [
        "2023-12-30",
        "2023-12-31",
        "2024-01-01",
        "2024-01-02",
    ]


def test_read_bounds_are_start_inclusive_end_exclusive(bar_store):
    bar_store.write("AAPL.NASDAQ", "1m", make_bars("2024-03-01 14:30", 100, freq="1min"))
    start = pd.Timestamp("2024-03-01 14:40", tz=UTC)
    end = pd.Timestamp("2024-03-01 14:50", tz=UTC)

    got = bar_store.read("AAPL.NASDAQ", "1m", start, end)

    assert got.index[0] == start
    assert got.index[-1] == end - pd.Timedelta("1min")
    assert len(got) == 10


def test_read_skips_row_groups_and_slices_inside_large_partition(bar_store):
    bars = make_bars("2024-01-01", 60_000, freq="1min")  # several row groups
    bar_store.write("SPY.ARCA", "1m", bars)
    start = pd.Timestamp("2024-01-20 00:00", tz=UTC)
    end = pd.Timestamp("2024-01-21 00:00", tz=UTC)

    got = bar_store.read("SPY.ARCA", "1m", start, end)

    pd.testing.assert_frame_equal(
        got, bars.loc[start : end - pd.Timedelta("1ns")], check_freq=False
    )


def test_read_accepts_dates_and_rejects_naive_datetimes(bar_store):
    bar_store.write("AAPL.NASDAQ", "1d", make_bars("2024-01-01", 10))

    got = bar_store.read("AAPL.NASDAQ", "1d", dt.date(2024, 1, 3), dt.date(2024, 1, 5))

    assert len(got) == 2
    with pytest.raises(ValidationError, match="time zone") as info:
        bar_store.read("AAPL.NASDAQ", "1d", start=pd.Timestamp("2024-01-03"))
    assert info.value.field == "start"


def test_read_of_nothing_returns_empty_frame_with_schema(bar_store):
    got = bar_store.read("NOPE.NYSE", "1d")

    assert got.empty
    assert list(got.columns) == ["open", "high", "low", "close", "volume", "wap", "bar_count"]
    assert list(got.dtypes.astype(str)) == ["float64"] * 6 + ["int64"]
    assert str(got.index.dtype) == "datetime64[ns, UTC]"
    assert got.index.name == "ts"


def test_merge_newer_wins_and_counts_new_and_replaced(bar_store):
    first = make_bars("2024-01-01", 10, seed=1)
    second = make_bars("2024-01-06", 10, seed=2)  # overlaps the last 5 days of `first`
    bar_store.write("AAPL.NASDAQ", "1d", first)

    result = bar_store.write("AAPL.NASDAQ", "1d", second)
    got = bar_store.read("AAPL.NASDAQ", "1d")

    assert (result.rows_received, result.rows_new, result.rows_replaced) == (10, 5, 5)
    assert len(got) == 15
    assert got.index.is_monotonic_increasing and got.index.is_unique
    pd.testing.assert_frame_equal(got.iloc[:5], first.iloc[:5], check_freq=False)
    pd.testing.assert_frame_equal(got.iloc[5:], second, check_freq=False)


def test_merge_of_older_bars_inserts_them_in_order(bar_store):
    bars = make_bars("2024-01-01", 20)
    bar_store.write("AAPL.NASDAQ", "1d", bars.iloc[10:])

    bar_store.write("AAPL.NASDAQ", "1d", bars.iloc[:10])

    pd.testing.assert_frame_equal(bar_store.read("AAPL.NASDAQ", "1d"), bars, check_freq=False)


def test_write_without_optional_columns_fills_wap_nan_and_bar_count_zero(bar_store):
    bars = make_bars("2024-01-01", 3).drop(columns=["wap", "bar_count"])

    bar_store.write("AAPL.NASDAQ", "1d", bars)
    got = bar_store.read("AAPL.NASDAQ", "1d")

    assert got["wap"].isna().all()
    assert (got["bar_count"] == 0).all()


def test_write_accepts_ts_column_and_non_utc_zone(bar_store):
    bars = make_bars("2024-03-01 14:30", 5, freq="1min")
    local = bars.tz_convert("America/New_York").reset_index()

    bar_store.write("AAPL.NASDAQ", "1m", local)

    pd.testing.assert_frame_equal(bar_store.read("AAPL.NASDAQ", "1m"), bars, check_freq=False)


def test_empty_frame_is_a_no_op(bar_store, tmp_path):
    result = bar_store.write("AAPL.NASDAQ", "1d", make_bars("2024-01-01", 0))

    assert result.rows_received == 0
    assert list(tmp_path.rglob("*.parquet")) == []


def test_instrument_ids_are_upper_cased_and_listed_per_bar_size(bar_store):
    bar_store.write("msft.nasdaq", "1d", make_bars("2024-01-01", 3))
    bar_store.write("AAPL.NASDAQ", "1d", make_bars("2024-01-01", 3))
    bar_store.write("BRK B.NYSE", "1m", make_bars("2024-01-01", 3, freq="1min"))

    assert bar_store.instruments("1d") == ["AAPL.NASDAQ", "MSFT.NASDAQ"]
    assert bar_store.instruments("1m") == ["BRK B.NYSE"]
    assert len(bar_store.read("Msft.Nasdaq", "1d")) == 3


def test_one_ticker_on_two_venues_keeps_two_partitions_never_mixed(bar_store, tmp_path):
    asx, arca = make_bars("2024-01-01", 5, seed=1), make_bars("2024-01-01", 5, seed=2)
    bar_store.write("VEA.ASX", "1d", asx)
    bar_store.write("VEA.ARCA", "1d", arca)

    pd.testing.assert_frame_equal(bar_store.read("VEA.ASX", "1d"), asx, check_freq=False)
    pd.testing.assert_frame_equal(bar_store.read("VEA.ARCA", "1d"), arca, check_freq=False)
    assert sorted(p.name for p in (tmp_path / "bars" / "bar_size=1d").iterdir()) == [
        "instrument=VEA.ARCA",
        "instrument=VEA.ASX",
    ]


@pytest.mark.parametrize(
    "instrument",
    ["", "VEA", "A/B.ASX", "A=B.ASX", "..", "A..B", ".HIDDEN", "_X.ASX", "AAPL.", "A%2F.NYSE"],
)
def test_bare_tickers_and_bad_ids_are_rejected_with_field(bar_store, instrument):
    with pytest.raises(ValidationError, match=r"SYMBOL\.VENUE") as info:
        bar_store.write(instrument, "1d", make_bars("2024-01-01", 1))
    assert info.value.field == "instrument"


def test_unknown_bar_size_is_rejected(bar_store):
    with pytest.raises(ValidationError, match="1m") as info:
        bar_store.read("AAPL.NASDAQ", "2 mins")
    assert info.value.field == "bar_size"


def test_delete_one_bar_size_keeps_the_others(bar_store):
    bar_store.write("AAPL.NASDAQ", "1d", make_bars("2024-01-01", 3))
    bar_store.write("AAPL.NASDAQ", "1m", make_bars("2024-01-01", 3, freq="1min"))

    bar_store.delete("AAPL.NASDAQ", "1d")

    assert bar_store.read("AAPL.NASDAQ", "1d").empty
    assert bar_store.coverage("AAPL.NASDAQ", "1d") == []
    assert len(bar_store.read("AAPL.NASDAQ", "1m")) == 3
    assert bar_store.instruments("1d") == []


def test_delete_all_bar_sizes(bar_store):
    bar_store.write("AAPL.NASDAQ", "1d", make_bars("2024-01-01", 3))
    bar_store.write("AAPL.NASDAQ", "1m", make_bars("2024-01-01", 3, freq="1min"))
    bar_store.write("MSFT.NASDAQ", "1d", make_bars("2024-01-01", 3))

    bar_store.delete("aapl.nasdaq")

    assert bar_store.instruments("1d") == ["MSFT.NASDAQ"]
    assert bar_store.instruments("1m") == []


def test_file_uri_root_round_trips(tmp_path):
    uri = (tmp_path / "uri-bars").as_uri()
    assert uri.startswith("file://")
    store = BarStore(uri)
    bars = make_bars("2024-01-01", 5)

    store.write("AAPL.NASDAQ", "1d", bars)

    assert (tmp_path / "uri-bars" / "bar_size=1d" / "instrument=AAPL.NASDAQ" / "year=2024").is_dir()
    pd.testing.assert_frame_equal(BarStore(uri).read("AAPL.NASDAQ", "1d"), bars, check_freq=False)
    pd.testing.assert_frame_equal(
        BarStore(tmp_path / "uri-bars").read("AAPL.NASDAQ", "1d"), bars, check_freq=False
    )


def test_read_many_returns_each_symbol_in_one_call(bar_store):
    aapl = make_bars("2023-12-20", 30, seed=1)
    msft = make_bars("2023-12-25", 30, seed=2)
    bar_store.write("AAPL.NASDAQ", "1d", aapl)
    bar_store.write("MSFT.NASDAQ", "1d", msft)
    start = pd.Timestamp("2024-01-01", tz=UTC)

    got = bar_store.read_many(["AAPL.NASDAQ", "msft.nasdaq", "NONE.NYSE"], "1d", start=start)

    assert set(got) == {"AAPL.NASDAQ", "MSFT.NASDAQ", "NONE.NYSE"}
    pd.testing.assert_frame_equal(got["AAPL.NASDAQ"], aapl.loc[start:], check_freq=False)
    pd.testing.assert_frame_equal(got["MSFT.NASDAQ"], msft.loc[start:], check_freq=False)
    assert got["NONE.NYSE"].empty and list(got["NONE.NYSE"].columns) == list(aapl.columns)


def test_rejected_batch_writes_nothing_even_across_partitions(bar_store, tmp_path):
    good = make_bars("2023-12-29", 3)
    bar_store.write("AAPL.NASDAQ", "1d", good)
    bad = make_bars("2023-12-30", 5, seed=9)
    bad.iloc[4, bad.columns.get_loc("volume")] = -1.0  # the 2024 partition's bar is bad

    with pytest.raises(DataError):
        bar_store.write("AAPL.NASDAQ", "1d", bad)

    pd.testing.assert_frame_equal(bar_store.read("AAPL.NASDAQ", "1d"), good, check_freq=False)
    assert not (tmp_path / "bars" / "bar_size=1d" / "instrument=AAPL.NASDAQ" / "year=2024").exists()


def test_concurrent_writers_of_different_symbols_do_not_interfere(tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    root = str(tmp_path / "bars")
    symbols = ["S0.ASX", "S1.ASX", "S2.ASX", "S3.ASX"]
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(_write_symbol_batches, [root] * 4, symbols))

    store = BarStore(root)
    assert store.instruments("1d") == symbols
    for sym in symbols:
        assert len(store.read(sym, "1d")) == 40


def test_concurrent_writers_of_one_symbol_keep_every_row(tmp_path):
    from concurrent.futures import ProcessPoolExecutor

    root = str(tmp_path / "bars")
    with ProcessPoolExecutor(max_workers=2) as pool:
        list(pool.map(_write_disjoint_days, [root, root], [0, 1]))

    got = BarStore(root).read("SAME.NYSE", "1d")
    assert len(got) == 40  # 2 writers x 4 batches x 5 days, none lost to a race
    assert got.index.is_unique and got.index.is_monotonic_increasing
    assert os.listdir(tmp_path / "bars" / "bar_size=1d" / "instrument=SAME.NYSE" / "year=2024") == [
        "data.parquet"
    ]


def _write_symbol_batches(root: str, symbol: str) -> None:
    store = BarStore(root)
    for i in range(4):
        store.write(symbol, "1d", make_bars("2024-01-01", 40, seed=i))


def _write_disjoint_days(root: str, writer: int) -> None:
    store = BarStore(root)
    for batch in range(4):
        # writer 0 takes days 0-4, 10-14, ...; writer 1 days 5-9, 15-19, ...
        first = pd.Timestamp("2024-01-01", tz=UTC) + pd.Timedelta(days=10 * batch + 5 * writer)
        store.write("SAME.NYSE", "1d", make_bars(first.strftime("%Y-%m-%d"), 5, seed=batch))


def test_non_local_filesystem_path_round_trips_without_renames_or_locks(tmp_path):
    import pyarrow.fs as pafs

    # A SubTreeFileSystem is not a LocalFileSystem, so the store takes its object-store path:
    # direct PUT-style writes, pyarrow listings, no flock.
    remote = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    store = BarStore("bars", filesystem=remote)
    bars = make_bars("2023-12-28", 10)

    store.write("AAPL.NASDAQ", "1d", bars.iloc[:6])
    store.write("AAPL.NASDAQ", "1d", bars.iloc[4:])

    pd.testing.assert_frame_equal(store.read("AAPL.NASDAQ", "1d"), bars, check_freq=False)
    assert store.instruments("1d") == ["AAPL.NASDAQ"]
    assert store.coverage("AAPL.NASDAQ", "1d") == [
        (bars.index[0], bars.index[-1] + pd.Timedelta("1D"))
    ]
    assert store.read_many(["AAPL.NASDAQ"], "1d")["AAPL.NASDAQ"].shape == (10, 7)
    assert not (tmp_path / "bars" / ".locks").exists()
    store.delete("AAPL.NASDAQ")
    assert store.instruments("1d") == []


def test_bad_uri_is_a_storage_error(tmp_path):
    from core.errors import StorageError

    with pytest.raises(StorageError, match="cannot be opened"):
        BarStore("nosuchscheme://bucket/bars")


def test_rewriting_identical_bars_leaves_the_file_untouched(bar_store, tmp_path):
    bars = make_bars("2024-01-01", 10)
    bar_store.write("AAPL.NASDAQ", "1d", bars)
    data = next(tmp_path.rglob("data.parquet"))
    before = data.stat().st_ino

    same = bar_store.write("AAPL.NASDAQ", "1d", bars.iloc[2:5])
    after_same = data.stat().st_ino
    changed = bars.iloc[2:5].copy()
    changed["volume"] += 1
    different = bar_store.write("AAPL.NASDAQ", "1d", changed)

    assert (same.rows_replaced, same.partitions) == (3, 0)
    assert (different.rows_replaced, different.partitions) == (3, 1)
    assert after_same == before
    assert data.stat().st_ino != before  # replaced by rename only on the real change
    assert (bar_store.read("AAPL.NASDAQ", "1d")["volume"].iloc[2:5] == changed["volume"]).all()


def test_read_returns_a_frame_the_caller_can_edit_without_touching_the_store(bar_store):
    bar_store.write("AAPL.NASDAQ", "1d", make_bars("2024-01-01", 3))

    got = bar_store.read("AAPL.NASDAQ", "1d")
    got.iloc[0, got.columns.get_loc("bar_count")] = 999_999
    got.loc[got.index[1], "close"] = -1.0
    got["volume"] += 1

    again = bar_store.read("AAPL.NASDAQ", "1d")
    assert got["bar_count"].iloc[0] == 999_999
    assert again["bar_count"].iloc[0] != 999_999 and again["close"].iloc[1] > 0
