"""Shared pieces of the backtest job tests (no tests here): the bundled universe's bars in a
real Parquet store, its listings in the catalog, and a service over them.

The store is written once per test run (5 years of daily bars of all 428 bundled listings
from ibsim's seeded market, as a collection would store them) and only read by the tests;
each test has its own catalog and result store.
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from cluster import universe
from core.settings import Settings
from ibsim.contracts import default_world
from ibsim.market import Market
from optimize.backtest_jobs import BacktestService
from storage.bars import BarStore
from storage.catalog import Catalog, SymbolRecord
from storage.results import ResultStore
from strategies.engine import run_backtest

START, END = pd.Timestamp("2020-06-01", tz="UTC"), pd.Timestamp("2025-06-02", tz="UTC")
SMA = {"strategy": "sma_cross", "params": {"fast": 10, "slow": 50}}
_BUILT: dict[str, str] = {}


def members() -> list[Any]:
    """The bundled universe (428 listings), every one known to ibsim's world."""
    world = {(c.symbol, c.primary_exchange) for c in default_world()}
    found = [m for m in universe.select() if (m.symbol, m.primary_exchange) in world]
    assert len(found) == 428
    return found


def write_universe_bars(root: str) -> None:
    """Write every bundled listing's daily bars in [START, END) into the store at ``root``."""
    world = {(c.symbol, c.primary_exchange): c for c in default_world()}
    market, store = Market(seed=0), BarStore(root)

    def one(member: Any) -> None:
        bars = market.daily(world[(member.symbol, member.primary_exchange)])
        bars = bars.set_axis(bars.index.tz_localize("UTC"))
        store.write(f"{member.symbol}.{member.primary_exchange}", "1d", bars[START:END])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(one, members()))


@pytest.fixture(scope="session")
def universe_bars(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The bar store of the whole bundled universe (built once per run; read only)."""
    key = str(tmp_path_factory.getbasetemp())
    if key not in _BUILT:
        root = str(tmp_path_factory.mktemp("universe") / "bars")
        write_universe_bars(root)
        _BUILT[key] = root
    return _BUILT[key]


def listings() -> list[SymbolRecord]:
    """The bundled listings as the catalog holds them once validated."""
    return [
        SymbolRecord(
            symbol=m.symbol, sec_type=m.sec_type, exchange=m.exchange, currency=m.currency,
            primary_exchange=m.primary_exchange, name=m.name, universe=m.universe, valid=True,
        )
        for m in members()
    ]  # fmt: skip


def settings_for(tmp_path: Path, bars: str, db_url: str) -> Settings:
    """Settings of a process using this catalog and bar store."""
    return Settings.from_env(
        {"SCIZOR_HOME": str(tmp_path), "SCIZOR_BAR_STORE": bars, "SCIZOR_DATABASE_URL": db_url}
    )


def make_service(catalog: Catalog, tmp_path: Path, bars: str) -> BacktestService:
    """A service over ``catalog`` (filled with the listings) and a fresh result store."""
    catalog.symbols.upsert_many(listings())
    settings = settings_for(tmp_path, bars, catalog.url.render_as_string(hide_password=False))
    return BacktestService(catalog, settings, results=ResultStore(tmp_path / "results"))


def direct(bars: str, instrument: str, currency: str, **spec_costs: Any) -> Any:
    """The same backtest run by hand in this process (what a job must have stored)."""
    frame = BarStore(bars).read(instrument, "1d")
    return run_backtest(
        frame, "sma_cross", SMA["params"], symbol=instrument, currency=currency, **spec_costs
    )


def same_stats(stored: dict[str, Any], computed: dict[str, float]) -> bool:
    """True when stored stats (NaN as None) equal freshly computed ones."""
    for key, value in computed.items():
        got = stored.get(key)
        if isinstance(value, float) and math.isnan(value):
            if got is not None:
                return False
        elif got is None or not math.isclose(got, value, rel_tol=1e-12, abs_tol=1e-12):
            return False
    return set(stored) == set(computed)


def stored_files(root: Path, backtest_id: int) -> dict[str, list[str]]:
    """Every file under a job's results, by instrument folder (temp files included)."""
    job = root / f"backtest={backtest_id}"
    if not job.exists():
        return {}
    return {
        folder.name.removeprefix("instrument="): sorted(p.name for p in folder.iterdir())
        for folder in sorted(job.iterdir())
    }
