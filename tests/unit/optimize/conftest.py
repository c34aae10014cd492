"""A small world for the job service's unit tests: a few listings in a real catalog (SQLite
and PostgreSQL) and their daily bars in a real Parquet store on ``tmp_path``; no Ray."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from core.settings import Settings
from core.types import SecType
from optimize.backtest_jobs import BacktestService
from storage.bars import BarStore
from storage.catalog import SymbolRecord
from storage.results import ResultStore

# (symbol, venue, currency, universe, valid, has bars)
LISTINGS = [
    ("AAA", "ASX", "AUD", "asx200", True, True),
    ("BBB", "ASX", "AUD", "asx200", True, True),
    ("VEA", "ASX", "AUD", "asx200", True, True),
    ("CCC", "NASDAQ", "USD", "nasdaq", True, True),
    ("VEA", "ARCA", "USD", "etfs", True, True),
    ("SPY", "ARCA", "USD", "etfs", True, True),
    ("BAD", "ASX", "AUD", "asx200", False, True),
    ("NEW", "NASDAQ", "USD", "nasdaq", None, False),
]


def daily(seed: int, n: int = 300) -> pd.DataFrame:
    """A seeded random walk of ``n`` business days from 2023-01-02 (UTC midnight)."""
    idx = pd.date_range("2023-01-02", periods=n, freq="B", tz="UTC")
    rng = np.random.default_rng(seed)
    close = 40 * np.exp(np.cumsum(rng.normal(0.0005, 0.02, n)))
    opens = close * np.exp(rng.normal(0, 0.004, n))
    return pd.DataFrame(
        {"open": opens, "high": np.maximum(opens, close) * 1.01,
         "low": np.minimum(opens, close) * 0.99, "close": close, "volume": 1e5},
        index=idx,
    )  # fmt: skip


@pytest.fixture
def world(catalog: Any, tmp_path: Path) -> dict[str, Any]:
    """The listings in ``catalog`` and their bars under ``tmp_path/bars``."""
    store = BarStore(tmp_path / "bars")
    records = []
    for seed, (symbol, venue, currency, universe, valid, bars) in enumerate(LISTINGS):
        sec = SecType.ETF if universe == "etfs" else SecType.STOCK
        records.append(
            SymbolRecord(
                symbol=symbol,
                primary_exchange=venue,
                exchange="SMART",
                currency=currency,
                universe=universe,
                valid=valid,
                sec_type=sec,
                name=f"{symbol} on {venue}",
            )
        )
        if bars:
            store.write(f"{symbol}.{venue}", "1d", daily(seed))
    catalog.symbols.upsert_many(records)
    return {"catalog": catalog, "bars": str(tmp_path / "bars"), "results": tmp_path / "results"}


@pytest.fixture
def service(world: dict[str, Any], tmp_path: Path) -> BacktestService:
    """The job service over the small world (its results under ``tmp_path/results``)."""
    settings = Settings.from_env({"SCIZOR_HOME": str(tmp_path), "SCIZOR_BAR_STORE": world["bars"]})
    return BacktestService(world["catalog"], settings, results=ResultStore(world["results"]))
