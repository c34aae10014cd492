"""The result store: trades and equity of backtest jobs as Parquet, on a local disk, behind
a ``file://`` URI and through a non-local pyarrow file system."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest

from core.errors import NotFound, ValidationError
from storage.results import PORTFOLIO, TRADES_SCHEMA, ResultStore
from strategies.engine import run_backtest, run_portfolio


def _bars(seed: int, n: int = 400) -> pd.DataFrame:
    idx = pd.date_range("2022-01-03", periods=n, freq="B", tz="UTC")
    close = 50 * np.exp(np.cumsum(np.random.default_rng(seed).normal(0, 0.02, n)))
    return pd.DataFrame(
        {"open": close, "high": close * 1.01, "low": close * 0.99, "close": close, "volume": 1e5},
        index=idx,
    )


@pytest.fixture(scope="module")
def result():
    return run_backtest(_bars(1), "sma_cross", {"fast": 5, "slow": 20}, symbol="AAPL.NASDAQ")


def test_trades_and_equity_round_trip(tmp_path: Path, result) -> None:
    store = ResultStore(tmp_path / "results")
    assert len(result.trades) > 3
    store.write(
        7, "aapl.nasdaq", trades=result.trades, equity=result.equity, benchmark=result.benchmark
    )
    trades = store.trades(7, "AAPL.NASDAQ")
    expected = result.trades.astype({"symbol": str, "side": str})
    for column in ("entry_time", "exit_time"):  # stored as ns, whatever unit the bars had
        expected[column] = expected[column].dt.as_unit("ns")
    pd.testing.assert_frame_equal(trades.astype({"symbol": str, "side": str}), expected)
    assert str(trades["entry_time"].dtype) == "datetime64[ns, UTC]"
    equity = store.equity(7, "AAPL.NASDAQ")
    assert list(equity.columns) == ["instrument", "ts", "equity", "benchmark"]
    assert (equity["instrument"] == "AAPL.NASDAQ").all()
    np.testing.assert_array_equal(equity["equity"].to_numpy(), result.equity.to_numpy())
    np.testing.assert_array_equal(equity["benchmark"].to_numpy(), result.benchmark.to_numpy())
    assert pd.DatetimeIndex(equity["ts"]).equals(result.equity.index.as_unit("ns").rename(None))
    on_disk = tmp_path / "results" / "backtest=7" / "instrument=AAPL.NASDAQ"
    assert sorted(os.listdir(on_disk)) == ["equity.parquet", "trades.parquet"]
    assert pq.read_schema(on_disk / "trades.parquet").names == TRADES_SCHEMA.names


def test_a_job_reads_whole_and_a_rewrite_replaces(tmp_path: Path, result) -> None:
    store = ResultStore(tmp_path)
    other = run_backtest(_bars(2), "sma_cross", {"fast": 5, "slow": 20}, symbol="BHP.ASX")
    for _ in range(2):  # a result computed twice (a retried task) is stored once
        store.write(3, "BHP.ASX", trades=other.trades, equity=other.equity)
        store.write(3, "AAPL.NASDAQ", trades=result.trades, equity=result.equity)
    assert store.instruments(3) == ["AAPL.NASDAQ", "BHP.ASX"]
    trades = store.trades(3)
    assert len(trades) == len(result.trades) + len(other.trades)
    assert set(trades["symbol"]) == {"AAPL.NASDAQ", "BHP.ASX"}
    assert trades["entry_time"].is_monotonic_increasing
    equity = store.equity(3)
    assert equity.groupby("instrument").size().to_dict() == {"AAPL.NASDAQ": 400, "BHP.ASX": 400}
    assert equity["benchmark"].isna().all()  # written without one
    assert store.instruments(4) == [] and store.trades(4).empty and store.equity(4).empty
    assert list(store.equity(4).columns) == ["instrument", "ts", "equity", "benchmark"]


def test_a_portfolio_is_stored_under_portfolio(tmp_path: Path) -> None:
    run = run_portfolio({"AAA.ASX": _bars(3), "BBB.ASX": _bars(4)}, "sma_cross")
    store = ResultStore(tmp_path)
    store.write(5, PORTFOLIO, trades=run.trades, equity=run.equity, benchmark=run.benchmark)
    assert store.instruments(5) == ["portfolio"]
    assert set(store.trades(5, "portfolio")["symbol"]) <= {"AAA.ASX", "BBB.ASX"}
    assert len(store.equity(5)) == 400


def test_a_job_without_trades_keeps_the_columns_and_types(tmp_path: Path) -> None:
    flat = run_backtest(_bars(5, n=30), "sma_cross", {"fast": 5, "slow": 29})
    assert flat.trades.empty
    store = ResultStore(tmp_path)
    store.write(1, "SPY.ARCA", trades=flat.trades, equity=flat.equity)
    trades = store.trades(1, "SPY.ARCA")
    assert trades.empty and list(trades.columns) == TRADES_SCHEMA.names
    assert str(trades["exit_time"].dtype) == "datetime64[ns, UTC]"


def test_missing_results_and_bad_keys_are_named(tmp_path: Path, result) -> None:
    store = ResultStore(tmp_path)
    store.write(2, "AAPL.NASDAQ", trades=result.trades, equity=result.equity)
    with pytest.raises(NotFound, match=r"backtest 2 has no stored results for BHP\.ASX.*AAPL"):
        store.trades(2, "BHP.ASX")

    def write(trades=result.trades, equity=result.equity):
        return lambda: store.write(2, "X.ASX", trades=trades, equity=equity)

    for call, field in (
        (lambda: store.trades(2, "AAPL"), "instrument"),
        (lambda: store.equity(0), "backtest_id"),
        (write(trades=result.trades.drop(columns="pnl")), "trades"),
        (write(equity=result.equity.tz_localize(None)), "ts"),
        (write(equity=result.equity.reset_index(drop=True)), "equity"),
    ):
        with pytest.raises(ValidationError) as bad:
            call()
        assert bad.value.field == field
    assert store.instruments(2) == ["AAPL.NASDAQ"]  # nothing of the refused writes is left


def test_a_killed_writer_leaves_the_old_file_and_clean_removes_leftovers(
    tmp_path: Path, result
) -> None:
    store = ResultStore(tmp_path)
    store.write(9, "AAPL.NASDAQ", trades=result.trades, equity=result.equity)
    store.write(9, "BHP.ASX", trades=result.trades, equity=result.equity)
    folder = tmp_path / "backtest=9" / "instrument=AAPL.NASDAQ"
    # What a writer killed between writing its temp file and the rename leaves behind.
    (folder / ".tmp-0123-trades.parquet").write_bytes(b"half a parquet file")
    assert len(store.trades(9, "AAPL.NASDAQ")) == len(result.trades)  # the temp is unseen
    assert store.clean(9, keep=["AAPL.NASDAQ"]) == ["BHP.ASX"]
    assert sorted(os.listdir(folder)) == ["equity.parquet", "trades.parquet"]
    assert store.instruments(9) == ["AAPL.NASDAQ"]
    store.delete(9)
    assert store.instruments(9) == [] and not (tmp_path / "backtest=9").exists()
    store.delete(9)  # deleting nothing is fine


def test_uris_and_non_local_file_systems(tmp_path: Path, result) -> None:
    uri = (tmp_path / "by-uri").as_uri()
    by_uri = ResultStore(uri)
    by_uri.write(1, "AAPL.NASDAQ", trades=result.trades, equity=result.equity)
    assert by_uri.location(1) == f"{uri}/backtest=1"
    assert len(ResultStore(tmp_path / "by-uri").trades(1)) == len(result.trades)
    remote = pafs.SubTreeFileSystem(str(tmp_path), pafs.LocalFileSystem())
    store = ResultStore("remote", filesystem=remote)
    store.write(1, "AAPL.NASDAQ", trades=result.trades, equity=result.equity)
    assert store.instruments(1) == ["AAPL.NASDAQ"]
    assert len(store.equity(1, "AAPL.NASDAQ")) == 400
    assert (tmp_path / "remote" / "backtest=1" / "instrument=AAPL.NASDAQ").is_dir()
    assert store.clean(1, keep=[]) == ["AAPL.NASDAQ"] and store.instruments(1) == []


def test_results_live_beside_the_bar_store(tmp_path: Path) -> None:
    assert ResultStore.beside(str(tmp_path / "bars")).root == str(tmp_path / "results")
    assert ResultStore.beside(str(tmp_path / "bars") + "/").root == str(tmp_path / "results")
    beside_uri = ResultStore.beside((tmp_path / "bars").as_uri())
    assert beside_uri.location(4) == f"{(tmp_path / 'results').as_uri()}/backtest=4"
    assert ResultStore(tmp_path / "r").location(4) == f"{tmp_path / 'r'}/backtest=4"
