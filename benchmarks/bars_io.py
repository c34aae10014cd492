"""Bar store I/O against the tools a user would otherwise pick, side by side in one run.

Data sets (one symbol each): 10 years of daily bars, and one year of NYSE regular-hours
1-minute bars (~252 x 390 rows). Peers: ``DataFrame.to_csv`` / ``pandas.read_csv`` and
``DataFrame.to_parquet`` / ``pandas.read_parquet`` of the store's own partition files. Every
figure is the median of several runs in a fresh temp dir; ratios are peer time / store time.

Run: ``.venv/bin/python benchmarks/bars_io.py [--runs N]``
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import exchange_calendars as xcals
import numpy as np
import pandas as pd

from storage.bars import BarStore


def daily_bars(years: int) -> pd.DataFrame:
    sessions = xcals.get_calendar("XNYS").sessions_in_range("2015-01-02", f"{2014 + years}-12-31")
    return _ohlcv(pd.DatetimeIndex(sessions).tz_localize("UTC"))


def minute_bars(year: int) -> pd.DataFrame:
    schedule = xcals.get_calendar("XNYS").schedule.loc[f"{year}-01-01" : f"{year}-12-31"]
    parts = [
        pd.date_range(o, c, freq="1min", inclusive="left").asi8
        for o, c in zip(schedule["open"], schedule["close"], strict=True)
    ]
    return _ohlcv(pd.DatetimeIndex(np.concatenate(parts).view("M8[ns]")).tz_localize("UTC"))


def _ohlcv(index: pd.DatetimeIndex) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = len(index)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.001, n)))
    open_ = close * (1 + rng.normal(0, 0.0005, n))
    return pd.DataFrame(
        {
            "open": open_,
            "high": np.maximum(open_, close) * (1 + rng.uniform(0, 0.001, n)),
            "low": np.minimum(open_, close) * (1 - rng.uniform(0, 0.001, n)),
            "close": close,
            "volume": rng.integers(100, 100_000, n).astype(np.float64),
            "wap": close,
            "bar_count": rng.integers(1, 1_000, n),
        },
        index=pd.DatetimeIndex(index.as_unit("ns"), name="ts"),
    )


def median_ms(
    action: Callable[[], object], *, runs: int, setup: Callable[[], None] | None = None
) -> float:
    action()  # warm-up: imports, caches, page cache
    times = []
    for _ in range(runs):
        if setup is not None:
            setup()
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def bench(
    name: str, size: str, frame: pd.DataFrame, *, runs: int, work: Path, sizes: list[str]
) -> list[tuple[str, str, float]]:
    store_root = work / f"store-{size}"
    counter = iter(range(1_000_000))
    csv = work / f"{size}.csv"
    peer_parquet = work / f"{size}.parquet"

    def store_write() -> None:
        BarStore(store_root).write(f"W{next(counter)}.NYSE", size, frame)

    store = BarStore(store_root)
    store.write("AAPL.NASDAQ", size, frame)
    symbol_dir = store_root / f"bar_size={size}" / "instrument=AAPL.NASDAQ"  # all year partitions
    frame.to_csv(csv)
    frame.to_parquet(peer_parquet)

    def csv_read() -> pd.DataFrame:
        return pd.read_csv(csv, index_col="ts", parse_dates=["ts"])

    sizes.append(
        f"{name:<28} BarStore {_mb(symbol_dir.rglob('*.parquet')):.2f} MB, "
        f"CSV {_mb([csv]):.2f} MB, DataFrame.to_parquet {_mb([peer_parquet]):.2f} MB"
    )
    check = csv_read()
    assert len(check) == len(frame) and str(check.index.dtype).endswith("UTC]"), check.index.dtype
    pd.testing.assert_frame_equal(store.read("AAPL.NASDAQ", size), frame, check_freq=False)

    return [
        (name, "write  BarStore.write", median_ms(store_write, runs=runs)),
        (name, "write  DataFrame.to_csv", median_ms(lambda: frame.to_csv(csv), runs=runs)),
        (
            name,
            "write  DataFrame.to_parquet",
            median_ms(lambda: frame.to_parquet(peer_parquet), runs=runs),
        ),
        (
            name,
            "read   BarStore.read",
            median_ms(lambda: store.read("AAPL.NASDAQ", size), runs=runs),
        ),
        (name, "read   pandas.read_csv", median_ms(csv_read, runs=runs)),
        (
            name,
            "read   pandas.read_parquet (same files)",
            median_ms(lambda: pd.read_parquet(symbol_dir), runs=runs),
        ),
        (
            name,
            "read   BarStore.read (one week)",
            median_ms(
                lambda: store.read(
                    "AAPL.NASDAQ",
                    size,
                    frame.index[len(frame) // 2],
                    frame.index[len(frame) // 2] + pd.Timedelta("7D"),
                ),
                runs=runs,
            ),
        ),
    ]


def _mb(files: Iterable[Path]) -> float:
    return sum(f.stat().st_size for f in files) / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs per figure (median)")
    args = parser.parse_args()
    daily, minutes = daily_bars(10), minute_bars(2024)
    rows: list[tuple[str, str, float]] = []
    sizes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bars-io-") as tmp:
        rows += bench(
            f"1d x 10y ({len(daily):,} rows)",
            "1d",
            daily,
            runs=args.runs,
            work=Path(tmp),
            sizes=sizes,
        )
        rows += bench(
            f"1m x 1y RTH ({len(minutes):,} rows)",
            "1m",
            minutes,
            runs=args.runs,
            work=Path(tmp),
            sizes=sizes,
        )
    print(f"median of {args.runs} runs; ratio = time / BarStore time of the same operation\n")
    print(f"{'data':<28} {'operation':<40} {'ms':>9} {'ratio':>7}")
    base: dict[tuple[str, str], float] = {}
    for data, op, ms in rows:
        kind = op.split()[0]
        key = (data, kind)
        if (op.split()[1] == "BarStore.read" and "(one week)" not in op) or op.split()[
            1
        ] == "BarStore.write":
            base[key] = ms
        ratio = ms / base[key] if key in base else float("nan")
        print(f"{data:<28} {op:<40} {ms:>9.2f} {ratio:>6.1f}x")
    print("\nfile sizes (the store: all year partitions of the symbol)")
    print("\n".join(sizes))


if __name__ == "__main__":
    main()
