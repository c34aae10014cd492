"""Durable writes on a local disk: temp file fsynced before the rename, directory after it.

A power loss cannot be simulated here, so these tests prove the part that can be observed: the
real ``os.fsync`` is called on the right paths in the right order (a spy records each call and
then runs it), and the file that lands under the final name is complete and reads back.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from storage import barfs
from storage.bars import BarStore


def bars(n: int = 300, start: str = "2023-01-02") -> pd.DataFrame:
    index = pd.date_range(start, periods=n, freq="B", tz="UTC", name="ts")
    price = np.linspace(10.0, 20.0, n)
    return pd.DataFrame(
        {
            "open": price,
            "high": price + 1,
            "low": price - 1,
            "close": price,
            "volume": np.full(n, 1000.0),
        },
        index=index,
    )


@pytest.fixture
def fsynced(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Record the path behind every ``os.fsync`` call, then really fsync it."""
    calls: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        calls.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    yield calls


def test_temp_file_is_fsynced_before_the_rename_and_the_directory_after(
    tmp_path: Path, fsynced: list[str]
) -> None:
    store = BarStore(tmp_path / "bars")
    seen_at_rename: list[tuple[str, list[str]]] = []
    store._before_rename = lambda temp, final: seen_at_rename.append((temp, list(fsynced)))

    store.write("AAPL.NASDAQ", "1d", bars(300))  # 2023 and 2024: two partitions, then the manifest

    data_files = sorted((tmp_path / "bars").rglob("*.parquet"))
    assert len(data_files) == 2 and len(seen_at_rename) == 2
    for temp, before in seen_at_rename:
        assert before[-1] == temp  # the last fsync before the rename was the temp file itself
        assert not os.path.exists(temp)  # ...and it was then renamed away
    for temp, _ in seen_at_rename:
        # The directory holding each renamed file is fsynced after its temp file was.
        directory = os.path.dirname(temp)
        assert directory in fsynced[fsynced.index(temp) + 1 :]


def test_directories_a_write_creates_are_fsynced_in_their_parents(
    tmp_path: Path, fsynced: list[str]
) -> None:
    BarStore(tmp_path / "bars").write("MSFT.NASDAQ", "1d", bars(20))
    data_file = next((tmp_path / "bars").rglob("*.parquet"))
    # Every ancestor from tmp_path down to the partition directory holds a new entry.
    new_dirs = [p for p in data_file.parents if str(p).startswith(str(tmp_path / "bars"))]
    for directory in new_dirs:
        assert str(directory.parent) in fsynced, directory


def test_fsynced_write_round_trips_and_leaves_no_temp_files(tmp_path: Path) -> None:
    store = BarStore(tmp_path / "bars")
    frame = bars(300)
    store.write("AAPL.NASDAQ", "1d", frame)
    later = bars(10, start=str(frame.index[-5].date())) + 100  # 5 days replaced, 5 new
    store.write("AAPL.NASDAQ", "1d", later)  # rewrites the 2024 partition in place

    back = store.read("AAPL.NASDAQ", "1d")
    assert len(back) == 305
    np.testing.assert_allclose(back["close"].to_numpy()[:295], frame["close"].to_numpy()[:295])
    np.testing.assert_allclose(back["close"].to_numpy()[295:], later["close"].to_numpy())
    for path in (tmp_path / "bars").rglob("*.parquet"):
        pq.read_metadata(path)  # a complete file: the footer is there
    leftovers = [p for p in (tmp_path / "bars").rglob("*") if p.name.startswith(barfs.TEMP_PREFIX)]
    assert leftovers == []
