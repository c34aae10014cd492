"""A writer killed with SIGKILL mid-write leaves the previous data, lock and manifest intact.

The child process pauses inside the store's ``_before_rename`` hook (temp file written, not yet
renamed) and tells the parent so; the parent then kills it. No timing luck involved.
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

from storage.bars import BarStore

REPO = Path(__file__).resolve().parents[3]

CHILD = """
import os, sys, time
import numpy as np, pandas as pd
from storage.bars import BarStore

root, pause_at = sys.argv[1], int(sys.argv[2])
calls = []

def pause(temp, final):
    calls.append(final)
    if len(calls) == pause_at:
        print("PAUSED", temp, flush=True)
        time.sleep(600)

n = 400_000  # ~9 months of round-the-clock minutes from 2023-06-01: two year partitions
index = pd.date_range("2023-06-01", periods=n, freq="1min", tz="UTC")
price = np.full(n, 50.0)
frame = pd.DataFrame(
    {"open": price, "high": price + 1, "low": price - 1, "close": price, "volume": 1.0},
    index=index,
)
store = BarStore(root)
store._before_rename = pause
store.write("AAPL.NASDAQ", "1m", frame)
print("FINISHED", flush=True)
"""


def previous_bars() -> pd.DataFrame:
    index = pd.date_range("2023-06-01", periods=1_000, freq="1min", tz="UTC", name="ts")
    price = np.linspace(10, 20, len(index))
    return pd.DataFrame(
        {
            "open": price,
            "high": price + 0.5,
            "low": price - 0.5,
            "close": price,
            "volume": 7.0,
            "wap": price,
            "bar_count": np.int64(3),
        },
        index=index.as_unit("ns"),
    )


def run_until_paused(root: Path, *, pause_at: int) -> tuple[subprocess.Popen[str], str]:
    """Start the child writer and return it once it reports it is paused before a rename."""
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(root), str(pause_at)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(child.stdout, selectors.EVENT_READ)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if selector.select(timeout=1):
                line = child.stdout.readline()
                if line.startswith("PAUSED"):
                    return child, line.split()[1]
                child.kill()
                pytest.fail(f"child did not pause: {line!r} {child.stderr.read()}")  # type: ignore[union-attr]
    child.kill()
    pytest.fail("child writer never reached the rename hook")


def kill(child: subprocess.Popen[str]) -> None:
    os.kill(child.pid, signal.SIGKILL)
    child.communicate(timeout=60)  # reap it and close its pipes
    assert child.returncode == -signal.SIGKILL


def test_writer_killed_before_rename_leaves_previous_partition_intact(tmp_path):
    root = tmp_path / "bars"
    store = BarStore(root)
    before = previous_bars()
    store.write("AAPL.NASDAQ", "1m", before)
    coverage_before = store.coverage("AAPL.NASDAQ", "1m")

    child, temp = run_until_paused(root, pause_at=1)
    kill(child)

    assert Path(temp).is_file() and Path(temp).name.startswith(".tmp-")  # killed mid-write
    pd.testing.assert_frame_equal(store.read("AAPL.NASDAQ", "1m"), before, check_freq=False)
    assert BarStore(root).coverage("AAPL.NASDAQ", "1m") == coverage_before
    # Generic Parquet readers skip the hidden temp file too.
    assert ds.dataset(root, partitioning="hive").to_table().num_rows == len(before)

    # The kernel released the dead writer's lock: the next write proceeds and sweeps the temp.
    after = store.write("AAPL.NASDAQ", "1m", before.iloc[:10])
    assert after.rows_replaced == 10
    assert not Path(temp).exists()


def test_writer_killed_between_partitions_leaves_manifest_claiming_no_more_than_data(tmp_path):
    root = tmp_path / "bars"
    store = BarStore(root)
    store.write("AAPL.NASDAQ", "1m", previous_bars())
    coverage_before = store.coverage("AAPL.NASDAQ", "1m")

    child, _ = run_until_paused(root, pause_at=2)  # 2023 renamed, 2024 not yet
    kill(child)

    got = store.read("AAPL.NASDAQ", "1m")
    assert got.index[-1] == pd.Timestamp("2023-12-31 23:59", tz="UTC")  # 2023 done
    assert got.loc["2023-06-01 00:00", "close"] == 50.0  # newer rows won
    assert store.read("AAPL.NASDAQ", "1m", start=pd.Timestamp("2024-01-01", tz="UTC")).empty
    assert store.coverage("AAPL.NASDAQ", "1m") == coverage_before  # manifest written last: not yet
    rebuilt = store.rebuild_manifest("AAPL.NASDAQ", "1m")
    assert rebuilt == [(pd.Timestamp("2023-06-01", tz="UTC"), pd.Timestamp("2024-01-01", tz="UTC"))]
